//! Fused optimizer steps over flat float32 vectors: one pass per step instead of a dozen
//! numpy passes.
//!
//! Each element goes through exactly the float32 operations of Keras's update rule, in the
//! same order and with every intermediate rounded to float32 (Rust never contracts `a*b+c`
//! into an FMA and has no fast-math; `sqrt` and `/` are correctly rounded), so the results
//! are bitwise those of the numpy expressions. The coefficients arrive already rounded to
//! float32 (`1 - beta_1` is rounded from the double the caller computes, not from
//! `1f32 - beta_1_f32`), which is what numpy's float32 arithmetic sees too.
//!
//! On x86-64 the same element code is compiled a second time with AVX enabled (wider
//! vectors, same IEEE operations, no FMA) and chosen at run time.
//!
//! Subnormal numbers are flushed to zero during a step (FTZ and DAZ in MXCSR, restored
//! afterwards), as XLA and TensorFlow do on CPU. Without it a dead unit's Adam moment,
//! which decays by `beta_1` each step, spends hundreds of steps in the subnormal range, where
//! every multiply takes a microcode assist: measured on the guide's MLP, one Adam step over
//! 55k parameters went from 35 us to 830 us once its state turned subnormal. Only values
//! below 1.2e-38 differ from the numpy rule, and they move a weight by less than its ulp. The steps stay on one
//! thread: they are memory-bound, and splitting even 1M elements over two threads measured
//! slower than one on a busy two-core machine.

use crate::error::{Error, Result};

/// The per-step constants of Adam (no AMSGrad), all float32 as numpy uses them.
#[derive(Clone, Copy, Debug)]
pub struct AdamCoefficients {
    /// The bias-corrected step size `lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)`.
    pub alpha: f32,
    /// `1 - beta_1`, rounded to float32.
    pub one_minus_beta_1: f32,
    /// `1 - beta_2`, rounded to float32.
    pub one_minus_beta_2: f32,
    pub epsilon: f32,
}

/// The per-step constants of uncentered RMSprop, all float32 as numpy uses them.
#[derive(Clone, Copy, Debug)]
pub struct RmspropCoefficients {
    pub learning_rate: f32,
    pub rho: f32,
    /// `1 - rho`, rounded to float32.
    pub one_minus_rho: f32,
    pub epsilon: f32,
    /// The momentum factor; only used when a momentum slot is given.
    pub momentum: f32,
}

/// One Adam step: `m` and `v` are updated in place and the new values written to
/// `value_out`. Per element, in float32:
/// `m += (g - m) * (1 - beta_1)`; `v += (g*g - v) * (1 - beta_2)`;
/// `out = value - (m * alpha) / (sqrt(v) + epsilon)`.
pub fn adam_step_f32(
    value_out: &mut [f32],
    value_in: &[f32],
    grad: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    coefficients: AdamCoefficients,
) -> Result<()> {
    check_lengths(
        "adam_step_f32",
        value_out.len(),
        &[("value_in", value_in.len()), ("grad", grad.len()), ("m", m.len()), ("v", v.len())],
    )?;
    let slices = AdamSlices { out: value_out, value: value_in, grad, m, v };
    adam_dispatch(slices, coefficients);
    Ok(())
}

/// One uncentered RMSprop step: `velocity` (and `momentum` when given) are updated in place
/// and the new values written to `value_out`. Per element, in float32:
/// `velocity = velocity * rho + (g*g) * (1 - rho)`;
/// `increment = (g * lr) / sqrt(velocity + epsilon)`;
/// with momentum `momentum = momentum * factor + increment`, `out = value - momentum`,
/// otherwise `out = value - increment`.
pub fn rmsprop_step_f32(
    value_out: &mut [f32],
    value_in: &[f32],
    grad: &[f32],
    velocity: &mut [f32],
    momentum: Option<&mut [f32]>,
    coefficients: RmspropCoefficients,
) -> Result<()> {
    let mut lengths = vec![("value_in", value_in.len()), ("grad", grad.len()), ("velocity", velocity.len())];
    if let Some(momentum) = &momentum {
        lengths.push(("momentum", momentum.len()));
    }
    check_lengths("rmsprop_step_f32", value_out.len(), &lengths)?;
    let slices = RmspropSlices { out: value_out, value: value_in, grad, velocity, momentum };
    rmsprop_dispatch(slices, coefficients);
    Ok(())
}

fn check_lengths(what: &str, expected: usize, others: &[(&str, usize)]) -> Result<()> {
    for &(name, got) in others {
        if got != expected {
            return Err(Error::invalid(format!(
                "{what}: `{name}` has {got} elements, expected {expected} (the length of value_out)"
            )));
        }
    }
    Ok(())
}

/// The operands of one Adam step, all of one length.
struct AdamSlices<'a> {
    out: &'a mut [f32],
    value: &'a [f32],
    grad: &'a [f32],
    m: &'a mut [f32],
    v: &'a mut [f32],
}

/// The operands of one RMSprop step, all of one length.
struct RmspropSlices<'a> {
    out: &'a mut [f32],
    value: &'a [f32],
    grad: &'a [f32],
    velocity: &'a mut [f32],
    momentum: Option<&'a mut [f32]>,
}

fn adam_dispatch(slices: AdamSlices<'_>, c: AdamCoefficients) {
    let _flush = FlushSubnormals::enter();
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // Safety: the CPU supports AVX (checked just above).
        unsafe { adam_avx(slices, c) };
        return;
    }
    adam_portable(slices, c);
}

fn rmsprop_dispatch(slices: RmspropSlices<'_>, c: RmspropCoefficients) {
    let _flush = FlushSubnormals::enter();
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // Safety: the CPU supports AVX (checked just above).
        unsafe { rmsprop_avx(slices, c) };
        return;
    }
    rmsprop_portable(slices, c);
}

#[inline(never)]
fn adam_portable(slices: AdamSlices<'_>, c: AdamCoefficients) {
    adam_elements(slices, c);
}

#[inline(never)]
fn rmsprop_portable(slices: RmspropSlices<'_>, c: RmspropCoefficients) {
    rmsprop_elements(slices, c);
}

/// Sets flush-to-zero and denormals-are-zero for the current thread until dropped, then puts
/// the caller's MXCSR back. The element loops run in non-inlined functions called between the
/// two register writes, so no floating-point operation of theirs can move across them.
struct FlushSubnormals {
    #[cfg(target_arch = "x86_64")]
    saved: u32,
}

impl FlushSubnormals {
    #[cfg(target_arch = "x86_64")]
    fn enter() -> Self {
        /// MXCSR bits: FTZ (15) flushes subnormal results, DAZ (6) reads subnormal inputs as 0.
        const FTZ_DAZ: u32 = (1 << 15) | (1 << 6);
        let mut saved: u32 = 0;
        // Safety: stmxcsr/ldmxcsr only read/write the 4 bytes given; SSE is baseline on x86-64.
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut saved, options(nostack, preserves_flags));
            let flushed = saved | FTZ_DAZ;
            std::arch::asm!("ldmxcsr [{}]", in(reg) &flushed, options(nostack, preserves_flags));
        }
        Self { saved }
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn enter() -> Self {
        Self {}
    }
}

impl Drop for FlushSubnormals {
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        // Safety: restores the value read in `enter`.
        unsafe {
            std::arch::asm!("ldmxcsr [{}]", in(reg) &self.saved, options(nostack, preserves_flags));
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
#[inline(never)]
unsafe fn adam_avx(slices: AdamSlices<'_>, c: AdamCoefficients) {
    adam_elements(slices, c);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
#[inline(never)]
unsafe fn rmsprop_avx(slices: RmspropSlices<'_>, c: RmspropCoefficients) {
    rmsprop_elements(slices, c);
}

// The element loops: zipped iterators (no bounds checks, so the compiler vectorizes them)
// over slices of equal length (checked by the public functions).

#[inline(always)]
fn adam_elements(s: AdamSlices<'_>, c: AdamCoefficients) {
    let lanes = s.out.iter_mut().zip(s.value).zip(s.grad).zip(s.m.iter_mut()).zip(s.v.iter_mut());
    for ((((out, &value), &g), m), v) in lanes {
        let new_m = *m + (g - *m) * c.one_minus_beta_1;
        let new_v = *v + (g * g - *v) * c.one_minus_beta_2;
        *m = new_m;
        *v = new_v;
        *out = value - (new_m * c.alpha) / (new_v.sqrt() + c.epsilon);
    }
}

#[inline(always)]
fn rmsprop_elements(s: RmspropSlices<'_>, c: RmspropCoefficients) {
    let lanes = s.out.iter_mut().zip(s.value).zip(s.grad).zip(s.velocity.iter_mut());
    match s.momentum {
        None => {
            for (((out, &value), &g), velocity) in lanes {
                let new_velocity = *velocity * c.rho + (g * g) * c.one_minus_rho;
                *velocity = new_velocity;
                *out = value - (g * c.learning_rate) / (new_velocity + c.epsilon).sqrt();
            }
        }
        Some(momentum) => {
            for ((((out, &value), &g), velocity), momentum) in lanes.zip(momentum.iter_mut()) {
                let new_velocity = *velocity * c.rho + (g * g) * c.one_minus_rho;
                *velocity = new_velocity;
                let increment = (g * c.learning_rate) / (new_velocity + c.epsilon).sqrt();
                let new_momentum = *momentum * c.momentum + increment;
                *momentum = new_momentum;
                *out = value - new_momentum;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random floats in [-scale, scale) (xorshift), no dependency.
    fn noise(n: usize, seed: u64, scale: f32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect()
    }

    // The references below write the rule one numpy pass at a time, each pass over the
    // whole vector rounded to float32, as the previous Python implementation did.

    fn adam_reference(value: &[f32], g: &[f32], m: &mut [f32], v: &mut [f32], c: AdamCoefficients) -> Vec<f32> {
        let t: Vec<f32> = g.iter().zip(m.iter()).map(|(g, m)| (g - m) * c.one_minus_beta_1).collect();
        m.iter_mut().zip(&t).for_each(|(m, t)| *m += t);
        let t: Vec<f32> = g.iter().zip(v.iter()).map(|(g, v)| (g * g - v) * c.one_minus_beta_2).collect();
        v.iter_mut().zip(&t).for_each(|(v, t)| *v += t);
        let t: Vec<f32> = v.iter().map(|v| v.sqrt() + c.epsilon).collect();
        let u: Vec<f32> = m.iter().zip(&t).map(|(m, t)| m * c.alpha / t).collect();
        value.iter().zip(&u).map(|(x, u)| x - u).collect()
    }

    #[test]
    fn adam_matches_the_pass_by_pass_rule_bitwise() {
        // Lengths with ragged tails after the vector loop.
        for &n in &[1usize, 1001, 70_003] {
            let c = AdamCoefficients { alpha: 3.1e-4, one_minus_beta_1: (1.0f64 - 0.9) as f32, one_minus_beta_2: (1.0f64 - 0.999) as f32, epsilon: 1e-7 };
            let mut value = noise(n, 1, 0.5);
            let (mut m, mut v) = (vec![0.0f32; n], vec![0.0f32; n]);
            let (mut ref_value, mut ref_m, mut ref_v) = (value.clone(), m.clone(), v.clone());
            for step in 0..3 {
                let g = noise(n, 10 + step, 0.01);
                let mut out = vec![0.0f32; n];
                adam_step_f32(&mut out, &value, &g, &mut m, &mut v, c).unwrap();
                value = out;
                ref_value = adam_reference(&ref_value, &g, &mut ref_m, &mut ref_v, c);
            }
            assert!(value.iter().zip(&ref_value).all(|(a, b)| a.to_bits() == b.to_bits()));
            assert!(m.iter().zip(&ref_m).all(|(a, b)| a.to_bits() == b.to_bits()));
            assert!(v.iter().zip(&ref_v).all(|(a, b)| a.to_bits() == b.to_bits()));
        }
    }

    #[test]
    fn rmsprop_with_and_without_momentum_matches_the_pass_by_pass_rule_bitwise() {
        for &n in &[3usize, 999, 70_001] {
            for with_momentum in [false, true] {
                let c = RmspropCoefficients { learning_rate: 1e-3, rho: 0.9, one_minus_rho: (1.0f64 - 0.9) as f32, epsilon: 1e-7, momentum: 0.5 };
                let mut value = noise(n, 2, 0.5);
                let mut velocity = vec![0.0f32; n];
                let mut momentum = vec![0.0f32; n];
                let (mut ref_value, mut ref_velocity, mut ref_momentum) = (value.clone(), velocity.clone(), momentum.clone());
                for step in 0..3 {
                    let g = noise(n, 20 + step, 0.01);
                    let mut out = vec![0.0f32; n];
                    let slot = if with_momentum { Some(&mut momentum[..]) } else { None };
                    rmsprop_step_f32(&mut out, &value, &g, &mut velocity, slot, c).unwrap();
                    value = out;
                    // Reference, pass by pass.
                    let t: Vec<f32> = g.iter().map(|g| g * g * c.one_minus_rho).collect();
                    ref_velocity.iter_mut().zip(&t).for_each(|(vel, t)| *vel = *vel * c.rho + t);
                    let d: Vec<f32> = ref_velocity.iter().map(|vel| (vel + c.epsilon).sqrt()).collect();
                    let mut u: Vec<f32> = g.iter().zip(&d).map(|(g, d)| g * c.learning_rate / d).collect();
                    if with_momentum {
                        ref_momentum.iter_mut().zip(&u).for_each(|(mo, u)| *mo = *mo * c.momentum + u);
                        u = ref_momentum.clone();
                    }
                    ref_value = ref_value.iter().zip(&u).map(|(x, u)| x - u).collect();
                }
                assert!(value.iter().zip(&ref_value).all(|(a, b)| a.to_bits() == b.to_bits()));
                assert!(velocity.iter().zip(&ref_velocity).all(|(a, b)| a.to_bits() == b.to_bits()));
                assert!(momentum.iter().zip(&ref_momentum).all(|(a, b)| a.to_bits() == b.to_bits()));
            }
        }
    }

    #[test]
    fn subnormal_state_is_flushed_and_the_callers_float_mode_restored() {
        let c = AdamCoefficients { alpha: 1e-3, one_minus_beta_1: (1.0f64 - 0.9) as f32, one_minus_beta_2: (1.0f64 - 0.999) as f32, epsilon: 1e-7 };
        let n = 37;
        let value = noise(n, 3, 0.5);
        // A dead unit: zero gradient, a first moment about to decay below f32::MIN_POSITIVE.
        let g = vec![0.0f32; n];
        let (mut m, mut v) = (vec![1.2e-38f32; n], vec![1e-30f32; n]);
        let mut out = vec![0.0f32; n];
        adam_step_f32(&mut out, &value, &g, &mut m, &mut v, c).unwrap();
        // numpy would store 1.08e-38 (subnormal); flushed, the subnormal decrement
        // `(g - m) * 0.1` is 0 and the moment stays normal (as under XLA).
        assert!(m.iter().all(|&m| m == 1.2e-38), "{m:?}");
        assert!(out.iter().zip(&value).all(|(a, b)| a == b));
        // Back in the caller's mode, subnormal arithmetic works again.
        let tiny = std::hint::black_box(1.2e-38f32) * std::hint::black_box(0.5f32);
        assert!(tiny > 0.0 && tiny < f32::MIN_POSITIVE);
    }

    #[test]
    fn mismatched_lengths_are_refused_with_the_slot_named() {
        let c = AdamCoefficients { alpha: 1e-3, one_minus_beta_1: 0.1, one_minus_beta_2: 0.001, epsilon: 1e-7 };
        let (mut out, value, g, mut m, mut v) = (vec![0.0; 4], vec![0.0; 4], vec![0.0; 4], vec![0.0; 4], vec![0.0; 3]);
        let err = adam_step_f32(&mut out, &value, &g, &mut m, &mut v, c).unwrap_err();
        assert!(err.to_string().contains("`v` has 3 elements, expected 4"), "{err}");
        let c = RmspropCoefficients { learning_rate: 1e-3, rho: 0.9, one_minus_rho: 0.1, epsilon: 1e-7, momentum: 0.0 };
        let mut momentum = vec![0.0; 5];
        let err = rmsprop_step_f32(&mut out, &value, &g, &mut m, Some(&mut momentum), c).unwrap_err();
        assert!(err.to_string().contains("`momentum` has 5 elements"), "{err}");
    }
}
