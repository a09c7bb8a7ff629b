//! The blocked GEMM driver: C = A·B (+ bias, activation), in the five-loop order of
//! Goto/BLIS. Columns of B in blocks of `nc`, depth in blocks of `kc` (the B block packed
//! once per pass, unless a few rows of A read a small B in place), rows of A in blocks of
//! `mc` (read in place; packed only when A has no unit stride), then `nr`-wide B
//! micro-panels against `mr`-row A micro-panels. Bias and ReLU are applied in registers as
//! a tile's last depth block is stored; other activations run on the tile right after,
//! while it is still in L1.
//!
//! Across threads C is cut into chunks taken from a shared counter (`run`). When several
//! rows of chunks would each pack the same B columns, all of B is packed once, by all
//! threads, into a buffer every chunk reads (`parallel`).

use super::activation::Activation;
use super::element::Element;
use super::microkernel::{Kernel, TileOut};
use super::pack::{pack_a, row_panels};
use super::{pool, scratch};

/// A strided operand. Raw so that threads can share it; every element it addresses was
/// bounds-checked by the view it came from.
#[derive(Clone, Copy)]
pub(crate) struct Strided<T> {
    pub ptr: *const T,
    pub rs: usize,
    pub cs: usize,
}

#[derive(Clone, Copy)]
pub(crate) struct StridedMut<T> {
    pub ptr: *mut T,
    pub rs: usize,
    pub cs: usize,
}

// Safety: the driver hands each thread a disjoint set of C tiles; A, B and bias are only read.
unsafe impl<T: Send> Send for Strided<T> {}
unsafe impl<T: Sync> Sync for Strided<T> {}
unsafe impl<T: Send> Send for StridedMut<T> {}
unsafe impl<T: Sync> Sync for StridedMut<T> {}

/// One product to compute: `C[m x n] = act(A[m x k] · B[k x n] * scale[n] + bias[n])`.
#[derive(Clone, Copy)]
pub(crate) struct Problem<T> {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a: Strided<T>,
    pub b: Strided<T>,
    pub c: StridedMut<T>,
    /// `n` contiguous values each, or null.
    pub scale: *const T,
    pub bias: *const T,
    pub act: Activation,
}

unsafe impl<T: Send> Send for Problem<T> {}
unsafe impl<T: Sync> Sync for Problem<T> {}

impl<T: Copy> Problem<T> {
    /// The products of the first `j` columns of C and of the rest (`0 < j < n`).
    ///
    /// Safety: `j < n`, so both parts address elements of the original views.
    pub(crate) unsafe fn split_columns(self, j: usize) -> (Self, Self) {
        let mut left = self;
        left.n = j;
        let mut right = self;
        right.n = self.n - j;
        right.b.ptr = self.b.ptr.add(j * self.b.cs);
        right.c.ptr = self.c.ptr.add(j * self.c.cs);
        if !self.bias.is_null() {
            right.bias = self.bias.add(j);
        }
        if !self.scale.is_null() {
            right.scale = self.scale.add(j);
        }
        (left, right)
    }
}

/// Below this many flops one thread is faster than waking another. 1M made single small
/// products faster (24x784->64 22 -> 13 us) but `fit` on the guide MLP no faster in wall
/// time at twice the CPU time (its batch-32 products then ran on both cores).
const MIN_FLOPS_PER_THREAD: usize = 3_000_000;

/// Cost of packing one element, in multiply-adds, when weighing how to split a product:
/// a packed element is a scalar read and write, a multiply-add a sixteenth of a vector FMA.
const PACK_COST: usize = 8;

/// Packing cost per element when B is too large for the caches, so every chunk's packing
/// reads it from memory: at 256x4096x4096 the cheaper figure split rows four ways, and B's
/// 64 MB were read and packed four times (84 GFLOP/s per thread).
const PACK_COST_FROM_MEMORY: usize = 32;

/// Fixed cost of one chunk (taking it, tile edges, buffer set-up), in multiply-adds.
const CHUNK_OVERHEAD: usize = 4096;

/// Splits the product into a grid of C chunks that threads take from a shared counter, each
/// chunk computed by the serial blocked algorithm. Every element of C is summed in the same
/// order whatever the split, so results do not depend on the thread count.
///
/// `streamed_b` is `streams_b` of the whole product, so the columns split off by
/// `alignment_peel` are summed in the same depth blocks as the rest.
///
/// Safety: the problem's pointers satisfy the `Strided` invariants and C is not aliased.
pub(crate) unsafe fn run<T: Element>(kernel: &Kernel<T>, problem: Problem<T>, max_threads: usize, streamed_b: bool) {
    let Problem { m, n, k, .. } = problem;
    if m == 0 || n == 0 {
        return;
    }
    let flops = 2usize.saturating_mul(m).saturating_mul(n).saturating_mul(k);
    let threads = max_threads.min(flops / MIN_FLOPS_PER_THREAD).max(1);
    if streamed_b && k >= 2 * STREAM_KC {
        depth_halves(kernel, problem, threads);
        return;
    }
    if threads == 1 {
        serial(kernel, problem, streamed_b, None);
        return;
    }
    let shared_b = shares_packed_b(kernel, &problem, streamed_b);
    let (chunk_m, chunk_n) = split(kernel, &problem, threads, shared_b);
    let grid = Grid { chunk_m, chunk_n, rows: m.div_ceil(chunk_m), cols: n.div_ceil(chunk_n) };
    if grid.rows * grid.cols == 1 {
        serial(kernel, problem, streamed_b, None);
        return;
    }
    if shared_b && grid.rows > 1 {
        let n_pad = n.div_ceil(kernel.nr) * kernel.nr;
        scratch::with_shared::<T, _>(k * n_pad, |packed| {
            parallel(kernel, problem, threads, grid, streamed_b, Some(SharedB { ptr: packed, n_pad }))
        });
    } else {
        parallel(kernel, problem, threads, grid, streamed_b, None);
    }
}

/// How C is cut into chunks: `rows x cols` chunks of `chunk_m x chunk_n` (the last ones
/// smaller).
#[derive(Clone, Copy)]
struct Grid {
    chunk_m: usize,
    chunk_n: usize,
    rows: usize,
    cols: usize,
}

/// All of B packed once for every thread, in the panel layout of `pack_b`: the depth block
/// starting at row `pc` (of `kernel.kc` rows, the last one shorter) is at `pc * n_pad`, and
/// in it the panel of columns `j ..` at `j * depth`.
#[derive(Clone, Copy)]
struct SharedB<T> {
    ptr: *mut T,
    /// Columns of B rounded up to whole panels.
    n_pad: usize,
}

// Safety: threads write disjoint packing units before any reads them (see `parallel`).
unsafe impl<T: Send> Send for SharedB<T> {}
unsafe impl<T: Sync> Sync for SharedB<T> {}

/// B packed per chunk is packed again by every row of chunks. At 256^3 on two threads each
/// thread packed all of B for its chunks, and the chunks ran at 80% of the serial product's
/// speed; packed once, by both threads, the copies are shared. Bounded so the kept buffer
/// (`scratch::with_shared`) stays modest; above it packing is a small part of the work.
const SHARED_B_BYTES: usize = 32 << 20;

/// Whether B is packed once for all chunks (see `SHARED_B_BYTES`).
pub(crate) fn shares_packed_b<T>(kernel: &Kernel<T>, p: &Problem<T>, streamed_b: bool) -> bool {
    let bytes = p.k.saturating_mul(p.n.div_ceil(kernel.nr) * kernel.nr).saturating_mul(std::mem::size_of::<T>());
    !streamed_b && should_pack_b(kernel, &p.b, p.m, p.n, p.k) && bytes <= SHARED_B_BYTES
}

/// Columns packed as one unit of the shared packing: whole rows of up to this many values,
/// so a wide B is read in long runs (see `pack::pack_b`), yet enough units for two threads.
const PACK_UNIT_COLUMNS: usize = 512;

/// Runs the chunks of `grid` on up to `threads` threads. With a shared B, every thread first
/// takes packing units (a depth block by a run of panels) from their own counter and then
/// waits until all are packed, before taking chunks.
unsafe fn parallel<T: Element>(
    kernel: &Kernel<T>,
    problem: Problem<T>,
    threads: usize,
    grid: Grid,
    streamed_b: bool,
    shared: Option<SharedB<T>>,
) {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let Problem { m, n, k, .. } = problem;
    let chunks = grid.rows * grid.cols;
    let kc = kernel.kc.min(k);
    let depth_blocks = k.div_ceil(kc);
    let unit_columns = (PACK_UNIT_COLUMNS / kernel.nr * kernel.nr)
        .min(n.div_ceil(2 * threads).div_ceil(kernel.nr) * kernel.nr)
        .max(kernel.nr);
    let units_per_block = n.div_ceil(unit_columns);
    let pack_units = if shared.is_some() { depth_blocks * units_per_block } else { 0 };
    let (next_unit, units_done, next_chunk) = (AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0));
    let failed = AtomicBool::new(false);
    let work = || {
        // A participant that panics mid-unit must not leave the others waiting for it.
        let _poison = Poison(&failed);
        if let Some(shared) = shared {
            loop {
                let unit = next_unit.fetch_add(1, Ordering::Relaxed);
                if unit >= pack_units {
                    break;
                }
                let (pc, j0) = ((unit / units_per_block) * kc, (unit % units_per_block) * unit_columns);
                let kb = kc.min(k - pc);
                let source = problem.b.ptr.add(pc * problem.b.rs + j0 * problem.b.cs);
                let dst = shared.ptr.add(pc * shared.n_pad + j0 * kb);
                (kernel.pack_b)(source, problem.b.rs, problem.b.cs, kb, unit_columns.min(n - j0), kernel.nr, dst);
                units_done.fetch_add(1, Ordering::Release);
            }
            let mut spins = 0u32;
            while units_done.load(Ordering::Acquire) < pack_units {
                if failed.load(Ordering::Relaxed) {
                    return;
                }
                spins += 1;
                if spins.is_multiple_of(1024) {
                    // The unit we wait for may belong to a thread preempted on our core.
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
            }
        }
        loop {
            let index = next_chunk.fetch_add(1, Ordering::Relaxed);
            if index >= chunks {
                break;
            }
            let (i0, j0) = ((index / grid.cols) * grid.chunk_m, (index % grid.cols) * grid.chunk_n);
            let mut part = problem;
            part.m = grid.chunk_m.min(m - i0);
            part.n = grid.chunk_n.min(n - j0);
            part.a.ptr = problem.a.ptr.add(i0 * problem.a.rs);
            part.b.ptr = problem.b.ptr.add(j0 * problem.b.cs);
            part.c.ptr = problem.c.ptr.add(i0 * problem.c.rs + j0 * problem.c.cs);
            if !problem.bias.is_null() {
                part.bias = problem.bias.add(j0);
            }
            if !problem.scale.is_null() {
                part.scale = problem.scale.add(j0);
            }
            let prepacked = shared.map(|s| Prepacked { ptr: s.ptr as *const T, n_pad: s.n_pad, col0: j0 });
            serial(kernel, part, streamed_b, prepacked);
        }
    };
    pool::run(threads.min(chunks) - 1, &work);
}

/// Sets its flag if dropped while its thread unwinds.
struct Poison<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for Poison<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// A chunk's view of the shared packed B: the chunk's columns start at column `col0` of it.
#[derive(Clone, Copy)]
struct Prepacked<T> {
    ptr: *const T,
    n_pad: usize,
    col0: usize,
}

unsafe impl<T: Send> Send for Prepacked<T> {}
unsafe impl<T: Sync> Sync for Prepacked<T> {}

/// Chunk size (rows, columns; whole register blocks) minimising the estimated time: rounds
/// of chunks per thread, plus one chunk of slack because a thread slowed by other work on
/// its core (the machine may be shared) leaves up to a chunk to the others, plus the
/// packing or memory traffic each chunk repeats (its B columns, unless B is packed once for
/// all chunks, and A for each column block when A is packed). Without the memory term,
/// 32x4096x4096 was cut into 6-row chunks that each fetched their B columns from memory
/// again: 2.7x slower than numpy.
pub(crate) fn split<T>(kernel: &Kernel<T>, p: &Problem<T>, threads: usize, shared_b: bool) -> (usize, usize) {
    let (mr, nr) = (kernel.mr, kernel.nr);
    let (row_units, col_units) = (p.m.div_ceil(mr), p.n.div_ceil(nr));
    let packs_a = should_pack_a(&p.a);
    let b_bytes = p.k.saturating_mul(p.n).saturating_mul(std::mem::size_of::<T>());
    let limit = 4 * threads;
    let mut best = (usize::MAX, p.m, p.n);
    for row_parts in 1..=row_units.min(limit) {
        let chunk_m = row_units.div_ceil(row_parts) * mr;
        let rows = p.m.div_ceil(chunk_m);
        for col_parts in 1..=col_units.min(limit) {
            let chunk_n = col_units.div_ceil(col_parts) * nr;
            let chunks = rows * p.n.div_ceil(chunk_n);
            let mut packed = 0;
            // Each chunk packs its B columns, or reads them from memory when B is too large
            // for the caches: in place, B is then fetched again by every row of chunks.
            let packs_b = !(shared_b && rows > 1) && should_pack_b(kernel, &p.b, chunk_m.min(p.m), chunk_n.min(p.n), p.k);
            if packs_b || b_bytes > CACHED_B_BYTES {
                packed += p.k * chunk_n;
            }
            if packs_a {
                packed += chunk_m * p.k * chunk_n.div_ceil(kernel.nc);
            }
            let pack_cost = if b_bytes > CACHED_B_BYTES && !shared_b { PACK_COST_FROM_MEMORY } else { PACK_COST };
            let cost = chunk_m * chunk_n * p.k + pack_cost * packed + CHUNK_OVERHEAD;
            let estimate = (chunks.div_ceil(threads) + 1).saturating_mul(cost);
            if estimate < best.0 {
                best = (estimate, chunk_m, chunk_n);
            }
        }
    }
    (best.1, best.2)
}

/// Whether an `m x k` by `k x n` product copies B into panels. Packing costs a pass over B;
/// it pays back only when several A micro-panels reuse it, or when it is the layout already:
/// - B without unit column stride (a transposed view) is always packed;
/// - B already in the panel layout (`already_packed`) and aligned is read in place, at any
///   number of rows: 32x784->64 packed 24-25 us, in place 19.6 (one thread, pinned);
/// - with few rows (small batches) B is read in place, unless it is misaligned (a numpy
///   array is 16-byte aligned) and small enough to copy cheaply: from four row panels on,
///   copying it to an aligned buffer beats vector loads that straddle cache lines
///   (16x784->64 level, 24x784->64 in place 23.4 us, packed 21.5-22).
pub(crate) fn should_pack_b<T>(kernel: &Kernel<T>, b: &Strided<T>, m: usize, n: usize, k: usize) -> bool {
    if b.cs != 1 {
        return true;
    }
    let aligned = b_aligned(kernel, b);
    if aligned && already_packed(kernel, n, b) {
        return false;
    }
    let small = k.saturating_mul(n).saturating_mul(std::mem::size_of::<T>()) <= CACHED_B_BYTES;
    m > 4 * kernel.mr || (!aligned && small && m > 3 * kernel.mr)
}

/// Whether every row of B read in place starts on a `kernel.align` boundary, so no vector
/// load of it straddles two cache lines. Straddling loads cost the microkernel, whose limit
/// is its loads, up to 1.8x: 1x784->64 2.7 us aligned, 4.5 us 16 bytes off; 8x1024->1024
/// 210 and 330 us.
pub(crate) fn b_aligned<T>(kernel: &Kernel<T>, b: &Strided<T>) -> bool {
    let align = kernel.align;
    (b.ptr as usize).is_multiple_of(align) && (b.rs * std::mem::size_of::<T>()).is_multiple_of(align)
}

/// Whether B is in the panel layout already: one whole micro-panel wide (`n == nr`, as a
/// 64-unit Dense kernel on the main tile) with unit column stride and rows `nr` apart.
/// Packing would copy it unchanged.
fn already_packed<T>(kernel: &Kernel<T>, n: usize, b: &Strided<T>) -> bool {
    b.cs == 1 && b.rs == kernel.nr && n == kernel.nr
}

/// Columns to split off the front of a product so that the rest reads B in place at aligned
/// rows (`b_aligned`), or None. Only for B read in place (few rows, unit column stride) whose
/// rows share one misalignment. The split-off columns run as a narrow product of their own
/// (about 5 us at depth 512), which pays when each B row is read by two or more row panels
/// and three panels or more are left: 16x512->1024 16 bytes off 275-294 -> 216-224 us,
/// 8x512->256 30 -> 25 us; with one row panel (1x512->256 12 -> 13.5 us) or narrow B
/// (16x512->128 22 -> 26 us) it cost more than it saved.
pub(crate) fn alignment_peel<T>(kernel: &Kernel<T>, p: &Problem<T>) -> Option<usize> {
    let size = std::mem::size_of::<T>();
    let address = p.b.ptr as usize;
    let uniform = address.is_multiple_of(size) && (p.b.rs * size).is_multiple_of(kernel.align);
    if p.b.cs != 1 || !uniform || b_aligned(kernel, &p.b) || p.m > 4 * kernel.mr {
        return None;
    }
    let peel = (kernel.align - address % kernel.align) / size;
    (p.m > kernel.mr && p.n >= peel + 3 * kernel.nr).then_some(peel)
}

/// A B read in place that is larger than this does not stay in cache between depth blocks.
const CACHED_B_BYTES: usize = 1 << 20;

/// Depth of a block when a large B is streamed in place (see `streams_b`).
const STREAM_KC: usize = 32;

/// Whether B is read in place but too large for the caches (a 4096 x 4096 Dense kernel at
/// batch 1): it is then streamed row by row, in shallow depth blocks across all its columns,
/// so each row is read whole, the two halves of its rows by two threads (`depth_halves`).
/// Read panel by panel it cost a page per 256-byte row piece, and
/// packed it was read and written once more: both ran 2.6x slower than numpy's
/// memory-bound product. Decided for the whole product, so the depth blocks (the summation
/// order) do not depend on how it is split across threads.
pub(crate) fn streams_b<T>(kernel: &Kernel<T>, p: &Problem<T>) -> bool {
    let bytes = p.k.saturating_mul(p.n).saturating_mul(std::mem::size_of::<T>());
    p.b.cs == 1 && p.m <= 4 * kernel.mr && bytes > CACHED_B_BYTES
}

/// The microkernels broadcast A one element at a time, so A is read in place whenever one of
/// its strides is 1 (row-major A, or a transposed view, whose micro-panel steps are then
/// contiguous); packing it cost more than it saved at every size measured. Only an A with no
/// unit stride is packed.
fn should_pack_a<T>(a: &Strided<T>) -> bool {
    a.cs != 1 && a.rs != 1
}

unsafe fn serial<T: Element>(kernel: &Kernel<T>, p: Problem<T>, streamed_b: bool, prepacked: Option<Prepacked<T>>) {
    let (mr, nr) = (kernel.mr, kernel.nr);
    let (m, n, k) = (p.m, p.n, p.k);
    if k == 0 {
        // An empty sum: C is zero, then the epilogue.
        for i in 0..m {
            for j in 0..n {
                *p.c.ptr.add(i * p.c.rs + j * p.c.cs) = T::ZERO;
            }
        }
        epilogue(kernel, &p, 0, 0, m, n);
        return;
    }
    let (kc, nc) = if streamed_b { (STREAM_KC.min(k), n) } else { (kernel.kc.min(k), kernel.nc.min(n)) };
    let mc = kernel.mc.min(m);
    let pack_whole_b = prepacked.is_some() || should_pack_b(kernel, &p.b, m, n, k);
    let packed_a = should_pack_a(&p.a);
    let micro_by_rows = if packed_a { kernel.by_rows } else { kernel.by_rows_strided };
    let a_len = if packed_a { mc * kc } else { 0 };
    let b_len = if prepacked.is_some() { 0 } else { kc * if pack_whole_b { nc.div_ceil(nr) * nr } else { nr } };
    // A staging tile for a C without unit column stride.
    let tile_len = mr * nr;
    scratch::with::<T, _>(&[a_len, b_len, tile_len], |buffers| {
        let (a_buf, b_buf, tile) = (buffers[0], buffers[1], buffers[2]);
        blocked(kernel, &p, BlockPlan { kc, mc, nc, pack_whole_b, packed_a, micro_by_rows, a_buf, b_buf, tile, prepacked });
    });
}

/// Block sizes and buffers of one serial product.
struct BlockPlan<T: 'static> {
    kc: usize,
    mc: usize,
    nc: usize,
    pack_whole_b: bool,
    packed_a: bool,
    micro_by_rows: &'static [super::microkernel::MicroKernel<T>],
    a_buf: *mut T,
    b_buf: *mut T,
    tile: *mut T,
    /// B already packed (for all threads): nothing to pack, `b_buf` unused.
    prepacked: Option<Prepacked<T>>,
}

/// The five loops over blocks of C (see the module comment) for one serial product.
unsafe fn blocked<T: Element>(kernel: &Kernel<T>, p: &Problem<T>, plan: BlockPlan<T>) {
    let (mr, nr) = (kernel.mr, kernel.nr);
    let (m, n, k) = (p.m, p.n, p.k);
    let BlockPlan { kc, mc, nc, pack_whole_b, packed_a, micro_by_rows, a_buf, b_buf, tile, prepacked } = plan;
    // A scale goes through the row epilogue, on the tile while it is still in L1.
    let fused_epilogue = matches!(p.act, Activation::Linear | Activation::Relu) && p.scale.is_null();
    let mut jc = 0;
    while jc < n {
        let nb = nc.min(n - jc);
        let mut pc = 0;
        while pc < k {
            let kb = kc.min(k - pc);
            let accumulate = pc > 0;
            let last_depth = pc + kb == k;
            let b_block = p.b.ptr.add(pc * p.b.rs + jc * p.b.cs);
            let full_panels = nb / nr;
            let b_packed = match prepacked {
                Some(pre) => pre.ptr.add(pc * pre.n_pad + (pre.col0 + jc) * kb),
                None => b_buf as *const T,
            };
            if prepacked.is_some() {
                // Packed already, by all threads together.
            } else if pack_whole_b {
                (kernel.pack_b)(b_block, p.b.rs, p.b.cs, kb, nb, nr, b_buf);
            } else if nb % nr != 0 {
                // Only the ragged last panel needs padding into the buffer.
                let tail = b_block.add(full_panels * nr * p.b.cs);
                (kernel.pack_b)(tail, p.b.rs, p.b.cs, kb, nb % nr, nr, b_buf);
            }
            let mut ic = 0;
            while ic < m {
                let mb = mc.min(m - ic);
                let a_block = p.a.ptr.add(ic * p.a.rs + pc * p.a.cs);
                if packed_a {
                    pack_a(a_block, p.a.rs, p.a.cs, mb, kb, mr, a_buf);
                }
                let mut jr = 0;
                while jr < nb {
                    let w = nr.min(nb - jr);
                    let (b_panel, rs_b) = if pack_whole_b {
                        (b_packed.add(jr * kb), nr)
                    } else if w == nr {
                        (b_block.add(jr), p.b.rs)
                    } else {
                        (b_buf as *const T, nr)
                    };
                    for (ir, r) in row_panels(mb, mr) {
                        let micro = micro_by_rows[r - 1];
                        let a_panel =
                            if packed_a { a_buf.add(ir * kb) as *const T } else { a_block.add(ir * p.a.rs) };
                        let c_tile = p.c.ptr.add((ic + ir) * p.c.rs + (jc + jr) * p.c.cs);
                        if p.c.cs == 1 {
                            // Bias and ReLU are applied in registers on the last depth block.
                            let finishing = last_depth && fused_epilogue;
                            let out = TileOut {
                                c: c_tile,
                                rs_c: p.c.rs,
                                cols: w,
                                accumulate,
                                bias: if finishing && !p.bias.is_null() { p.bias.add(jc + jr) } else { std::ptr::null() },
                                relu: finishing && p.act == Activation::Relu,
                            };
                            micro(kb, a_panel, p.a.rs, p.a.cs, b_panel, rs_b, out);
                            if last_depth && !fused_epilogue {
                                epilogue(kernel, p, ic + ir, jc + jr, r, w);
                            }
                        } else {
                            // C without unit column stride: computed into the staging tile.
                            let out = TileOut { c: tile, rs_c: nr, cols: nr, accumulate: false, bias: std::ptr::null(), relu: false };
                            micro(kb, a_panel, p.a.rs, p.a.cs, b_panel, rs_b, out);
                            for i in 0..r {
                                for j in 0..w {
                                    let dst = c_tile.add(i * p.c.rs + j * p.c.cs);
                                    let value = *tile.add(i * nr + j);
                                    *dst = if accumulate { *dst + value } else { value };
                                }
                            }
                            if last_depth {
                                epilogue(kernel, p, ic + ir, jc + jr, r, w);
                            }
                        }
                    }
                    jr += nr;
                }
                ic += mc;
            }
            pc += kb;
        }
        jc += nb;
    }
}

/// Scale, bias and activation over the `rows x cols` tile of C at (`i0`, `j0`).
unsafe fn epilogue<T: Element>(kernel: &Kernel<T>, p: &Problem<T>, i0: usize, j0: usize, rows: usize, cols: usize) {
    if p.act == Activation::Linear && p.bias.is_null() && p.scale.is_null() {
        return;
    }
    let bias = if p.bias.is_null() { None } else { Some(std::slice::from_raw_parts(p.bias.add(j0), cols)) };
    let scale = if p.scale.is_null() { None } else { Some(std::slice::from_raw_parts(p.scale.add(j0), cols)) };
    for i in 0..rows {
        let row = p.c.ptr.add((i0 + i) * p.c.rs + j0 * p.c.cs);
        if p.c.cs == 1 {
            (kernel.finish_row)(p.act, std::slice::from_raw_parts_mut(row, cols), scale, bias);
        } else {
            for j in 0..cols {
                let dst = row.add(j * p.c.cs);
                let mut z = *dst;
                if let Some(s) = scale {
                    z = z * *s.get_unchecked(j);
                }
                if let Some(b) = bias {
                    z = z + *b.get_unchecked(j);
                }
                *dst = p.act.apply(z);
            }
        }
    }
}

/// A streamed product (few rows, a large B) as two halves of the depth, one per thread, each
/// reading its own contiguous half of B's rows; the second half's sum goes to a buffer and is
/// added at the end. Split by columns instead, both threads read every row of B, half each:
/// interleaved runs were 13-15% slower at 1x4096x4096, 25-35% at 4-16 rows, 2x at 8x1024x1024.
/// Split the same way on any number of threads, so the bits do not depend on it.
unsafe fn depth_halves<T: Element>(kernel: &Kernel<T>, p: Problem<T>, threads: usize) {
    let (m, n, k) = (p.m, p.n, p.k);
    let half = (k / 2).div_ceil(STREAM_KC) * STREAM_KC;
    scratch::with_shared::<T, _>(m * n, |second| {
        let mut first = p;
        first.k = half;
        first.bias = std::ptr::null();
        first.scale = std::ptr::null();
        first.act = Activation::Linear;
        let mut rest = first;
        rest.k = k - half;
        rest.a.ptr = p.a.ptr.add(half * p.a.cs);
        rest.b.ptr = p.b.ptr.add(half * p.b.rs);
        rest.c = StridedMut { ptr: second, rs: n, cs: 1 };
        let next = std::sync::atomic::AtomicUsize::new(0);
        let work = || loop {
            match next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) {
                0 => serial(kernel, first, true, None),
                1 => serial(kernel, rest, true, None),
                _ => break,
            }
        };
        pool::run(threads.min(2) - 1, &work);
        for i in 0..m {
            for j in 0..n {
                let c = p.c.ptr.add(i * p.c.rs + j * p.c.cs);
                *c += *second.add(i * n + j);
            }
        }
        epilogue(kernel, &p, 0, 0, m, n);
    });
}
