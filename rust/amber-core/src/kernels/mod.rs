//! SIMD matmul kernels: single- and double-precision GEMM over strided views, the fused
//! Dense forward `act(x·W + b)` and its backward pieces.
//!
//! - `dispatch`: which ISA path runs (detected, `AMBER_KERNEL_ISA`, or `set_isa`), threads.
//! - `view`: checked strided matrix views (transposes are stride swaps, never copies).
//! - `pack`, `gemm`: cache-blocked packing and the blocked, multi-threaded driver.
//! - `microkernel` and one module per ISA (`avx512`, `avx2`, `neon`, `generic`): register tiles.
//! - `activation`, `element`: the fused epilogue's math.

mod activation;
#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod dispatch;
mod element;
mod gemm;
mod generic;
mod microkernel;
#[cfg(target_arch = "aarch64")]
mod neon;
mod pack;
mod peak;
mod pool;
mod scratch;
mod view;

pub use activation::Activation;
pub(crate) use activation::finish_row;
pub use dispatch::{active_isa, detected_isa, max_threads, set_isa, supported_isas, Isa};
pub use element::Element;
pub use peak::peak_f32_flops;
pub use view::{MatMut, MatRef};

use crate::error::{Error, Result};
use gemm::{Problem, Strided, StridedMut};
use microkernel::Kernel;

mod sealed {
    pub trait Sealed: Sized + 'static {
        fn kernel(isa: super::Isa) -> &'static super::Kernel<Self>;
        /// Every register tile of the ISA, the main one first.
        fn tiles(isa: super::Isa) -> &'static [&'static super::Kernel<Self>];
    }
}

/// The element types the kernels support: `f32` and `f64`.
pub trait Float: Element + sealed::Sealed {}
impl Float for f32 {}
impl Float for f64 {}

impl sealed::Sealed for f32 {
    fn kernel(isa: Isa) -> &'static Kernel<f32> {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => &avx512::F32,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => &avx2::F32,
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => &neon::F32,
            _ => &generic::F32,
        }
    }
    fn tiles(isa: Isa) -> &'static [&'static Kernel<f32>] {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => &avx512::F32_TILES,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => &avx2::F32_TILES,
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => &neon::F32_TILES,
            _ => &generic::F32_TILES,
        }
    }
}

impl sealed::Sealed for f64 {
    fn kernel(isa: Isa) -> &'static Kernel<f64> {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => &avx512::F64,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => &avx2::F64,
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => &neon::F64,
            _ => &generic::F64,
        }
    }
    fn tiles(isa: Isa) -> &'static [&'static Kernel<f64>] {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => &avx512::F64_TILES,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => &avx2::F64_TILES,
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => &neon::F64_TILES,
            _ => &generic::F64_TILES,
        }
    }
}

/// The kernel for a product `n` columns wide: the ISA's tile with the least padded work
/// (columns rounded up to its width, times its relative cost per column), so a 10-unit
/// layer runs 16-wide tiles rather than mostly padding in 64-wide ones.
fn kernel_for<T: Float>(isa: Isa, n: usize) -> Result<&'static Kernel<T>> {
    if !isa.is_supported() {
        return Err(Error::invalid(format!("kernel ISA '{}' is not supported by this CPU", isa.name())));
    }
    let work = |kernel: &Kernel<T>| n.div_ceil(kernel.nr) * kernel.nr * kernel.column_cost;
    let tiles = T::tiles(isa);
    // `min_by_key` keeps the first of equals: the main tile wins ties.
    Ok(tiles.iter().copied().min_by_key(|kernel| work(kernel)).unwrap_or(T::kernel(isa)))
}

/// `out = act(a·b + bias)` on the given ISA path: the one entry point behind `matmul` and
/// `dense`. Any strides for `a`, `b` and `out` (transposed operands are free).
pub fn gemm_on<T: Float>(
    isa: Isa,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    bias: Option<&[T]>,
    act: Activation,
    out: MatMut<'_, T>,
) -> Result<()> {
    gemm_scaled_on(isa, a, b, None, bias, act, out)
}

/// `out = act(a·b * scale + bias)`, `scale` and `bias` one value per output column: a
/// convolution with an inference BatchNormalization folded in reads its kernel as it is
/// (mapped from the file, never copied) and applies the normalization's per-channel scale
/// and shift to each output tile while it is in cache.
pub fn gemm_scaled_on<T: Float>(
    isa: Isa,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    scale: Option<&[T]>,
    bias: Option<&[T]>,
    act: Activation,
    mut out: MatMut<'_, T>,
) -> Result<()> {
    let (m, k) = (a.rows(), a.cols());
    let n = b.cols();
    if b.rows() != k {
        return Err(Error::invalid(format!(
            "matmul: inner dimensions differ: a is {m}x{k}, b is {}x{n}",
            b.rows()
        )));
    }
    if out.rows() != m || out.cols() != n {
        return Err(Error::invalid(format!(
            "matmul: output is {}x{}, expected {m}x{n}",
            out.rows(),
            out.cols()
        )));
    }
    if let Some(bias) = bias {
        if bias.len() != n {
            return Err(Error::invalid(format!("dense: bias has {} values, expected {n}", bias.len())));
        }
    }
    if let Some(scale) = scale {
        if scale.len() != n {
            return Err(Error::invalid(format!("dense: scale has {} values, expected {n}", scale.len())));
        }
    }
    let kernel = kernel_for::<T>(isa, n)?;
    let problem = Problem {
        m,
        n,
        k,
        a: Strided { ptr: a.ptr(), rs: a.row_stride(), cs: a.col_stride() },
        b: Strided { ptr: b.ptr(), rs: b.row_stride(), cs: b.col_stride() },
        c: StridedMut { ptr: out.ptr(), rs: out.row_stride(), cs: out.col_stride() },
        scale: scale.map_or(std::ptr::null(), |s| s.as_ptr()),
        bias: bias.map_or(std::ptr::null(), |b| b.as_ptr()),
        act,
    };
    // Safety: the views checked that every addressed element is inside its slice and that
    // `out` has no aliased elements; `out` is borrowed mutably, so nothing else reads it.
    // A B read in place at a misaligned address (a numpy array is only 16-byte aligned) has
    // its first columns split off, each part on the tile its width calls for, both summed in
    // the depth blocks of the whole product (the bits do not depend on B's address).
    let streamed_b = gemm::streams_b(kernel, &problem);
    unsafe {
        match gemm::alignment_peel(kernel, &problem) {
            Some(peel) => {
                let (left, right) = problem.split_columns(peel);
                gemm::run(kernel_for::<T>(isa, peel)?, left, max_threads(), streamed_b);
                gemm::run(kernel_for::<T>(isa, n - peel)?, right, max_threads(), streamed_b);
            }
            None => gemm::run(kernel, problem, max_threads(), streamed_b),
        }
    }
    Ok(())
}

/// `out = a·b` on the active ISA path.
pub fn matmul<T: Float>(a: MatRef<'_, T>, b: MatRef<'_, T>, out: MatMut<'_, T>) -> Result<()> {
    gemm_on(active_isa(), a, b, None, Activation::Linear, out)
}

/// Fused Dense forward `out = act(x·w + bias)`: bias and activation are applied to each
/// output tile as it is finished, with no extra pass over the output.
pub fn dense<T: Float>(x: MatRef<'_, T>, w: MatRef<'_, T>, bias: Option<&[T]>, act: Activation, out: MatMut<'_, T>) -> Result<()> {
    gemm_on(active_isa(), x, w, bias, act, out)
}

/// `out = act(z)` elementwise; `z` is kept for the backward pass.
pub fn activation_forward<T: Float>(act: Activation, z: &[T], out: &mut [T]) -> Result<()> {
    if z.len() != out.len() {
        return Err(Error::invalid(format!("activation: input has {} values, output {}", z.len(), out.len())));
    }
    out.copy_from_slice(z);
    let kernel = T::kernel(active_isa());
    // Safety: `active_isa` only returns paths this CPU supports.
    unsafe { (kernel.finish_row)(act, out, None, None) };
    Ok(())
}

/// Backward of an activation: `out = dy * act'(z)` from the pre-activation `z`.
pub fn activation_backward<T: Float>(act: Activation, z: &[T], dy: &[T], out: &mut [T]) -> Result<()> {
    if z.len() != dy.len() || z.len() != out.len() {
        return Err(Error::invalid(format!(
            "activation backward: z has {} values, dy {}, out {}",
            z.len(),
            dy.len(),
            out.len()
        )));
    }
    let kernel = T::kernel(active_isa());
    // Safety: `active_isa` only returns paths this CPU supports.
    unsafe { (kernel.backward)(act, z, dy, out) };
    Ok(())
}

/// Backward of Dense given the gradient at the pre-activation, `dz` (`m x n`):
/// `dx = dz·wᵀ` (`m x k`), `dw = xᵀ·dz` (`k x n`), `db = column sums of dz` (`n`). The
/// transposes are stride swaps of the views: nothing is materialised.
pub fn dense_backward<T: Float>(
    x: MatRef<'_, T>,
    w: MatRef<'_, T>,
    dz: MatRef<'_, T>,
    dx: Option<MatMut<'_, T>>,
    dw: Option<MatMut<'_, T>>,
    db: Option<&mut [T]>,
) -> Result<()> {
    let (m, k, n) = (x.rows(), x.cols(), w.cols());
    if w.rows() != k || dz.rows() != m || dz.cols() != n {
        return Err(Error::invalid(format!(
            "dense backward: x is {m}x{k}, w is {}x{n}, dz is {}x{} (expected {m}x{n})",
            w.rows(),
            dz.rows(),
            dz.cols()
        )));
    }
    if let Some(dx) = dx {
        matmul(dz, w.t(), dx)?;
    }
    if let Some(dw) = dw {
        matmul(x.t(), dz, dw)?;
    }
    if let Some(db) = db {
        if db.len() != n {
            return Err(Error::invalid(format!("dense backward: db has {} values, expected {n}", db.len())));
        }
        db.fill(T::ZERO);
        for i in 0..m {
            for (j, slot) in db.iter_mut().enumerate() {
                if let Some(v) = dz.get(i, j) {
                    *slot += v;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
