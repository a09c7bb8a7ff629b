//! Fused optimizer steps over flat float32 vectors: one pass per step instead of a dozen
//! numpy passes. Rules: SGD (plain, momentum, Nesterov), Adam (optionally AMSGrad), RMSprop
//! (optionally centered, optionally with momentum), Adagrad, Nadam, Adamax, Lion, Adadelta,
//! Ftrl, and the decoupled weight decay applied before any of them.
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

/// The per-step constants of SGD, all float32 as numpy uses them.
#[derive(Clone, Copy, Debug)]
pub struct SgdCoefficients {
    pub learning_rate: f32,
    /// The momentum factor; only used when a momentum slot is given.
    pub momentum: f32,
    /// Nesterov's look-ahead; only used when a momentum slot is given.
    pub nesterov: bool,
}

/// The per-step constants of Adam, all float32 as numpy uses them.
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

/// The per-step constants of RMSprop, all float32 as numpy uses them.
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

/// The per-step constants of Adagrad.
#[derive(Clone, Copy, Debug)]
pub struct AdagradCoefficients {
    pub learning_rate: f32,
    pub epsilon: f32,
}

/// The per-step constants of Nadam, each the float32 scalar Keras's rule computes once per
/// step (`u_t` is Dozat's momentum `beta_1 * (1 - 0.5 * 0.96^t)`, `prod_t` their running
/// product).
#[derive(Clone, Copy, Debug)]
pub struct NadamCoefficients {
    pub learning_rate: f32,
    pub one_minus_beta_1: f32,
    pub one_minus_beta_2: f32,
    pub epsilon: f32,
    /// `u_{t+1}`.
    pub next_momentum: f32,
    /// `1 - prod_t * u_{t+1}`.
    pub one_minus_next_product: f32,
    /// `1 - u_t`.
    pub one_minus_momentum: f32,
    /// `1 - prod_t`.
    pub one_minus_product: f32,
    /// `1 - beta_2^t`.
    pub one_minus_beta_2_power: f32,
}

/// The per-step constants of Adamax, all float32 as numpy uses them.
#[derive(Clone, Copy, Debug)]
pub struct AdamaxCoefficients {
    pub learning_rate: f32,
    pub one_minus_beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    /// `1 - beta_1^t`.
    pub one_minus_beta_1_power: f32,
}

/// The per-step constants of Lion, all float32 as numpy uses them.
#[derive(Clone, Copy, Debug)]
pub struct LionCoefficients {
    pub learning_rate: f32,
    pub beta_1: f32,
    pub one_minus_beta_1: f32,
    pub beta_2: f32,
    pub one_minus_beta_2: f32,
}

/// The per-step constants of Adadelta, all float32 as numpy uses them.
#[derive(Clone, Copy, Debug)]
pub struct AdadeltaCoefficients {
    pub learning_rate: f32,
    pub rho: f32,
    pub one_minus_rho: f32,
    pub epsilon: f32,
}

/// The exponent Ftrl raises its accumulator to (`-learning_rate_power`). Only the exponents
/// numpy's float32 `power` computes exactly are offered: for a scalar exponent of 0.5, 1 or 2
/// numpy takes `sqrt`, a copy or a square, and 0 gives 1. Any other exponent goes through
/// numpy's vectorized `pow` (SVML on AVX-512 machines, libm elsewhere), which is within an ulp
/// but not correctly rounded, so no kernel of ours could match it bit for bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FtrlPower {
    Zero,
    Half,
    One,
    Two,
}

impl FtrlPower {
    /// The exponent for `power` (`-learning_rate_power` as float32; `-0.0` counts as 0); an
    /// error for one numpy does not compute exactly.
    pub fn from_exponent(power: f32) -> Result<Self> {
        match power {
            0.0 => Ok(Self::Zero), // float patterns compare with ==, so -0.0 lands here too
            0.5 => Ok(Self::Half),
            1.0 => Ok(Self::One),
            2.0 => Ok(Self::Two),
            _ => Err(Error::invalid(format!(
                "ftrl_step_f32: accumulator power {power} has no exact float32 kernel, expected 0, 0.5, 1 or 2 \
                 (a learning_rate_power of 0, -0.5, -1 or -2)"
            ))),
        }
    }
}

/// The per-step constants of Ftrl, all float32 as numpy uses them.
#[derive(Clone, Copy, Debug)]
pub struct FtrlCoefficients {
    pub learning_rate: f32,
    pub power: FtrlPower,
    /// `2 * l2_shrinkage_regularization_strength`, rounded to float32.
    pub two_l2_shrinkage: f32,
    /// `l1_regularization_strength`: the linear slot is clipped to `[-l1, l1]`.
    pub l1: f32,
    /// `2 * (l2_regularization_strength + beta / (2 * lr))`, in float32 scalar arithmetic.
    pub two_l2: f32,
}

/// One SGD step, the new values written to `value_out`. Per element, in float32, with
/// `step = g * lr`: without a momentum slot `out = value - step`; with one
/// `momentum = momentum * factor - step`, then `out = value + momentum`, or under Nesterov
/// `out = value + (momentum * factor - step)`.
pub fn sgd_step_f32(
    value_out: &mut [f32],
    value_in: &[f32],
    grad: &[f32],
    momentum: Option<&mut [f32]>,
    coefficients: SgdCoefficients,
) -> Result<()> {
    check_lengths(
        "sgd_step_f32",
        value_out.len(),
        &[("value_in", Some(value_in.len())), ("grad", Some(grad.len())), ("momentum", momentum.as_ref().map(|s| s.len()))],
    )?;
    run_flushed(Sgd { out: value_out, value: value_in, grad, momentum, c: coefficients });
    Ok(())
}

/// One Adam step: `m` and `v` (and `v_hat` under AMSGrad) are updated in place and the new
/// values written to `value_out`. Per element, in float32:
/// `m += (g - m) * (1 - beta_1)`; `v += (g*g - v) * (1 - beta_2)`;
/// under AMSGrad `v_hat = maximum(v_hat, v)` (numpy's: a NaN on either side wins) and `v_hat`
/// replaces `v` below; `out = value - (m * alpha) / (sqrt(v) + epsilon)`.
pub fn adam_step_f32(
    value_out: &mut [f32],
    value_in: &[f32],
    grad: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    v_hat: Option<&mut [f32]>,
    coefficients: AdamCoefficients,
) -> Result<()> {
    check_lengths(
        "adam_step_f32",
        value_out.len(),
        &[
            ("value_in", Some(value_in.len())),
            ("grad", Some(grad.len())),
            ("m", Some(m.len())),
            ("v", Some(v.len())),
            ("v_hat", v_hat.as_ref().map(|s| s.len())),
        ],
    )?;
    run_flushed(Adam { out: value_out, value: value_in, grad, m, v, v_hat, c: coefficients });
    Ok(())
}

/// One RMSprop step: `velocity` (and `average_gradient` when centered, `momentum` when given)
/// are updated in place and the new values written to `value_out`. Per element, in float32:
/// `velocity = velocity * rho + (g*g) * (1 - rho)`; centered,
/// `average = average * rho + g * (1 - rho)` and `denominator = (velocity - average*average) + epsilon`,
/// otherwise `denominator = velocity + epsilon`; `increment = (g * lr) / sqrt(denominator)`;
/// with momentum `momentum = momentum * factor + increment`, `out = value - momentum`,
/// otherwise `out = value - increment`.
pub fn rmsprop_step_f32(
    value_out: &mut [f32],
    value_in: &[f32],
    grad: &[f32],
    velocity: &mut [f32],
    average_gradient: Option<&mut [f32]>,
    momentum: Option<&mut [f32]>,
    coefficients: RmspropCoefficients,
) -> Result<()> {
    check_lengths(
        "rmsprop_step_f32",
        value_out.len(),
        &[
            ("value_in", Some(value_in.len())),
            ("grad", Some(grad.len())),
            ("velocity", Some(velocity.len())),
            ("average_gradient", average_gradient.as_ref().map(|s| s.len())),
            ("momentum", momentum.as_ref().map(|s| s.len())),
        ],
    )?;
    run_flushed(Rmsprop { out: value_out, value: value_in, grad, velocity, average: average_gradient, momentum, c: coefficients });
    Ok(())
}

/// One Adagrad step: `accumulator` is updated in place and the new values written to
/// `value_out`. Per element, in float32: `accumulator = accumulator + g*g`;
/// `out = value - (g * lr) / sqrt(accumulator + epsilon)`.
pub fn adagrad_step_f32(
    value_out: &mut [f32],
    value_in: &[f32],
    grad: &[f32],
    accumulator: &mut [f32],
    coefficients: AdagradCoefficients,
) -> Result<()> {
    check_lengths(
        "adagrad_step_f32",
        value_out.len(),
        &[("value_in", Some(value_in.len())), ("grad", Some(grad.len())), ("accumulator", Some(accumulator.len()))],
    )?;
    run_flushed(Adagrad { out: value_out, value: value_in, grad, accumulator, c: coefficients });
    Ok(())
}

/// One Nadam step: `m` and `v` are updated in place and the new values written to
/// `value_out`. Per element, in float32: `m` and `v` as in Adam, then
/// `m_hat = (u_{t+1} * m) / (1 - prod_t * u_{t+1}) + ((1 - u_t) * g) / (1 - prod_t)`;
/// `v_hat = v / (1 - beta_2^t)`; `out = value - (m_hat * lr) / (sqrt(v_hat) + epsilon)`.
pub fn nadam_step_f32(
    value_out: &mut [f32],
    value_in: &[f32],
    grad: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    coefficients: NadamCoefficients,
) -> Result<()> {
    check_lengths(
        "nadam_step_f32",
        value_out.len(),
        &[("value_in", Some(value_in.len())), ("grad", Some(grad.len())), ("m", Some(m.len())), ("v", Some(v.len()))],
    )?;
    run_flushed(Nadam { out: value_out, value: value_in, grad, m, v, c: coefficients });
    Ok(())
}

/// One Adamax step: `m` and `u` are updated in place and the new values written to
/// `value_out`. Per element, in float32: `m += (g - m) * (1 - beta_1)`;
/// `u = maximum(u * beta_2, |g|)` (numpy's maximum);
/// `out = value - (lr * m) / ((1 - beta_1^t) * (u + epsilon))`.
pub fn adamax_step_f32(
    value_out: &mut [f32],
    value_in: &[f32],
    grad: &[f32],
    m: &mut [f32],
    u: &mut [f32],
    coefficients: AdamaxCoefficients,
) -> Result<()> {
    check_lengths(
        "adamax_step_f32",
        value_out.len(),
        &[("value_in", Some(value_in.len())), ("grad", Some(grad.len())), ("m", Some(m.len())), ("u", Some(u.len()))],
    )?;
    run_flushed(Adamax { out: value_out, value: value_in, grad, m, u, c: coefficients });
    Ok(())
}

/// One Lion step: `m` is updated in place and the new values written to `value_out`. Per
/// element, in float32: `out = value - lr * sign(m * beta_1 + g * (1 - beta_1))` (numpy's
/// sign: +0 for either zero, NaN kept); then `m = m * beta_2 + g * (1 - beta_2)`.
pub fn lion_step_f32(
    value_out: &mut [f32],
    value_in: &[f32],
    grad: &[f32],
    m: &mut [f32],
    coefficients: LionCoefficients,
) -> Result<()> {
    check_lengths(
        "lion_step_f32",
        value_out.len(),
        &[("value_in", Some(value_in.len())), ("grad", Some(grad.len())), ("m", Some(m.len()))],
    )?;
    run_flushed(Lion { out: value_out, value: value_in, grad, m, c: coefficients });
    Ok(())
}

/// One Adadelta step: the accumulators are updated in place and the new values written to
/// `value_out`. Per element, in float32:
/// `accumulated_grad = accumulated_grad * rho + (g*g) * (1 - rho)`;
/// `delta = -((sqrt(accumulated_delta + epsilon) * g) / sqrt(accumulated_grad + epsilon))`;
/// `accumulated_delta = accumulated_delta * rho + (delta*delta) * (1 - rho)`;
/// `out = value + lr * delta`.
pub fn adadelta_step_f32(
    value_out: &mut [f32],
    value_in: &[f32],
    grad: &[f32],
    accumulated_grad: &mut [f32],
    accumulated_delta: &mut [f32],
    coefficients: AdadeltaCoefficients,
) -> Result<()> {
    check_lengths(
        "adadelta_step_f32",
        value_out.len(),
        &[
            ("value_in", Some(value_in.len())),
            ("grad", Some(grad.len())),
            ("accumulated_grad", Some(accumulated_grad.len())),
            ("accumulated_delta", Some(accumulated_delta.len())),
        ],
    )?;
    run_flushed(Adadelta { out: value_out, value: value_in, grad, accumulated_grad, accumulated_delta, c: coefficients });
    Ok(())
}

/// One Ftrl step: `accumulator` and `linear` are updated in place and the new values written
/// to `value_out`. Per element, in float32, with `pow` the exponent of `coefficients.power`:
/// `new_accumulator = accumulator + g*g`;
/// `linear += (g + two_l2_shrinkage * value) - ((pow(new_accumulator) - pow(accumulator)) / lr) * value`;
/// `quadratic = pow(new_accumulator) / lr + two_l2`;
/// `out = (clip(linear, -l1, l1) - linear) / quadratic` (numpy's clip).
pub fn ftrl_step_f32(
    value_out: &mut [f32],
    value_in: &[f32],
    grad: &[f32],
    accumulator: &mut [f32],
    linear: &mut [f32],
    coefficients: FtrlCoefficients,
) -> Result<()> {
    check_lengths(
        "ftrl_step_f32",
        value_out.len(),
        &[
            ("value_in", Some(value_in.len())),
            ("grad", Some(grad.len())),
            ("accumulator", Some(accumulator.len())),
            ("linear", Some(linear.len())),
        ],
    )?;
    run_flushed(Ftrl { out: value_out, value: value_in, grad, accumulator, linear, c: coefficients });
    Ok(())
}

/// Decoupled weight decay (AdamW and every optimizer given `weight_decay`), applied before
/// the update rule. Per element, in float32: `out = value - (value * weight_decay) * lr`.
pub fn weight_decay_f32(value_out: &mut [f32], value_in: &[f32], weight_decay: f32, learning_rate: f32) -> Result<()> {
    check_lengths("weight_decay_f32", value_out.len(), &[("value_in", Some(value_in.len()))])?;
    run_flushed(WeightDecay { out: value_out, value: value_in, weight_decay, learning_rate });
    Ok(())
}

/// Every given operand must have `expected` elements (absent optional slots are `None`).
fn check_lengths(what: &str, expected: usize, others: &[(&str, Option<usize>)]) -> Result<()> {
    for &(name, got) in others {
        if let Some(got) = got.filter(|&got| got != expected) {
            return Err(Error::invalid(format!(
                "{what}: `{name}` has {got} elements, expected {expected} (the length of value_out)"
            )));
        }
    }
    Ok(())
}

/// The element loop of one rule over its operands (all of one length, checked by the public
/// functions). `run` is always inlined, so it is compiled into each instruction-set variant.
trait ElementLoop {
    fn run(self);
}

/// Runs `step` with subnormals flushed, on the widest instruction set the CPU has.
fn run_flushed<L: ElementLoop>(step: L) {
    let _flush = FlushSubnormals::enter();
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // Safety: the CPU supports AVX (checked just above).
        unsafe { run_avx(step) };
        return;
    }
    run_portable(step);
}

#[inline(never)]
fn run_portable<L: ElementLoop>(step: L) {
    step.run();
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
#[inline(never)]
unsafe fn run_avx<L: ElementLoop>(step: L) {
    step.run();
}

/// Sets flush-to-zero and denormals-are-zero for the current thread until dropped, then puts
/// the caller's float mode back (MXCSR on x86-64, FPCR on aarch64). The element loops run in
/// non-inlined functions called between the two register writes, so no floating-point
/// operation of theirs can move across them.
struct FlushSubnormals {
    #[cfg(target_arch = "x86_64")]
    saved: u32,
    #[cfg(target_arch = "aarch64")]
    saved: u64,
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

    #[cfg(target_arch = "aarch64")]
    fn enter() -> Self {
        /// FPCR bit 24 (FZ): subnormal inputs and results of single- and double-precision
        /// operations are flushed to zero, what FTZ and DAZ do together on x86.
        const FZ: u64 = 1 << 24;
        let saved: u64;
        // Safety: reading and writing FPCR only changes this thread's float mode; it is put
        // back on drop.
        unsafe {
            std::arch::asm!("mrs {}, fpcr", out(reg) saved, options(nostack, preserves_flags));
            std::arch::asm!("msr fpcr, {}", in(reg) saved | FZ, options(nostack, preserves_flags));
        }
        Self { saved }
    }

    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
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
        #[cfg(target_arch = "aarch64")]
        // Safety: restores the value read in `enter`.
        unsafe {
            std::arch::asm!("msr fpcr, {}", in(reg) self.saved, options(nostack, preserves_flags));
        }
    }
}

// The element loops: zipped iterators (no bounds checks, so the compiler vectorizes them),
// one loop per combination of optional slots so no loop branches per element.

struct Sgd<'a> {
    out: &'a mut [f32],
    value: &'a [f32],
    grad: &'a [f32],
    momentum: Option<&'a mut [f32]>,
    c: SgdCoefficients,
}

impl ElementLoop for Sgd<'_> {
    #[inline(always)]
    fn run(self) {
        let c = self.c;
        let lanes = self.out.iter_mut().zip(self.value).zip(self.grad);
        match self.momentum {
            None => {
                for ((out, &value), &g) in lanes {
                    *out = value - g * c.learning_rate;
                }
            }
            Some(momentum) if c.nesterov => {
                for (((out, &value), &g), m) in lanes.zip(momentum.iter_mut()) {
                    let step = g * c.learning_rate;
                    let new_m = *m * c.momentum - step;
                    *m = new_m;
                    *out = value + (new_m * c.momentum - step);
                }
            }
            Some(momentum) => {
                for (((out, &value), &g), m) in lanes.zip(momentum.iter_mut()) {
                    let new_m = *m * c.momentum - g * c.learning_rate;
                    *m = new_m;
                    *out = value + new_m;
                }
            }
        }
    }
}

struct Adam<'a> {
    out: &'a mut [f32],
    value: &'a [f32],
    grad: &'a [f32],
    m: &'a mut [f32],
    v: &'a mut [f32],
    v_hat: Option<&'a mut [f32]>,
    c: AdamCoefficients,
}

/// numpy's `maximum` of two float32 arrays, element by element: `a` when `a > b` or `a` is
/// NaN, else `b` (a NaN on either side is the result; of equal values, `-0` and `+0`
/// included, the second).
#[inline(always)]
fn numpy_maximum(a: f32, b: f32) -> f32 {
    if a > b || a.is_nan() { a } else { b }
}

impl ElementLoop for Adam<'_> {
    #[inline(always)]
    fn run(self) {
        let c = self.c;
        let lanes = self.out.iter_mut().zip(self.value).zip(self.grad).zip(self.m.iter_mut()).zip(self.v.iter_mut());
        match self.v_hat {
            None => {
                for ((((out, &value), &g), m), v) in lanes {
                    let new_m = *m + (g - *m) * c.one_minus_beta_1;
                    let new_v = *v + (g * g - *v) * c.one_minus_beta_2;
                    *m = new_m;
                    *v = new_v;
                    *out = value - (new_m * c.alpha) / (new_v.sqrt() + c.epsilon);
                }
            }
            Some(v_hat) => {
                for (((((out, &value), &g), m), v), v_hat) in lanes.zip(v_hat.iter_mut()) {
                    let new_m = *m + (g - *m) * c.one_minus_beta_1;
                    let new_v = *v + (g * g - *v) * c.one_minus_beta_2;
                    let new_v_hat = numpy_maximum(*v_hat, new_v);
                    *m = new_m;
                    *v = new_v;
                    *v_hat = new_v_hat;
                    *out = value - (new_m * c.alpha) / (new_v_hat.sqrt() + c.epsilon);
                }
            }
        }
    }
}

struct Rmsprop<'a> {
    out: &'a mut [f32],
    value: &'a [f32],
    grad: &'a [f32],
    velocity: &'a mut [f32],
    average: Option<&'a mut [f32]>,
    momentum: Option<&'a mut [f32]>,
    c: RmspropCoefficients,
}

impl RmspropCoefficients {
    #[inline(always)]
    fn velocity(&self, velocity: f32, g: f32) -> f32 {
        velocity * self.rho + (g * g) * self.one_minus_rho
    }

    #[inline(always)]
    fn average(&self, average: f32, g: f32) -> f32 {
        average * self.rho + g * self.one_minus_rho
    }

    #[inline(always)]
    fn increment(&self, g: f32, denominator: f32) -> f32 {
        (g * self.learning_rate) / denominator.sqrt()
    }
}

impl ElementLoop for Rmsprop<'_> {
    #[inline(always)]
    fn run(self) {
        let c = self.c;
        let lanes = self.out.iter_mut().zip(self.value).zip(self.grad).zip(self.velocity.iter_mut());
        match (self.average, self.momentum) {
            (None, None) => {
                for (((out, &value), &g), velocity) in lanes {
                    let new_velocity = c.velocity(*velocity, g);
                    *velocity = new_velocity;
                    *out = value - c.increment(g, new_velocity + c.epsilon);
                }
            }
            (None, Some(momentum)) => {
                for ((((out, &value), &g), velocity), momentum) in lanes.zip(momentum.iter_mut()) {
                    let new_velocity = c.velocity(*velocity, g);
                    *velocity = new_velocity;
                    let new_momentum = *momentum * c.momentum + c.increment(g, new_velocity + c.epsilon);
                    *momentum = new_momentum;
                    *out = value - new_momentum;
                }
            }
            (Some(average), None) => {
                for ((((out, &value), &g), velocity), average) in lanes.zip(average.iter_mut()) {
                    let new_velocity = c.velocity(*velocity, g);
                    let new_average = c.average(*average, g);
                    *velocity = new_velocity;
                    *average = new_average;
                    let denominator = (new_velocity - new_average * new_average) + c.epsilon;
                    *out = value - c.increment(g, denominator);
                }
            }
            (Some(average), Some(momentum)) => {
                let lanes = lanes.zip(average.iter_mut()).zip(momentum.iter_mut());
                for (((((out, &value), &g), velocity), average), momentum) in lanes {
                    let new_velocity = c.velocity(*velocity, g);
                    let new_average = c.average(*average, g);
                    *velocity = new_velocity;
                    *average = new_average;
                    let denominator = (new_velocity - new_average * new_average) + c.epsilon;
                    let new_momentum = *momentum * c.momentum + c.increment(g, denominator);
                    *momentum = new_momentum;
                    *out = value - new_momentum;
                }
            }
        }
    }
}

struct Adagrad<'a> {
    out: &'a mut [f32],
    value: &'a [f32],
    grad: &'a [f32],
    accumulator: &'a mut [f32],
    c: AdagradCoefficients,
}

impl ElementLoop for Adagrad<'_> {
    #[inline(always)]
    fn run(self) {
        let c = self.c;
        let lanes = self.out.iter_mut().zip(self.value).zip(self.grad).zip(self.accumulator.iter_mut());
        for (((out, &value), &g), accumulator) in lanes {
            let new_accumulator = *accumulator + g * g;
            *accumulator = new_accumulator;
            *out = value - (g * c.learning_rate) / (new_accumulator + c.epsilon).sqrt();
        }
    }
}

struct Nadam<'a> {
    out: &'a mut [f32],
    value: &'a [f32],
    grad: &'a [f32],
    m: &'a mut [f32],
    v: &'a mut [f32],
    c: NadamCoefficients,
}

impl ElementLoop for Nadam<'_> {
    #[inline(always)]
    fn run(self) {
        let c = self.c;
        let lanes = self.out.iter_mut().zip(self.value).zip(self.grad).zip(self.m.iter_mut()).zip(self.v.iter_mut());
        for ((((out, &value), &g), m), v) in lanes {
            let new_m = *m + (g - *m) * c.one_minus_beta_1;
            let new_v = *v + (g * g - *v) * c.one_minus_beta_2;
            *m = new_m;
            *v = new_v;
            let m_hat = (c.next_momentum * new_m) / c.one_minus_next_product
                + (c.one_minus_momentum * g) / c.one_minus_product;
            let v_hat = new_v / c.one_minus_beta_2_power;
            *out = value - (m_hat * c.learning_rate) / (v_hat.sqrt() + c.epsilon);
        }
    }
}

struct Adamax<'a> {
    out: &'a mut [f32],
    value: &'a [f32],
    grad: &'a [f32],
    m: &'a mut [f32],
    u: &'a mut [f32],
    c: AdamaxCoefficients,
}

impl ElementLoop for Adamax<'_> {
    #[inline(always)]
    fn run(self) {
        let c = self.c;
        let lanes = self.out.iter_mut().zip(self.value).zip(self.grad).zip(self.m.iter_mut()).zip(self.u.iter_mut());
        for ((((out, &value), &g), m), u) in lanes {
            let new_m = *m + (g - *m) * c.one_minus_beta_1;
            let new_u = numpy_maximum(*u * c.beta_2, g.abs());
            *m = new_m;
            *u = new_u;
            *out = value - (new_m * c.learning_rate) / (c.one_minus_beta_1_power * (new_u + c.epsilon));
        }
    }
}

/// numpy's `sign` of a float32: 1 or -1, +0 for either zero, a NaN unchanged.
#[inline(always)]
fn numpy_sign(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else if x == 0.0 {
        0.0
    } else {
        x
    }
}

struct Lion<'a> {
    out: &'a mut [f32],
    value: &'a [f32],
    grad: &'a [f32],
    m: &'a mut [f32],
    c: LionCoefficients,
}

impl ElementLoop for Lion<'_> {
    #[inline(always)]
    fn run(self) {
        let c = self.c;
        let lanes = self.out.iter_mut().zip(self.value).zip(self.grad).zip(self.m.iter_mut());
        for (((out, &value), &g), m) in lanes {
            let direction = numpy_sign(*m * c.beta_1 + g * c.one_minus_beta_1);
            *out = value - c.learning_rate * direction;
            *m = *m * c.beta_2 + g * c.one_minus_beta_2;
        }
    }
}

struct Adadelta<'a> {
    out: &'a mut [f32],
    value: &'a [f32],
    grad: &'a [f32],
    accumulated_grad: &'a mut [f32],
    accumulated_delta: &'a mut [f32],
    c: AdadeltaCoefficients,
}

impl ElementLoop for Adadelta<'_> {
    #[inline(always)]
    fn run(self) {
        let c = self.c;
        let lanes = self.out.iter_mut().zip(self.value).zip(self.grad);
        let lanes = lanes.zip(self.accumulated_grad.iter_mut()).zip(self.accumulated_delta.iter_mut());
        for ((((out, &value), &g), accumulated_grad), accumulated_delta) in lanes {
            let new_grad = *accumulated_grad * c.rho + (g * g) * c.one_minus_rho;
            let delta = -(((*accumulated_delta + c.epsilon).sqrt() * g) / (new_grad + c.epsilon).sqrt());
            *accumulated_grad = new_grad;
            *accumulated_delta = *accumulated_delta * c.rho + (delta * delta) * c.one_minus_rho;
            *out = value + c.learning_rate * delta;
        }
    }
}

/// numpy's `clip` of a float32 between `low` and `high`: a NaN unchanged, a value equal to a
/// bound kept as it is (so `-0` stays `-0` between `-0` and `0`).
#[inline(always)]
fn numpy_clip(x: f32, low: f32, high: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    let raised = if x >= low { x } else { low };
    if raised <= high { raised } else { high }
}

struct Ftrl<'a> {
    out: &'a mut [f32],
    value: &'a [f32],
    grad: &'a [f32],
    accumulator: &'a mut [f32],
    linear: &'a mut [f32],
    c: FtrlCoefficients,
}

impl Ftrl<'_> {
    /// The element loop with the accumulator's power `pow` (one loop per exponent, so none
    /// branches per element).
    #[inline(always)]
    fn run_with(self, pow: impl Fn(f32) -> f32) {
        let c = self.c;
        let lanes = self.out.iter_mut().zip(self.value).zip(self.grad);
        let lanes = lanes.zip(self.accumulator.iter_mut()).zip(self.linear.iter_mut());
        for ((((out, &value), &g), accumulator), linear) in lanes {
            let grad_to_use = g + c.two_l2_shrinkage * value;
            let new_accumulator = *accumulator + g * g;
            let new_power = pow(new_accumulator);
            let new_linear = *linear + (grad_to_use - ((new_power - pow(*accumulator)) / c.learning_rate) * value);
            let quadratic = new_power / c.learning_rate + c.two_l2;
            *accumulator = new_accumulator;
            *linear = new_linear;
            *out = (numpy_clip(new_linear, -c.l1, c.l1) - new_linear) / quadratic;
        }
    }
}

impl ElementLoop for Ftrl<'_> {
    #[inline(always)]
    fn run(self) {
        match self.c.power {
            FtrlPower::Zero => self.run_with(|_| 1.0),
            FtrlPower::Half => self.run_with(f32::sqrt),
            FtrlPower::One => self.run_with(|x| x),
            FtrlPower::Two => self.run_with(|x| x * x),
        }
    }
}

struct WeightDecay<'a> {
    out: &'a mut [f32],
    value: &'a [f32],
    weight_decay: f32,
    learning_rate: f32,
}

impl ElementLoop for WeightDecay<'_> {
    #[inline(always)]
    fn run(self) {
        for (out, &value) in self.out.iter_mut().zip(self.value) {
            *out = value - (value * self.weight_decay) * self.learning_rate;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_noise::noise;

    fn same_bits(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(a, b)| a.to_bits() == b.to_bits())
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
                adam_step_f32(&mut out, &value, &g, &mut m, &mut v, None, c).unwrap();
                value = out;
                ref_value = adam_reference(&ref_value, &g, &mut ref_m, &mut ref_v, c);
            }
            assert!(same_bits(&value, &ref_value) && same_bits(&m, &ref_m) && same_bits(&v, &ref_v));
        }
    }

    #[test]
    fn amsgrad_divides_by_the_running_maximum_of_v() {
        let n = 1003;
        let c = AdamCoefficients { alpha: 1e-3, one_minus_beta_1: 0.1, one_minus_beta_2: (1.0f64 - 0.999) as f32, epsilon: 1e-7 };
        let value = noise(n, 4, 0.5);
        let g = noise(n, 5, 0.01);
        // Half the elements start with a maximum above any new v, half below.
        let mut v_hat: Vec<f32> = (0..n).map(|i| if i % 2 == 0 { 1.0 } else { 0.0 }).collect();
        let (mut m, mut v) = (vec![0.0f32; n], vec![0.0f32; n]);
        let (mut ref_m, mut ref_v) = (m.clone(), v.clone());
        let mut out = vec![0.0f32; n];
        adam_step_f32(&mut out, &value, &g, &mut m, &mut v, Some(&mut v_hat), c).unwrap();
        adam_reference(&value, &g, &mut ref_m, &mut ref_v, c);
        for i in 0..n {
            let expected_hat = if i % 2 == 0 { 1.0 } else { ref_v[i] };
            assert_eq!(v_hat[i].to_bits(), expected_hat.to_bits(), "element {i}");
            let expected = value[i] - (ref_m[i] * c.alpha) / (expected_hat.sqrt() + c.epsilon);
            assert_eq!(out[i].to_bits(), expected.to_bits(), "element {i}");
        }
        // numpy's maximum: NaN wins from either side.
        assert!(numpy_maximum(f32::NAN, 1.0).is_nan() && numpy_maximum(1.0, f32::NAN).is_nan());
        assert!(numpy_maximum(-0.0, 0.0).is_sign_positive() && numpy_maximum(0.0, -0.0).is_sign_negative());
    }

    #[test]
    fn rmsprop_every_variant_matches_the_pass_by_pass_rule_bitwise() {
        for &n in &[3usize, 999, 70_001] {
            for (centered, with_momentum) in [(false, false), (false, true), (true, false), (true, true)] {
                let c = RmspropCoefficients { learning_rate: 1e-3, rho: 0.9, one_minus_rho: (1.0f64 - 0.9) as f32, epsilon: 1e-7, momentum: 0.5 };
                let mut value = noise(n, 2, 0.5);
                let (mut velocity, mut average, mut momentum) = (vec![0.0f32; n], vec![0.0f32; n], vec![0.0f32; n]);
                let (mut ref_value, mut ref_velocity) = (value.clone(), velocity.clone());
                let (mut ref_average, mut ref_momentum) = (average.clone(), momentum.clone());
                for step in 0..3 {
                    let g = noise(n, 20 + step, 0.01);
                    let mut out = vec![0.0f32; n];
                    let average_slot = if centered { Some(&mut average[..]) } else { None };
                    let momentum_slot = if with_momentum { Some(&mut momentum[..]) } else { None };
                    rmsprop_step_f32(&mut out, &value, &g, &mut velocity, average_slot, momentum_slot, c).unwrap();
                    value = out;
                    // Reference, pass by pass.
                    let t: Vec<f32> = g.iter().map(|g| g * g * c.one_minus_rho).collect();
                    ref_velocity.iter_mut().zip(&t).for_each(|(vel, t)| *vel = *vel * c.rho + t);
                    let mut denominator = ref_velocity.clone();
                    if centered {
                        let t: Vec<f32> = g.iter().map(|g| g * c.one_minus_rho).collect();
                        ref_average.iter_mut().zip(&t).for_each(|(a, t)| *a = *a * c.rho + t);
                        let squares: Vec<f32> = ref_average.iter().map(|a| a * a).collect();
                        denominator.iter_mut().zip(&squares).for_each(|(d, s)| *d -= s);
                    }
                    let d: Vec<f32> = denominator.iter().map(|d| (d + c.epsilon).sqrt()).collect();
                    let mut u: Vec<f32> = g.iter().zip(&d).map(|(g, d)| g * c.learning_rate / d).collect();
                    if with_momentum {
                        ref_momentum.iter_mut().zip(&u).for_each(|(mo, u)| *mo = *mo * c.momentum + u);
                        u = ref_momentum.clone();
                    }
                    ref_value = ref_value.iter().zip(&u).map(|(x, u)| x - u).collect();
                }
                assert!(same_bits(&value, &ref_value) && same_bits(&velocity, &ref_velocity));
                assert!(same_bits(&average, &ref_average) && same_bits(&momentum, &ref_momentum));
            }
        }
    }

    #[test]
    fn sgd_every_variant_matches_the_pass_by_pass_rule_bitwise() {
        for &n in &[5usize, 70_001] {
            for (with_momentum, nesterov) in [(false, false), (true, false), (true, true)] {
                let c = SgdCoefficients { learning_rate: 0.01, momentum: 0.9, nesterov };
                let mut value = noise(n, 6, 0.5);
                let mut momentum = vec![0.0f32; n];
                let (mut ref_value, mut ref_momentum) = (value.clone(), momentum.clone());
                for step in 0..3 {
                    let g = noise(n, 30 + step, 0.1);
                    let mut out = vec![0.0f32; n];
                    let slot = if with_momentum { Some(&mut momentum[..]) } else { None };
                    sgd_step_f32(&mut out, &value, &g, slot, c).unwrap();
                    value = out;
                    let scaled: Vec<f32> = g.iter().map(|g| g * c.learning_rate).collect();
                    let u: Vec<f32> = if !with_momentum {
                        scaled.iter().map(|s| -s).collect()
                    } else {
                        ref_momentum.iter_mut().zip(&scaled).for_each(|(m, s)| *m = *m * c.momentum - s);
                        if nesterov {
                            ref_momentum.iter().zip(&scaled).map(|(m, s)| m * c.momentum - s).collect()
                        } else {
                            ref_momentum.clone()
                        }
                    };
                    ref_value = if with_momentum {
                        ref_value.iter().zip(&u).map(|(x, u)| x + u).collect()
                    } else {
                        ref_value.iter().zip(&scaled).map(|(x, s)| x - s).collect()
                    };
                }
                assert!(same_bits(&value, &ref_value) && same_bits(&momentum, &ref_momentum));
            }
        }
    }

    #[test]
    fn adagrad_and_nadam_match_the_pass_by_pass_rule_bitwise() {
        let n = 70_003;
        let value = noise(n, 7, 0.5);
        let g = noise(n, 8, 0.01);
        let c = AdagradCoefficients { learning_rate: 1e-3, epsilon: 1e-7 };
        let mut accumulator = vec![0.1f32; n];
        let mut out = vec![0.0f32; n];
        adagrad_step_f32(&mut out, &value, &g, &mut accumulator, c).unwrap();
        let ref_accumulator: Vec<f32> = g.iter().map(|g| 0.1f32 + g * g).collect();
        let d: Vec<f32> = ref_accumulator.iter().map(|a| (a + c.epsilon).sqrt()).collect();
        let expected: Vec<f32> = value.iter().zip(&g).zip(&d).map(|((x, g), d)| x - g * c.learning_rate / d).collect();
        assert!(same_bits(&out, &expected) && same_bits(&accumulator, &ref_accumulator));

        let c = NadamCoefficients {
            learning_rate: 1e-3, one_minus_beta_1: 0.1, one_minus_beta_2: 1e-3, epsilon: 1e-7,
            next_momentum: 0.86, one_minus_next_product: 0.2, one_minus_momentum: 0.55,
            one_minus_product: 0.57, one_minus_beta_2_power: 1e-3,
        };
        let (mut m, mut v) = (noise(n, 9, 0.01), noise(n, 10, 0.001).iter().map(|x| x.abs()).collect::<Vec<_>>());
        let (mut ref_m, mut ref_v) = (m.clone(), v.clone());
        nadam_step_f32(&mut out, &value, &g, &mut m, &mut v, c).unwrap();
        let adam_like = AdamCoefficients { alpha: 0.0, one_minus_beta_1: 0.1, one_minus_beta_2: 1e-3, epsilon: 1e-7 };
        adam_reference(&value, &g, &mut ref_m, &mut ref_v, adam_like);
        let first: Vec<f32> = ref_m.iter().map(|m| c.next_momentum * m / c.one_minus_next_product).collect();
        let second: Vec<f32> = g.iter().map(|g| c.one_minus_momentum * g / c.one_minus_product).collect();
        let m_hat: Vec<f32> = first.iter().zip(&second).map(|(a, b)| a + b).collect();
        let d: Vec<f32> = ref_v.iter().map(|v| (v / c.one_minus_beta_2_power).sqrt() + c.epsilon).collect();
        let expected: Vec<f32> = value.iter().zip(&m_hat).zip(&d).map(|((x, m), d)| x - m * c.learning_rate / d).collect();
        assert!(same_bits(&out, &expected) && same_bits(&m, &ref_m) && same_bits(&v, &ref_v));
    }

    #[test]
    fn adamax_lion_and_adadelta_match_the_scalar_rule_bitwise() {
        // Element by element in plain scalar code (no vectorization) against the kernels.
        let n = 70_003;
        let value = noise(n, 12, 0.5);
        let g = noise(n, 13, 0.01);
        let c = AdamaxCoefficients { learning_rate: 2e-3, one_minus_beta_1: 0.1, beta_2: 0.999, epsilon: 1e-7, one_minus_beta_1_power: 0.271 };
        let (mut m, mut u) = (noise(n, 14, 0.01), noise(n, 15, 0.02).iter().map(|x| x.abs()).collect::<Vec<_>>());
        let (m0, u0) = (m.clone(), u.clone());
        let mut out = vec![0.0f32; n];
        adamax_step_f32(&mut out, &value, &g, &mut m, &mut u, c).unwrap();
        for i in 0..n {
            let new_m = m0[i] + (g[i] - m0[i]) * c.one_minus_beta_1;
            let scaled = u0[i] * c.beta_2;
            let new_u = if scaled > g[i].abs() { scaled } else { g[i].abs() };
            let expected = value[i] - (new_m * c.learning_rate) / (c.one_minus_beta_1_power * (new_u + c.epsilon));
            assert_eq!((out[i].to_bits(), m[i].to_bits(), u[i].to_bits()), (expected.to_bits(), new_m.to_bits(), new_u.to_bits()), "adamax {i}");
        }

        let c = LionCoefficients { learning_rate: 1e-4, beta_1: 0.9, one_minus_beta_1: 0.1, beta_2: 0.99, one_minus_beta_2: 0.01 };
        let mut m = noise(n, 16, 0.01);
        m[0] = 0.0; // with g = 0 below: a zero direction
        let mut g = g.clone();
        g[0] = 0.0;
        let m0 = m.clone();
        lion_step_f32(&mut out, &value, &g, &mut m, c).unwrap();
        for i in 0..n {
            let x = m0[i] * c.beta_1 + g[i] * c.one_minus_beta_1;
            let direction = if x == 0.0 { 0.0 } else { x.signum() };
            let expected = value[i] - c.learning_rate * direction;
            let new_m = m0[i] * c.beta_2 + g[i] * c.one_minus_beta_2;
            assert_eq!((out[i].to_bits(), m[i].to_bits()), (expected.to_bits(), new_m.to_bits()), "lion {i}");
        }
        assert!(numpy_sign(f32::NAN).is_nan() && numpy_sign(-0.0).to_bits() == 0);

        let c = AdadeltaCoefficients { learning_rate: 1.0, rho: 0.95, one_minus_rho: (1.0f64 - 0.95) as f32, epsilon: 1e-7 };
        let (mut acc_g, mut acc_d) = (vec![0.0f32; n], noise(n, 17, 1e-4).iter().map(|x| x.abs()).collect::<Vec<_>>());
        let acc_d0 = acc_d.clone();
        adadelta_step_f32(&mut out, &value, &g, &mut acc_g, &mut acc_d, c).unwrap();
        for i in 0..n {
            let new_g = 0.0f32 * c.rho + (g[i] * g[i]) * c.one_minus_rho;
            let delta = -(((acc_d0[i] + c.epsilon).sqrt() * g[i]) / (new_g + c.epsilon).sqrt());
            let new_d = acc_d0[i] * c.rho + (delta * delta) * c.one_minus_rho;
            let expected = value[i] + c.learning_rate * delta;
            assert_eq!((out[i].to_bits(), acc_g[i].to_bits(), acc_d[i].to_bits()), (expected.to_bits(), new_g.to_bits(), new_d.to_bits()), "adadelta {i}");
        }
    }

    #[test]
    fn ftrl_matches_the_scalar_rule_bitwise_for_every_exact_power() {
        let n = 70_003;
        let value = noise(n, 18, 0.5);
        let g = noise(n, 19, 0.01);
        let accumulator0: Vec<f32> = noise(n, 20, 0.1).iter().map(|x| x.abs() + 0.1).collect();
        let linear0 = noise(n, 21, 0.05);
        let powers: [(FtrlPower, fn(f32) -> f32); 4] =
            [(FtrlPower::Zero, |_| 1.0), (FtrlPower::Half, f32::sqrt), (FtrlPower::One, |x| x), (FtrlPower::Two, |x| x * x)];
        for (power, pow) in powers {
            let c = FtrlCoefficients { learning_rate: 0.05, power, two_l2_shrinkage: (2.0f64 * 0.01) as f32, l1: 0.02, two_l2: 0.3 };
            let (mut accumulator, mut linear) = (accumulator0.clone(), linear0.clone());
            let mut out = vec![0.0f32; n];
            ftrl_step_f32(&mut out, &value, &g, &mut accumulator, &mut linear, c).unwrap();
            for i in 0..n {
                let new_acc = accumulator0[i] + g[i] * g[i];
                let shrunk = g[i] + c.two_l2_shrinkage * value[i];
                let new_linear = linear0[i] + (shrunk - ((pow(new_acc) - pow(accumulator0[i])) / c.learning_rate) * value[i]);
                let clipped = new_linear.clamp(-c.l1, c.l1);
                let expected = (clipped - new_linear) / (pow(new_acc) / c.learning_rate + c.two_l2);
                let got = (out[i].to_bits(), accumulator[i].to_bits(), linear[i].to_bits());
                assert_eq!(got, (expected.to_bits(), new_acc.to_bits(), new_linear.to_bits()), "{power:?} element {i}");
            }
        }
        // Only the powers numpy computes exactly; -0.0 (a learning-rate power of 0) is 0.
        assert_eq!(FtrlPower::from_exponent(-0.0).unwrap(), FtrlPower::Zero);
        assert_eq!(FtrlPower::from_exponent(0.5).unwrap(), FtrlPower::Half);
        let err = FtrlPower::from_exponent(0.6).unwrap_err();
        assert!(err.to_string().contains("accumulator power 0.6 has no exact float32 kernel"), "{err}");
        // numpy's clip keeps a value equal to a bound, signed zeros included, and NaN.
        assert_eq!(numpy_clip(-0.0, -0.0, 0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(numpy_clip(1.0, -0.0, 0.0).to_bits(), 0);
        assert!(numpy_clip(f32::NAN, -1.0, 1.0).is_nan());
    }

    #[test]
    fn weight_decay_matches_the_pass_by_pass_rule_bitwise() {
        let n = 70_001;
        let value = noise(n, 11, 0.5);
        let mut out = vec![0.0f32; n];
        weight_decay_f32(&mut out, &value, 0.004, 1e-3).unwrap();
        let scaled: Vec<f32> = value.iter().map(|x| x * 0.004f32).collect();
        let scaled: Vec<f32> = scaled.iter().map(|x| x * 1e-3f32).collect();
        let expected: Vec<f32> = value.iter().zip(&scaled).map(|(x, s)| x - s).collect();
        assert!(same_bits(&out, &expected));
        let err = weight_decay_f32(&mut out[..3], &value, 0.004, 1e-3).unwrap_err();
        assert!(err.to_string().contains("weight_decay_f32: `value_in` has 70001 elements, expected 3"), "{err}");
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
        adam_step_f32(&mut out, &value, &g, &mut m, &mut v, None, c).unwrap();
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
        let err = adam_step_f32(&mut out, &value, &g, &mut m, &mut v, None, c).unwrap_err();
        assert!(err.to_string().contains("`v` has 3 elements, expected 4"), "{err}");
        let (mut v, mut v_hat) = (vec![0.0; 4], vec![0.0; 6]);
        let err = adam_step_f32(&mut out, &value, &g, &mut m, &mut v, Some(&mut v_hat), c).unwrap_err();
        assert!(err.to_string().contains("`v_hat` has 6 elements"), "{err}");
        let c = RmspropCoefficients { learning_rate: 1e-3, rho: 0.9, one_minus_rho: 0.1, epsilon: 1e-7, momentum: 0.0 };
        let mut momentum = vec![0.0; 5];
        let err = rmsprop_step_f32(&mut out, &value, &g, &mut m, None, Some(&mut momentum), c).unwrap_err();
        assert!(err.to_string().contains("`momentum` has 5 elements"), "{err}");
        let err = rmsprop_step_f32(&mut out, &value, &g, &mut m, Some(&mut momentum), None, c).unwrap_err();
        assert!(err.to_string().contains("`average_gradient` has 5 elements"), "{err}");
        let c = SgdCoefficients { learning_rate: 0.1, momentum: 0.9, nesterov: false };
        let err = sgd_step_f32(&mut out, &value[..3], &g, None, c).unwrap_err();
        assert!(err.to_string().contains("sgd_step_f32: `value_in` has 3 elements"), "{err}");
        let c = AdagradCoefficients { learning_rate: 0.1, epsilon: 1e-7 };
        let err = adagrad_step_f32(&mut out, &value, &g, &mut momentum, c).unwrap_err();
        assert!(err.to_string().contains("`accumulator` has 5 elements"), "{err}");
        let c = FtrlCoefficients { learning_rate: 0.1, power: FtrlPower::Half, two_l2_shrinkage: 0.0, l1: 0.0, two_l2: 0.0 };
        let err = ftrl_step_f32(&mut out, &value, &g, &mut m, &mut momentum, c).unwrap_err();
        assert!(err.to_string().contains("ftrl_step_f32: `linear` has 5 elements"), "{err}");
    }
}
