//! The element types the kernels compute in (f32, f64) and the scalar math the activations
//! need. The f32 functions avoid libm calls and branches so that loops over them vectorise
//! inside the ISA-specific epilogues; f64 favours accuracy over speed.

use std::fmt::Debug;
use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub};

pub trait Element:
    Copy
    + Send
    + Sync
    + Default
    + Debug
    + PartialOrd
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
{
    const ZERO: Self;
    const ONE: Self;
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    fn abs(self) -> Self;
    fn copysign(self, sign: Self) -> Self;
    fn exp(self) -> Self;
    /// `1 / (1 + e^-x)`, accurate for very negative `x` too (into the subnormals for f32).
    fn sigmoid(self) -> Self;
    fn tanh(self) -> Self;
    fn erf(self) -> Self;
}

/// e^x for f32 without libm: round x/ln2 to n, reduce to r in [-ln2/2, ln2/2], a degree-6
/// polynomial for e^r, then scale by 2^n through the exponent bits. Relative error ~2 ulp;
/// inputs are clamped so that 2^n stays a normal number (e^-87 ~ 1.6e-38, e^88 ~ 1.7e38).
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    p * scale
}

/// tanh for f32 from e^(2|x|); a short odd series near zero where 1 - 2/(e+1) would cancel.
#[inline(always)]
fn tanh_f32(x: f32) -> f32 {
    let a = x.abs();
    let e = exp_f32(2.0 * a);
    let far = 1.0 - 2.0 / (e + 1.0);
    let a2 = a * a;
    let near = a * (1.0 + a2 * (-1.0 / 3.0 + a2 * (2.0 / 15.0 + a2 * (-17.0 / 315.0))));
    let t = if a < 0.0625 { near } else { far };
    t.copysign(x)
}

/// erf for f32: Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7).
#[inline(always)]
fn erf_f32(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t * (0.254_829_6 + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152 + t * 1.061_405_4))));
    let y = 1.0 - poly * exp_f32(-a * a);
    y.copysign(x)
}

/// erf for f64: the Maclaurin series below 2 (about 1e-15 relative), else 1 - erfc with
/// erfc from its continued fraction (converges fast there).
fn erf_f64(x: f64) -> f64 {
    let a = x.abs();
    if a.is_nan() {
        return x;
    }
    let value = if a < 2.0 {
        // erf(a) = 2/sqrt(pi) * sum_n (-1)^n a^(2n+1) / (n! (2n+1))
        let a2 = a * a;
        let mut term = a; // (-1)^n a^(2n+1) / n!
        let mut sum = a;
        let mut n = 0.0;
        loop {
            n += 1.0;
            term *= -a2 / n;
            let add = term / (2.0 * n + 1.0);
            sum += add;
            // `<=` ends at once for a = 0; 100 terms bound the loop whatever the input.
            if add.abs() <= 1e-17 * sum.abs() || n >= 100.0 {
                break;
            }
        }
        sum * std::f64::consts::FRAC_2_SQRT_PI
    } else if a > 6.0 {
        1.0 // erfc(6) ~ 2e-17: below f64 resolution of 1
    } else {
        // erfc(a) = exp(-a^2)/sqrt(pi) / (a + (1/2)/(a + 1/(a + (3/2)/(a + 2/(a + ...)))))
        let mut frac = a;
        for k in (1..=60).rev() {
            frac = a + (k as f64 / 2.0) / frac;
        }
        let erfc = (-a * a).exp() / std::f64::consts::PI.sqrt() / frac;
        1.0 - erfc
    };
    value.copysign(x)
}

impl Element for f32 {
    const ZERO: f32 = 0.0;
    const ONE: f32 = 1.0;
    #[inline(always)]
    fn from_f64(v: f64) -> f32 {
        v as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn abs(self) -> f32 {
        f32::abs(self)
    }
    #[inline(always)]
    fn copysign(self, sign: f32) -> f32 {
        f32::copysign(self, sign)
    }
    #[inline(always)]
    fn exp(self) -> f32 {
        exp_f32(self)
    }
    #[inline(always)]
    fn sigmoid(self) -> f32 {
        // The stable one-pass form of the sigmoid kernel: `exp_f32` clamps at -87, which
        // would floor outputs for inputs below -87 at e^-87 ~ 1.6e-38.
        crate::sigmoid::sigmoid_scalar(self)
    }
    #[inline(always)]
    fn tanh(self) -> f32 {
        tanh_f32(self)
    }
    #[inline(always)]
    fn erf(self) -> f32 {
        erf_f32(self)
    }
}

impl Element for f64 {
    const ZERO: f64 = 0.0;
    const ONE: f64 = 1.0;
    #[inline(always)]
    fn from_f64(v: f64) -> f64 {
        v
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn abs(self) -> f64 {
        f64::abs(self)
    }
    #[inline(always)]
    fn copysign(self, sign: f64) -> f64 {
        f64::copysign(self, sign)
    }
    #[inline(always)]
    fn exp(self) -> f64 {
        f64::exp(self)
    }
    #[inline(always)]
    fn sigmoid(self) -> f64 {
        1.0 / (1.0 + (-self).exp())
    }
    #[inline(always)]
    fn tanh(self) -> f64 {
        f64::tanh(self)
    }
    #[inline(always)]
    fn erf(self) -> f64 {
        erf_f64(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_math_matches_f64_libm() {
        let mut x = -30.0f64;
        while x <= 30.0 {
            let xf = x as f32;
            let e = (xf as f64).exp();
            assert!(((exp_f32(xf) as f64) - e).abs() <= 4e-7 * e, "exp({x})");
            assert!(((tanh_f32(xf) as f64) - (xf as f64).tanh()).abs() <= 3e-7, "tanh({x})");
            assert!(((erf_f32(xf) as f64) - erf_f64(xf as f64)).abs() <= 3e-7, "erf({x})");
            x += 0.01;
        }
        assert!(exp_f32(f32::NAN).is_nan());
        assert_eq!(tanh_f32(f32::INFINITY), 1.0);
        assert_eq!(tanh_f32(-1e30), -1.0);
    }

    #[test]
    fn f64_erf_known_values() {
        // Values from tables of the error function.
        let table = [
            (0.0, 0.0),
            (0.1, 0.112_462_916_018_284_9),
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (1.5, 0.966_105_146_475_310_7),
            (2.0, 0.995_322_265_018_952_7),
            (2.5, 0.999_593_047_982_555),
            (3.0, 0.999_977_909_503_001_4),
        ];
        for (x, want) in table {
            assert!((erf_f64(x) - want).abs() < 1e-14, "erf({x}) = {} want {want}", erf_f64(x));
            assert!((erf_f64(-x) + want).abs() < 1e-14);
        }
    }
}
