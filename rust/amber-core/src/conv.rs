//! Depthwise 2-D convolution (NHWC, float32) read straight from the unpadded input.
//!
//! Output channel `c * multiplier + m` of pixel `(n, oh, ow)` is the sum over kernel taps
//! `(kh, kw)` of `x[n, oh*sh - top + kh*dh, ow*sw - left + kw*dw, c] * w[kh, kw, c, m]`;
//! taps that fall in the padding are skipped instead of multiplying a materialised zero.
//! The inner loop runs over the contiguous channel axis, which the compiler vectorises
//! (the same code is compiled again with AVX2 / AVX-512 enabled and picked at run time,
//! following `kernels::active_isa`).
//!
//! Each output starts at zero and adds one product per tap in row-major tap order, every
//! product and sum rounded to float32 (Rust never contracts `a*b+c` into an FMA), which is
//! exactly what the per-tap numpy loop computes: results agree bit for bit with it, up to
//! the sign of an exact zero (a skipped padded tap adds nothing where numpy adds `0 * w`).

use crate::error::{Error, Result};
use crate::kernels::{active_isa, finish_row, max_threads, Activation, Isa};

/// Where the kernel reads: strides, dilation and the zero padding on each side, all per
/// spatial axis (height, width).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DepthwiseGeometry {
    pub strides: [usize; 2],
    pub dilation: [usize; 2],
    /// `[top, bottom]` and `[left, right]`.
    pub pads: [[usize; 2]; 2],
}

impl DepthwiseGeometry {
    /// The output `(height, width)` of an input of `spatial` under a `window` kernel, or an
    /// error when the dilated window does not fit in the padded input.
    pub fn output_spatial(&self, spatial: [usize; 2], window: [usize; 2]) -> Result<[usize; 2]> {
        let mut out = [0; 2];
        for axis in 0..2 {
            let (stride, dilation) = (self.strides[axis], self.dilation[axis]);
            if stride == 0 || dilation == 0 {
                return Err(Error::invalid(format!(
                    "depthwise_conv2d: strides {:?} and dilation {:?} must be positive",
                    self.strides, self.dilation
                )));
            }
            let padded = spatial[axis] + self.pads[axis][0] + self.pads[axis][1];
            let span = (window[axis] - 1) * dilation + 1;
            if window[axis] == 0 || padded < span {
                return Err(Error::invalid(format!(
                    "depthwise_conv2d: the dilated kernel window of {span} along spatial axis {axis} does not fit \
                     in the padded input of {padded} (input {spatial:?}, pads {:?}, kernel {window:?}, dilation {:?})",
                    self.pads, self.dilation
                )));
            }
            out[axis] = (padded - span) / stride + 1;
        }
        Ok(out)
    }
}

/// Depthwise convolution of `x` (`[batch, height, width, channels]`, C-ordered) with
/// `kernel` (`[kh, kw, channels, multiplier]`) into `out`
/// (`[batch, out_h, out_w, channels * multiplier]`, every element overwritten).
pub fn depthwise_conv2d_f32(
    x: &[f32],
    x_shape: [usize; 4],
    kernel: &[f32],
    kernel_shape: [usize; 4],
    geometry: DepthwiseGeometry,
    out: &mut [f32],
    out_shape: [usize; 4],
) -> Result<()> {
    depthwise_conv2d_f32_fused(x, x_shape, kernel, kernel_shape, geometry, None, None, Activation::Linear, out, out_shape)
}

/// `depthwise_conv2d_f32` followed by `act(y * scale + bias)` (`scale` and `bias` one value
/// per output channel, each optional), applied to each output row while it is in cache: an
/// inference pass with a folded BatchNormalization and its ReLU costs no extra pass over the
/// feature map, and no scaled copy of the kernel.
#[allow(clippy::too_many_arguments)]
pub fn depthwise_conv2d_f32_fused(
    x: &[f32],
    x_shape: [usize; 4],
    kernel: &[f32],
    kernel_shape: [usize; 4],
    geometry: DepthwiseGeometry,
    scale: Option<&[f32]>,
    bias: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
    out_shape: [usize; 4],
) -> Result<()> {
    let [batch, _, _, channels] = x_shape;
    let [kh, kw, _, multiplier] = kernel_shape;
    check_len("x", x.len(), &x_shape)?;
    check_len("kernel", kernel.len(), &kernel_shape)?;
    check_len("out", out.len(), &out_shape)?;
    for (name, values) in [("bias", bias), ("scale", scale)] {
        if let Some(values) = values {
            if values.len() != channels * multiplier {
                return Err(Error::invalid(format!(
                    "depthwise_conv2d: the {name} has {} values, expected one per output channel ({})",
                    values.len(),
                    channels * multiplier
                )));
            }
        }
    }
    let expected = output_shape(x_shape, kernel_shape, geometry)?;
    let [_, out_h, out_w, _] = expected;
    if out_shape != expected {
        return Err(Error::invalid(format!(
            "depthwise_conv2d: `out` has shape {out_shape:?}, expected {expected:?}"
        )));
    }
    if out.is_empty() {
        return Ok(());
    }
    let problem = Problem { x, x_shape, kernel, kernel_shape, geometry, out_spatial: [out_h, out_w], scale, bias, act };
    let row_len = out_w * channels * multiplier;
    let rows = batch * out_h;
    // Split output rows over threads only when each gets ~2M multiply-adds (a few hundred
    // microseconds): on a busy two-core machine a thread spawned for less mostly waits for a
    // core (measured: a 3.5M-MAC layer took 13 ms wall for 2.4 ms of CPU on two threads).
    let work = out.len() * kh * kw;
    let threads = max_threads().min(rows).min(work / (1 << 21)).max(1);
    let isa = active_isa();
    if threads == 1 {
        run_rows(&problem, 0, out, isa);
        return Ok(());
    }
    let per_thread = rows.div_ceil(threads);
    std::thread::scope(|scope| {
        for (index, chunk) in out.chunks_mut(per_thread * row_len).enumerate() {
            let problem = &problem;
            scope.spawn(move || run_rows(problem, index * per_thread, chunk, isa));
        }
    });
    Ok(())
}

/// The gradients of `depthwise_conv2d_f32` for the output gradient `grad` (the output's
/// shape): the input's into `dx` and the kernel's into `dkernel` (each optional, shaped as
/// `x` and `kernel`, every element overwritten). Each output gradient is scattered back
/// along the taps that produced it (padded taps contribute nothing). Groups of images run on
/// several threads when there is enough work; the kernel gradient is summed per group, then
/// over the groups in order.
#[allow(clippy::too_many_arguments)]
pub fn depthwise_conv2d_backward_f32(
    x: &[f32],
    x_shape: [usize; 4],
    kernel: &[f32],
    kernel_shape: [usize; 4],
    geometry: DepthwiseGeometry,
    grad: &[f32],
    grad_shape: [usize; 4],
    mut dx: Option<&mut [f32]>,
    mut dkernel: Option<&mut [f32]>,
) -> Result<()> {
    check_len("x", x.len(), &x_shape)?;
    check_len("kernel", kernel.len(), &kernel_shape)?;
    check_len("grad", grad.len(), &grad_shape)?;
    if let Some(dx) = &dx {
        check_len("dx", dx.len(), &x_shape)?;
    }
    if let Some(dkernel) = &dkernel {
        check_len("dkernel", dkernel.len(), &kernel_shape)?;
    }
    let expected = output_shape(x_shape, kernel_shape, geometry)?;
    let [_, out_h, out_w, _] = expected;
    if grad_shape != expected {
        return Err(Error::invalid(format!(
            "depthwise_conv2d backward: `grad` has shape {grad_shape:?}, expected the output's {expected:?}"
        )));
    }
    if let Some(dx) = dx.as_deref_mut() {
        dx.fill(0.0);
    }
    if let Some(dkernel) = dkernel.as_deref_mut() {
        dkernel.fill(0.0);
    }
    let batch = x_shape[0];
    let image_len = x_shape[1] * x_shape[2] * x_shape[3];
    if batch == 0 || image_len == 0 {
        return Ok(()); // no input values: every tap is padding, both gradients stay zero
    }
    let problem = Problem { x, x_shape, kernel, kernel_shape, geometry, out_spatial: [out_h, out_w], scale: None, bias: None, act: Activation::Linear };
    let isa = active_isa();
    // Images in groups of `BACKWARD_IMAGES`, the same groups whatever the thread count: each
    // group's kernel gradient is summed on its own and the groups' sums added in order, so
    // the bits do not depend on how many threads ran them. The input gradients of different
    // images are disjoint.
    let groups = batch.div_ceil(BACKWARD_IMAGES);
    let work = grad.len() * kernel_shape[0] * kernel_shape[1];
    let threads = max_threads().min(groups).min(work / (1 << 21)).max(1);
    let grad_image_len = out_h * out_w * expected[3];
    let kernel_len = kernel.len();
    let mut partials = vec![0f32; if dkernel.is_some() { groups * kernel_len } else { 0 }];
    let run_group = |group: usize, dx: Option<&mut [f32]>, dk: Option<&mut [f32]>| {
        let first = group * BACKWARD_IMAGES;
        let count = BACKWARD_IMAGES.min(batch - first);
        let mut part = Problem { x: &x[first * image_len..(first + count) * image_len], ..problem };
        part.x_shape[0] = count;
        let g = &grad[first * grad_image_len..(first + count) * grad_image_len];
        run_backward(&part, g, dx, dk, isa);
    };
    let dx_groups: Vec<Option<&mut [f32]>> = match dx {
        Some(dx) => dx.chunks_mut(BACKWARD_IMAGES * image_len).map(Some).collect(),
        None => (0..groups).map(|_| None).collect(),
    };
    let dk_groups: Vec<Option<&mut [f32]>> = if partials.is_empty() {
        (0..groups).map(|_| None).collect()
    } else {
        partials.chunks_mut(kernel_len).map(Some).collect()
    };
    let mut jobs: Vec<(usize, Option<&mut [f32]>, Option<&mut [f32]>)> =
        dx_groups.into_iter().zip(dk_groups).enumerate().map(|(i, (a, b))| (i, a, b)).collect();
    if threads == 1 {
        for (group, dx, dk) in jobs.drain(..) {
            run_group(group, dx, dk);
        }
    } else {
        let per_thread = groups.div_ceil(threads);
        std::thread::scope(|scope| {
            let mut rest = jobs;
            while !rest.is_empty() {
                let tail = rest.split_off(per_thread.min(rest.len()));
                let mine = std::mem::replace(&mut rest, tail);
                let run_group = &run_group;
                scope.spawn(move || {
                    for (group, dx, dk) in mine {
                        run_group(group, dx, dk);
                    }
                });
            }
        });
    }
    if let Some(dkernel) = dkernel {
        for part in partials.chunks(kernel_len) {
            for (total, &value) in dkernel.iter_mut().zip(part) {
                *total += value;
            }
        }
    }
    Ok(())
}

/// Images per group of the backward pass (see `depthwise_conv2d_backward_f32`).
const BACKWARD_IMAGES: usize = 2;

fn run_backward(problem: &Problem<'_>, grad: &[f32], dx: Option<&mut [f32]>, dkernel: Option<&mut [f32]>, isa: Isa) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { backward_avx512(problem, grad, dx, dkernel) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { backward_avx2(problem, grad, dx, dkernel) },
        _ => backward_generic(problem, grad, dx, dkernel),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn backward_avx512(problem: &Problem<'_>, grad: &[f32], dx: Option<&mut [f32]>, dkernel: Option<&mut [f32]>) {
    backward_generic(problem, grad, dx, dkernel)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn backward_avx2(problem: &Problem<'_>, grad: &[f32], dx: Option<&mut [f32]>, dkernel: Option<&mut [f32]>) {
    backward_generic(problem, grad, dx, dkernel)
}

/// The scatter of `depthwise_conv2d_backward_f32` (shapes checked, outputs zeroed).
#[inline(always)]
fn backward_generic(problem: &Problem<'_>, grad: &[f32], mut dx: Option<&mut [f32]>, mut dkernel: Option<&mut [f32]>) {
    let [batch, height, width, channels] = problem.x_shape;
    let [kh, kw, _, multiplier] = problem.kernel_shape;
    let [out_h, out_w] = problem.out_spatial;
    let DepthwiseGeometry { strides, dilation, pads } = problem.geometry;
    let (x, kernel) = (problem.x, problem.kernel);
    let depth = channels * multiplier;
    for n in 0..batch {
        for oh in 0..out_h {
            let (kh_first, kh_end) = tap_range(oh, strides[0], pads[0][0], dilation[0], height, kh);
            for ow in 0..out_w {
                let (kw_first, kw_end) = tap_range(ow, strides[1], pads[1][0], dilation[1], width, kw);
                let at_out = ((n * out_h + oh) * out_w + ow) * depth;
                let g = &grad[at_out..at_out + depth];
                for i in kh_first..kh_end {
                    let ih = oh * strides[0] + i * dilation[0] - pads[0][0];
                    for j in kw_first..kw_end {
                        let iw = ow * strides[1] + j * dilation[1] - pads[1][0];
                        let at = ((n * height + ih) * width + iw) * channels;
                        let tap = (i * kw + j) * depth;
                        let (w, input) = (&kernel[tap..tap + depth], &x[at..at + channels]);
                        if let Some(dx) = dx.as_deref_mut() {
                            let dx = &mut dx[at..at + channels];
                            if multiplier == 1 {
                                for ((dx, &g), &w) in dx.iter_mut().zip(g).zip(w) {
                                    *dx += g * w;
                                }
                            } else {
                                for ((dx, g), w) in dx.iter_mut().zip(g.chunks_exact(multiplier)).zip(w.chunks_exact(multiplier)) {
                                    *dx += g.iter().zip(w).map(|(g, w)| g * w).sum::<f32>();
                                }
                            }
                        }
                        if let Some(dkernel) = dkernel.as_deref_mut() {
                            let dk = &mut dkernel[tap..tap + depth];
                            if multiplier == 1 {
                                for ((dk, &g), &v) in dk.iter_mut().zip(g).zip(input) {
                                    *dk += v * g;
                                }
                            } else {
                                for ((dk, g), &v) in dk.chunks_exact_mut(multiplier).zip(g.chunks_exact(multiplier)).zip(input) {
                                    for (dk, g) in dk.iter_mut().zip(g) {
                                        *dk += v * g;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The output shape of a depthwise convolution, after checking that the kernel matches the
/// input's channels (shared by the forward and the backward pass).
fn output_shape(x_shape: [usize; 4], kernel_shape: [usize; 4], geometry: DepthwiseGeometry) -> Result<[usize; 4]> {
    let [batch, height, width, channels] = x_shape;
    let [kh, kw, kernel_channels, multiplier] = kernel_shape;
    if kernel_channels != channels || multiplier == 0 {
        return Err(Error::invalid(format!(
            "depthwise_conv2d: the kernel of shape {kernel_shape:?} should be (kh, kw, {channels}, multiplier >= 1) \
             for an input of {channels} channels (shape {x_shape:?})"
        )));
    }
    let [out_h, out_w] = geometry.output_spatial([height, width], [kh, kw])?;
    Ok([batch, out_h, out_w, channels * multiplier])
}

fn check_len(name: &str, len: usize, shape: &[usize]) -> Result<()> {
    let expected: usize = shape.iter().product();
    if len == expected {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "depthwise_conv2d: `{name}` has {len} elements, expected {expected} for shape {shape:?}"
        )))
    }
}

/// One checked convolution: operands, shapes and the output size.
struct Problem<'a> {
    x: &'a [f32],
    x_shape: [usize; 4],
    kernel: &'a [f32],
    kernel_shape: [usize; 4],
    geometry: DepthwiseGeometry,
    out_spatial: [usize; 2],
    /// The epilogue of each output pixel: `act(y * scale + bias)`.
    scale: Option<&'a [f32]>,
    bias: Option<&'a [f32]>,
    act: Activation,
}

fn run_rows(problem: &Problem<'_>, first_row: usize, out: &mut [f32], isa: Isa) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { rows_avx512(problem, first_row, out) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { rows_avx2(problem, first_row, out) },
        _ => rows_generic::<16>(problem, first_row, out),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn rows_avx512(problem: &Problem<'_>, first_row: usize, out: &mut [f32]) {
    rows_generic::<32>(problem, first_row, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn rows_avx2(problem: &Problem<'_>, first_row: usize, out: &mut [f32]) {
    rows_generic::<16>(problem, first_row, out)
}

/// The valid taps of one axis for output index `o`: `(first, end)` with
/// `o*stride - pad + t*dilation` inside `0..size` exactly for `first <= t < end`.
#[inline(always)]
fn tap_range(o: usize, stride: usize, pad: usize, dilation: usize, size: usize, taps: usize) -> (usize, usize) {
    let start = (o * stride) as isize - pad as isize;
    let first = if start >= 0 { 0 } else { ((-start) as usize).div_ceil(dilation) };
    let end = if start >= size as isize { 0 } else { ((size as isize - 1 - start) as usize / dilation + 1).min(taps) };
    (first.min(end), end)
}

/// Output rows `first_row ..` (a row is one `(n, oh)`) into `out`, which holds whole rows;
/// `LANES` channels per register block in a row's interior (two vectors of the ISA).
#[inline(always)]
fn rows_generic<const LANES: usize>(problem: &Problem<'_>, first_row: usize, out: &mut [f32]) {
    let [_, height, width, channels] = problem.x_shape;
    let [kh, kw, _, multiplier] = problem.kernel_shape;
    let [out_h, out_w] = problem.out_spatial;
    let DepthwiseGeometry { strides, dilation, pads } = problem.geometry;
    let depth = channels * multiplier;
    // The pixel's valid taps as (input offset, kernel offset) pairs.
    let mut taps: Vec<(usize, usize)> = Vec::with_capacity(kh * kw);
    // The row's taps for pixels whose whole window row lies inside the input, the input
    // offset relative to the pixel's first column `ow * stride - left`.
    let mut row_taps: Vec<(usize, usize)> = Vec::with_capacity(kh * kw);
    // Output columns whose window lies inside the input horizontally.
    let interior_first = pads[1][0].div_ceil(strides[1]).min(out_w);
    let span = (kw - 1) * dilation[1] + 1;
    let interior_end = if width + pads[1][0] >= span { ((width + pads[1][0] - span) / strides[1] + 1).min(out_w) } else { 0 };
    let interior = interior_first..interior_end.max(interior_first);
    // With a multiplier, each input channel is repeated `multiplier` times so the product
    // runs over the output channel axis, contiguous in both kernel and output.
    let mut spread = vec![0f32; if multiplier > 1 { depth } else { 0 }];
    for (row_index, row) in out.chunks_exact_mut(out_w * depth).enumerate() {
        let row_id = first_row + row_index;
        let (n, oh) = (row_id / out_h, row_id % out_h);
        let (kh_first, kh_end) = tap_range(oh, strides[0], pads[0][0], dilation[0], height, kh);
        let mut ow = 0;
        if multiplier == 1 {
            row_taps.clear();
            for i in kh_first..kh_end {
                let ih = oh * strides[0] + i * dilation[0] - pads[0][0];
                for j in 0..kw {
                    row_taps.push((((n * height + ih) * width + j * dilation[1]) * channels, (i * kw + j) * depth));
                }
            }
        }
        while ow < out_w {
            if multiplier == 1 && ow == interior.start && interior.len() >= PIXELS {
                let whole = interior.len() / PIXELS * PIXELS;
                let first_column = ow * strides[1] - pads[1][0];
                let block = &mut row[ow * depth..(ow + whole) * depth];
                interior_pixels::<LANES>(block, channels, &row_taps, first_column * channels, strides[1] * channels, problem.x, problem.kernel);
                ow += whole;
                continue;
            }
            let pixel = &mut row[ow * depth..(ow + 1) * depth];
            let (kw_first, kw_end) = tap_range(ow, strides[1], pads[1][0], dilation[1], width, kw);
            taps.clear();
            for i in kh_first..kh_end {
                let ih = oh * strides[0] + i * dilation[0] - pads[0][0];
                for j in kw_first..kw_end {
                    let iw = ow * strides[1] + j * dilation[1] - pads[1][0];
                    taps.push((((n * height + ih) * width + iw) * channels, (i * kw + j) * depth));
                }
            }
            if multiplier == 1 {
                pixel_in_registers(pixel, &taps, problem.x, problem.kernel);
            } else {
                pixel.fill(0.0);
                for &(at, tap) in &taps {
                    for (group, &value) in spread.chunks_exact_mut(multiplier).zip(&problem.x[at..at + channels]) {
                        group.fill(value);
                    }
                    for ((acc, &a), &b) in pixel.iter_mut().zip(&spread).zip(&problem.kernel[tap..tap + depth]) {
                        *acc += a * b;
                    }
                }
            }
            ow += 1;
        }
        if problem.scale.is_some() || problem.bias.is_some() || problem.act != Activation::Linear {
            for pixel in row.chunks_exact_mut(depth) {
                finish_row(problem.act, pixel, problem.scale, problem.bias);
            }
        }
    }
}

/// Output pixels computed together in the interior of a row: independent sums that hide the
/// latency of each sum's chain of adds, sharing each kernel load.
const PIXELS: usize = 4;

/// A multiple of `PIXELS` consecutive interior pixels of one row (multiplier 1, so `channels`
/// is also the output depth): `first` is the input offset of the first pixel's first column,
/// `step` the offset between pixels, `row_taps` the (offset from a pixel's first column,
/// kernel offset) of the row's valid taps. Channel blocks of `LANES`, then 16, then the rest.
#[inline(always)]
fn interior_pixels<const LANES: usize>(
    block: &mut [f32],
    channels: usize,
    row_taps: &[(usize, usize)],
    first: usize,
    step: usize,
    x: &[f32],
    kernel: &[f32],
) {
    let reach = row_taps.iter().map(|&(relative, _)| relative).max().unwrap_or(0) + channels;
    let kernel_reach = row_taps.iter().map(|&(_, tap)| tap).max().unwrap_or(0) + channels;
    assert!(kernel_reach <= kernel.len(), "depthwise_conv2d: kernel tap out of range");
    for (index, group) in block.chunks_exact_mut(PIXELS * channels).enumerate() {
        let base = first + index * PIXELS * step;
        // Every read of this group lies below `base + (PIXELS - 1) * step + reach`.
        assert!(base + (PIXELS - 1) * step + reach <= x.len(), "depthwise_conv2d: input window out of range");
        // SAFETY: the two asserts bound every offset read below (start + lanes <= channels).
        let mut start = unsafe { channel_blocks_unchecked::<LANES>(group, channels, 0, row_taps, base, step, x, kernel) };
        if LANES > 16 {
            start = unsafe { channel_blocks_unchecked::<16>(group, channels, start, row_taps, base, step, x, kernel) };
        }
        for c in start..channels {
            for p in 0..PIXELS {
                let mut acc = 0f32;
                for &(relative, tap) in row_taps {
                    acc += x[base + p * step + relative + c] * kernel[tap + c];
                }
                group[p * channels + c] = acc;
            }
        }
    }
}

/// Whole blocks of `N` channels of `PIXELS` pixels from channel `start` on, sums kept in
/// registers over all taps; returns where the blocks stop.
///
/// # Safety
/// `base + (PIXELS - 1) * step + relative + channels <= x.len()` and
/// `tap + channels <= kernel.len()` for every `(relative, tap)` of `row_taps`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn channel_blocks_unchecked<const N: usize>(
    group: &mut [f32],
    channels: usize,
    mut start: usize,
    row_taps: &[(usize, usize)],
    base: usize,
    step: usize,
    x: &[f32],
    kernel: &[f32],
) -> usize {
    let (x, kernel) = (x.as_ptr(), kernel.as_ptr());
    while start + N <= channels {
        let mut acc = [[0f32; N]; PIXELS];
        for &(relative, tap) in row_taps {
            let w = &*(kernel.add(tap + start) as *const [f32; N]);
            for (p, acc) in acc.iter_mut().enumerate() {
                let a = &*(x.add(base + p * step + relative + start) as *const [f32; N]);
                for i in 0..N {
                    acc[i] += a[i] * w[i];
                }
            }
        }
        for (p, acc) in acc.iter().enumerate() {
            group[p * channels + start..p * channels + start + N].copy_from_slice(acc);
        }
        start += N;
    }
    start
}

/// One output pixel of a multiplier-1 convolution: channel blocks of 64, then 16, then the
/// rest, each summed over all taps in registers and stored once.
#[inline(always)]
fn pixel_in_registers(pixel: &mut [f32], taps: &[(usize, usize)], x: &[f32], kernel: &[f32]) {
    let mut start = 0;
    start = channel_blocks::<64>(pixel, start, taps, x, kernel);
    start = channel_blocks::<16>(pixel, start, taps, x, kernel);
    for c in start..pixel.len() {
        let mut acc = 0f32;
        for &(at, tap) in taps {
            acc += x[at + c] * kernel[tap + c];
        }
        pixel[c] = acc;
    }
}

/// Whole blocks of `N` channels from `start` on; returns where they stop.
#[inline(always)]
fn channel_blocks<const N: usize>(pixel: &mut [f32], mut start: usize, taps: &[(usize, usize)], x: &[f32], kernel: &[f32]) -> usize {
    while start + N <= pixel.len() {
        let mut acc = [0f32; N];
        for &(at, tap) in taps {
            let a: &[f32; N] = x[at + start..at + start + N].try_into().unwrap();
            let b: &[f32; N] = kernel[tap + start..tap + start + N].try_into().unwrap();
            for i in 0..N {
                acc[i] += a[i] * b[i];
            }
        }
        pixel[start..start + N].copy_from_slice(&acc);
        start += N;
    }
    start
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::supported_isas;

    /// A direct reference in float64 over an explicitly zero-padded input.
    fn reference(
        x: &[f32],
        x_shape: [usize; 4],
        kernel: &[f32],
        kernel_shape: [usize; 4],
        g: DepthwiseGeometry,
        out_spatial: [usize; 2],
    ) -> Vec<f64> {
        let [batch, height, width, channels] = x_shape;
        let [kh, kw, _, multiplier] = kernel_shape;
        let (ph, pw) = (height + g.pads[0][0] + g.pads[0][1], width + g.pads[1][0] + g.pads[1][1]);
        let mut padded = vec![0f64; batch * ph * pw * channels];
        for n in 0..batch {
            for h in 0..height {
                for w in 0..width {
                    for c in 0..channels {
                        padded[((n * ph + h + g.pads[0][0]) * pw + w + g.pads[1][0]) * channels + c] =
                            x[((n * height + h) * width + w) * channels + c] as f64;
                    }
                }
            }
        }
        let mut out = Vec::new();
        for n in 0..batch {
            for oh in 0..out_spatial[0] {
                for ow in 0..out_spatial[1] {
                    for c in 0..channels {
                        for m in 0..multiplier {
                            let mut sum = 0f64;
                            for i in 0..kh {
                                for j in 0..kw {
                                    let h = oh * g.strides[0] + i * g.dilation[0];
                                    let w = ow * g.strides[1] + j * g.dilation[1];
                                    sum += padded[((n * ph + h) * pw + w) * channels + c]
                                        * kernel[((i * kw + j) * channels + c) * multiplier + m] as f64;
                                }
                            }
                            out.push(sum);
                        }
                    }
                }
            }
        }
        out
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(2654435761).wrapping_add(12345);
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn matches_a_padded_float64_reference_on_every_isa() {
        let cases = [
            // (x shape, kernel hw, multiplier, strides, dilation, pads)
            ([1, 7, 9, 5], [3, 3], 1, [1, 1], [1, 1], [[1, 1], [1, 1]]),
            ([3, 8, 7, 17], [3, 3], 2, [2, 2], [1, 1], [[0, 1], [1, 1]]),
            ([2, 11, 6, 3], [5, 3], 3, [1, 2], [2, 1], [[4, 4], [1, 1]]),
            ([1, 5, 5, 40], [1, 1], 1, [2, 2], [1, 1], [[0, 0], [0, 0]]),
            ([2, 9, 10, 33], [5, 5], 1, [2, 1], [2, 2], [[0, 0], [4, 4]]),
            ([1, 2, 3, 4], [3, 3], 1, [1, 1], [1, 1], [[3, 3], [2, 2]]),
            // wide rows: interior groups of pixels, channel blocks of 32 and 16 and a rest
            ([2, 6, 23, 70], [3, 3], 1, [1, 2], [1, 1], [[1, 1], [0, 1]]),
            ([1, 5, 30, 19], [3, 5], 1, [1, 1], [1, 3], [[1, 1], [6, 6]]),
        ];
        for isa in supported_isas() {
            for (x_shape, window, multiplier, strides, dilation, pads) in cases {
                let kernel_shape = [window[0], window[1], x_shape[3], multiplier];
                let x = values(x_shape.iter().product(), 1);
                let kernel = values(kernel_shape.iter().product(), 2);
                let g = DepthwiseGeometry { strides, dilation, pads };
                let [oh, ow] = g.output_spatial([x_shape[1], x_shape[2]], window).unwrap();
                let out_shape = [x_shape[0], oh, ow, x_shape[3] * multiplier];
                let mut out = vec![f32::NAN; out_shape.iter().product()];
                // Through the checks once, then each instruction set on the whole output.
                depthwise_conv2d_f32(&x, x_shape, &kernel, kernel_shape, g, &mut out, out_shape).unwrap();
                out.fill(f32::NAN);
                let problem = Problem { x: &x, x_shape, kernel: &kernel, kernel_shape, geometry: g, out_spatial: [oh, ow], scale: None, bias: None, act: Activation::Linear };
                run_rows(&problem, 0, &mut out, isa);
                let expected = reference(&x, x_shape, &kernel, kernel_shape, g, [oh, ow]);
                for (k, (&got, &want)) in out.iter().zip(&expected).enumerate() {
                    assert!((got as f64 - want).abs() <= 1e-5 * (1.0 + want.abs()), "{isa:?} {x_shape:?} at {k}: {got} vs {want}");
                }
            }
        }
    }

    #[test]
    fn scale_bias_and_activation_epilogue_on_every_isa() {
        let x_shape = [2, 9, 23, 37];
        let (window, multiplier) = ([3, 3], 2);
        let kernel_shape = [window[0], window[1], x_shape[3], multiplier];
        let depth = x_shape[3] * multiplier;
        let x: Vec<f32> = values(x_shape.iter().product(), 3).iter().map(|v| v * 4.0).collect();
        let kernel = values(kernel_shape.iter().product(), 4);
        let bias: Vec<f32> = values(depth, 5).iter().map(|v| v * 3.0).collect();
        let scale: Vec<f32> = values(depth, 6).iter().map(|v| 0.5 + v.abs() * 2.0).collect();
        let g = DepthwiseGeometry { strides: [1, 2], dilation: [1, 1], pads: [[1, 1], [1, 1]] };
        let [oh, ow] = g.output_spatial([x_shape[1], x_shape[2]], window).unwrap();
        let out_shape = [x_shape[0], oh, ow, depth];
        let expected = reference(&x, x_shape, &kernel, kernel_shape, g, [oh, ow]);
        for isa in supported_isas() {
            for act in [Activation::Relu6, Activation::Relu, Activation::Silu, Activation::Linear] {
                let mut out = vec![f32::NAN; out_shape.iter().product()];
                depthwise_conv2d_f32_fused(&x, x_shape, &kernel, kernel_shape, g, Some(&scale), Some(&bias), act, &mut out, out_shape).unwrap();
                out.fill(f32::NAN);
                let problem = Problem { x: &x, x_shape, kernel: &kernel, kernel_shape, geometry: g, out_spatial: [oh, ow], scale: Some(&scale), bias: Some(&bias), act };
                run_rows(&problem, 0, &mut out, isa);
                let (mut below, mut above) = (0, 0);
                for (k, (&got, &sum)) in out.iter().zip(&expected).enumerate() {
                    let z = sum * scale[k % depth] as f64 + bias[k % depth] as f64;
                    below += usize::from(z < 0.0);
                    above += usize::from(z > 6.0);
                    let want = act.apply(z);
                    assert!((got as f64 - want).abs() <= 1e-5 * (1.0 + z.abs()), "{isa:?} {act:?} at {k}: {got} vs {want}");
                }
                assert!(below > 100 && above > 100, "the clipping is exercised at both ends");
            }
        }
        let mut out = vec![0f32; out_shape.iter().product()];
        let error = depthwise_conv2d_f32_fused(&x, x_shape, &kernel, kernel_shape, g, None, Some(&bias[1..]), Activation::Relu, &mut out, out_shape)
            .unwrap_err();
        assert!(error.to_string().contains("bias has 73 values, expected one per output channel (74)"), "{error}");
    }

    /// The adjoint identity: <conv(x, w), g> = <x, dx(g)> = <w, dw(g)>, in float64.
    #[test]
    fn backward_is_the_adjoint_of_the_forward() {
        let cases = [
            ([2, 7, 9, 5], [3, 3], 1, [2, 1], [1, 2], [[1, 1], [2, 2]]),
            ([1, 6, 5, 4], [2, 3], 3, [1, 2], [2, 1], [[1, 0], [1, 1]]),
        ];
        for (x_shape, window, multiplier, strides, dilation, pads) in cases {
            let kernel_shape = [window[0], window[1], x_shape[3], multiplier];
            let x = values(x_shape.iter().product(), 5);
            let kernel = values(kernel_shape.iter().product(), 6);
            let g = DepthwiseGeometry { strides, dilation, pads };
            let [oh, ow] = g.output_spatial([x_shape[1], x_shape[2]], window).unwrap();
            let out_shape = [x_shape[0], oh, ow, x_shape[3] * multiplier];
            let grad = values(out_shape.iter().product(), 7);
            let forward = reference(&x, x_shape, &kernel, kernel_shape, g, [oh, ow]);
            let target: f64 = forward.iter().zip(&grad).map(|(y, g)| y * *g as f64).sum();
            let mut dx = vec![f32::NAN; x.len()];
            let mut dk = vec![f32::NAN; kernel.len()];
            depthwise_conv2d_backward_f32(&x, x_shape, &kernel, kernel_shape, g, &grad, out_shape, Some(&mut dx), Some(&mut dk)).unwrap();
            let via_x: f64 = x.iter().zip(&dx).map(|(a, b)| *a as f64 * *b as f64).sum();
            let via_k: f64 = kernel.iter().zip(&dk).map(|(a, b)| *a as f64 * *b as f64).sum();
            assert!((via_x - target).abs() <= 1e-4 * (1.0 + target.abs()), "{via_x} vs {target}");
            assert!((via_k - target).abs() <= 1e-4 * (1.0 + target.abs()), "{via_k} vs {target}");
            let err = depthwise_conv2d_backward_f32(&x, x_shape, &kernel, kernel_shape, g, &grad[1..], out_shape, None, None).unwrap_err();
            assert!(err.to_string().contains("`grad` has"), "{err}");
        }
    }

    #[test]
    fn backward_over_image_groups_equals_the_groups_one_by_one() {
        // Large enough to run on several threads where the machine has several cores; the
        // result must be the groups' own results, summed in order, bit for bit.
        let x_shape = [7, 64, 64, 32];
        let kernel_shape = [3, 3, 32, 1];
        let g = DepthwiseGeometry { strides: [1, 1], dilation: [1, 1], pads: [[1, 1], [1, 1]] };
        let x = values(x_shape.iter().product(), 7);
        let kernel = values(kernel_shape.iter().product(), 8);
        let grad = values(x_shape.iter().product(), 9);
        let mut dx = vec![f32::NAN; x.len()];
        let mut dk = vec![f32::NAN; kernel.len()];
        depthwise_conv2d_backward_f32(&x, x_shape, &kernel, kernel_shape, g, &grad, x_shape, Some(&mut dx), Some(&mut dk)).unwrap();
        let image = 64 * 64 * 32;
        let mut dk_sum = vec![0f32; kernel.len()];
        for first in (0..7).step_by(BACKWARD_IMAGES) {
            let count = BACKWARD_IMAGES.min(7 - first);
            let shape = [count, 64, 64, 32];
            let (xs, gs) = (&x[first * image..(first + count) * image], &grad[first * image..(first + count) * image]);
            let mut dx_part = vec![0f32; count * image];
            let mut dk_part = vec![0f32; kernel.len()];
            depthwise_conv2d_backward_f32(xs, shape, &kernel, kernel_shape, g, gs, shape, Some(&mut dx_part), Some(&mut dk_part)).unwrap();
            assert_eq!(dx_part, dx[first * image..(first + count) * image]);
            for (total, value) in dk_sum.iter_mut().zip(&dk_part) {
                *total += value;
            }
        }
        assert_eq!(dk_sum, dk);
        // No input values at all: both gradients are zero (no chunk of zero length).
        let mut dk_empty = vec![f32::NAN; 1];
        let pads = DepthwiseGeometry { strides: [1, 1], dilation: [1, 1], pads: [[1, 1], [1, 1]] };
        depthwise_conv2d_backward_f32(&[], [1, 0, 1, 1], &[0.5], [1, 1, 1, 1], pads, &[1.0; 6], [1, 2, 3, 1], None, Some(&mut dk_empty)).unwrap();
        assert!(dk_empty.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn threaded_split_equals_one_thread() {
        // Large enough to be split over threads when the machine has several.
        let x_shape = [4, 60, 60, 64];
        let kernel_shape = [3, 3, 64, 1];
        let x = values(x_shape.iter().product(), 3);
        let kernel = values(kernel_shape.iter().product(), 4);
        let g = DepthwiseGeometry { strides: [1, 1], dilation: [1, 1], pads: [[1, 1], [1, 1]] };
        let out_shape = [4, 60, 60, 64];
        let mut out = vec![0f32; out_shape.iter().product()];
        depthwise_conv2d_f32(&x, x_shape, &kernel, kernel_shape, g, &mut out, out_shape).unwrap();
        let problem = Problem { x: &x, x_shape, kernel: &kernel, kernel_shape, geometry: g, out_spatial: [60, 60], scale: None, bias: None, act: Activation::Linear };
        let mut single = vec![0f32; out.len()];
        rows_generic::<16>(&problem, 0, &mut single);
        assert_eq!(out, single);
    }

    #[test]
    fn bad_shapes_are_refused_with_a_message() {
        let g = DepthwiseGeometry { strides: [1, 1], dilation: [1, 1], pads: [[0, 0], [0, 0]] };
        let x = vec![0f32; 2 * 2 * 3];
        let kernel = vec![0f32; 3 * 3 * 3];
        let mut out = vec![0f32; 3];
        let err = depthwise_conv2d_f32(&x, [1, 2, 2, 3], &kernel, [3, 3, 3, 1], g, &mut out, [1, 1, 1, 3]).unwrap_err();
        assert!(err.to_string().contains("does not fit"), "{err}");
        let err = depthwise_conv2d_f32(&x, [1, 2, 2, 3], &kernel[..9], [1, 1, 3, 3], g, &mut out, [1, 2, 2, 9]).unwrap_err();
        assert!(err.to_string().contains("`out` has 3 elements"), "{err}");
        let mut out = vec![0f32; 16];
        let err = depthwise_conv2d_f32(&x, [1, 2, 2, 3], &kernel[..4], [1, 1, 4, 1], g, &mut out, [1, 2, 2, 4]).unwrap_err();
        assert!(err.to_string().contains("should be (kh, kw, 3"), "{err}");
        let strided = DepthwiseGeometry { strides: [0, 1], ..g };
        let mut out = vec![0f32; 12];
        let err = depthwise_conv2d_f32(&x, [1, 2, 2, 3], &kernel[..3], [1, 1, 3, 1], strided, &mut out, [1, 2, 2, 3]).unwrap_err();
        assert!(err.to_string().contains("must be positive"), "{err}");
    }
}
