//! Per-channel scale and shift over the last axis, `out = x * scale[c] + shift[c]`, in one
//! pass: BatchNormalization at inference, whose mean, variance, gamma and beta fold into
//! one scale and one shift per channel. numpy needs two passes and a temporary the size of
//! the tensor (multiply, then add), which is memory-bound on feature maps larger than cache.
//!
//! The product and the sum are each rounded to float32 (no FMA), so the values are bitwise
//! those of `np.multiply(x, scale) + shift`. One thread: the pass is memory-bound.

use crate::error::{Error, Result};
use crate::kernels::active_isa;

/// `out[i] = x[i] * scale[i % channels] + shift[i % channels]` with
/// `channels = scale.len()`; `x` and `out` hold whole rows of `channels`.
pub fn scale_shift_f32(x: &[f32], scale: &[f32], shift: &[f32], out: &mut [f32]) -> Result<()> {
    let channels = scale.len();
    if shift.len() != channels || channels == 0 {
        return Err(Error::invalid(format!(
            "scale_shift_f32: `scale` has {channels} elements and `shift` {}; expected one (non-zero) number of channels",
            shift.len()
        )));
    }
    if x.len() != out.len() || !x.len().is_multiple_of(channels) {
        return Err(Error::invalid(format!(
            "scale_shift_f32: `x` has {} elements and `out` {}; expected equal lengths, a multiple of the {channels} channels",
            x.len(),
            out.len()
        )));
    }
    match active_isa() {
        #[cfg(target_arch = "x86_64")]
        crate::kernels::Isa::Avx512 => unsafe { rows_avx512(x, scale, shift, out) },
        #[cfg(target_arch = "x86_64")]
        crate::kernels::Isa::Avx2 => unsafe { rows_avx2(x, scale, shift, out) },
        _ => rows(x, scale, shift, out),
    }
    Ok(())
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn rows_avx512(x: &[f32], scale: &[f32], shift: &[f32], out: &mut [f32]) {
    rows(x, scale, shift, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn rows_avx2(x: &[f32], scale: &[f32], shift: &[f32], out: &mut [f32]) {
    rows(x, scale, shift, out)
}

#[inline(always)]
fn rows(x: &[f32], scale: &[f32], shift: &[f32], out: &mut [f32]) {
    let channels = scale.len();
    for (row_in, row_out) in x.chunks_exact(channels).zip(out.chunks_exact_mut(channels)) {
        for (((o, &v), &s), &t) in row_out.iter_mut().zip(row_in).zip(scale).zip(shift) {
            *o = v * s + t;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equals_separately_rounded_multiply_then_add() {
        let channels = 37;
        let x: Vec<f32> = (0..channels * 5).map(|i| (i as f32 * 0.731).sin() * 3.0).collect();
        let scale: Vec<f32> = (0..channels).map(|i| 0.5 + i as f32 / 7.0).collect();
        let shift: Vec<f32> = (0..channels).map(|i| (i as f32 * 1.3).cos()).collect();
        let mut out = vec![0f32; x.len()];
        scale_shift_f32(&x, &scale, &shift, &mut out).unwrap();
        for (i, &got) in out.iter().enumerate() {
            let product = x[i] * scale[i % channels];
            let want = product + shift[i % channels];
            assert_eq!(got.to_bits(), want.to_bits(), "element {i}");
        }
    }

    #[test]
    fn mismatched_lengths_are_refused() {
        let mut out = vec![0f32; 6];
        let err = scale_shift_f32(&[0.0; 6], &[1.0; 4], &[0.0; 4], &mut out).unwrap_err();
        assert!(err.to_string().contains("multiple of the 4 channels"), "{err}");
        let err = scale_shift_f32(&[0.0; 6], &[1.0; 3], &[0.0; 2], &mut out).unwrap_err();
        assert!(err.to_string().contains("`shift` 2"), "{err}");
    }
}
