//! Activations of the fused Dense epilogue and their derivatives, written once over
//! `Element` and inlined into each ISA's epilogue so the loops vectorise there.

use super::element::Element;
use crate::error::{Error, Result};

/// `gelu` is Keras 3's default (`approximate=False`, the erf form); `gelu_tanh` is the tanh
/// approximation (`approximate=True`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activation {
    Linear,
    Relu,
    /// `min(max(z, 0), 6)` (Keras's `relu6`, and `ReLU(max_value=6)`).
    Relu6,
    Sigmoid,
    Tanh,
    Gelu,
    GeluTanh,
    Silu,
}

impl Activation {
    pub const ALL: [Activation; 8] = [
        Activation::Linear,
        Activation::Relu,
        Activation::Relu6,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Gelu,
        Activation::GeluTanh,
        Activation::Silu,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Activation::Linear => "linear",
            Activation::Relu => "relu",
            Activation::Relu6 => "relu6",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Gelu => "gelu",
            Activation::GeluTanh => "gelu_tanh",
            Activation::Silu => "silu",
        }
    }

    /// Accepts the Keras names (and `None`/`swish` aliases Keras also uses).
    pub fn from_name(name: &str) -> Result<Activation> {
        Ok(match name {
            "linear" | "none" | "None" | "" => Activation::Linear,
            "relu" => Activation::Relu,
            "relu6" => Activation::Relu6,
            "sigmoid" => Activation::Sigmoid,
            "tanh" => Activation::Tanh,
            "gelu" => Activation::Gelu,
            "gelu_tanh" => Activation::GeluTanh,
            "silu" | "swish" => Activation::Silu,
            other => {
                return Err(Error::invalid(format!(
                    "unknown activation '{other}' (expected one of: linear, relu, relu6, sigmoid, tanh, gelu, gelu_tanh, silu)"
                )))
            }
        })
    }

    /// The activation of one pre-activation value.
    #[inline(always)]
    pub fn apply<T: Element>(self, z: T) -> T {
        let half = T::from_f64(0.5);
        match self {
            Activation::Linear => z,
            // `z < 0` (not `z > 0`) so NaN passes through as numpy's maximum does.
            Activation::Relu => {
                if z < T::ZERO {
                    T::ZERO
                } else {
                    z
                }
            }
            // Both comparisons false for NaN, which passes through as with numpy's clip.
            Activation::Relu6 => {
                let six = T::from_f64(6.0);
                if z < T::ZERO {
                    T::ZERO
                } else if z > six {
                    six
                } else {
                    z
                }
            }
            Activation::Sigmoid => z.sigmoid(),
            Activation::Tanh => z.tanh(),
            Activation::Gelu => half * z * (T::ONE + (z * T::from_f64(std::f64::consts::FRAC_1_SQRT_2)).erf()),
            Activation::GeluTanh => half * z * (T::ONE + gelu_tanh_inner(z).tanh()),
            Activation::Silu => z * z.sigmoid(),
        }
    }

    /// d act(z) / dz.
    #[inline(always)]
    pub fn derivative<T: Element>(self, z: T) -> T {
        let half = T::from_f64(0.5);
        match self {
            Activation::Linear => T::ONE,
            Activation::Relu => {
                if z > T::ZERO {
                    T::ONE
                } else {
                    T::ZERO
                }
            }
            // As `minimum(relu(z), 6)`: relu passes nothing at 0, minimum passes a tie at 6.
            Activation::Relu6 => {
                if z > T::ZERO && z <= T::from_f64(6.0) {
                    T::ONE
                } else {
                    T::ZERO
                }
            }
            Activation::Sigmoid => {
                let s = z.sigmoid();
                s * (T::ONE - s)
            }
            Activation::Tanh => {
                let t = z.tanh();
                T::ONE - t * t
            }
            Activation::Gelu => {
                // Phi(z) + z * phi(z)
                let cdf = half * (T::ONE + (z * T::from_f64(std::f64::consts::FRAC_1_SQRT_2)).erf());
                let pdf = (-half * z * z).exp() * T::from_f64(0.398_942_280_401_432_7); // 1/sqrt(2 pi)
                cdf + z * pdf
            }
            Activation::GeluTanh => {
                let t = gelu_tanh_inner(z).tanh();
                let du = T::from_f64(SQRT_2_OVER_PI) * (T::ONE + T::from_f64(3.0 * GELU_CUBIC) * z * z);
                half * (T::ONE + t) + half * z * (T::ONE - t * t) * du
            }
            Activation::Silu => {
                let s = z.sigmoid();
                s * (T::ONE + z * (T::ONE - s))
            }
        }
    }
}

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const GELU_CUBIC: f64 = 0.044_715;


#[inline(always)]
fn gelu_tanh_inner<T: Element>(z: T) -> T {
    T::from_f64(SQRT_2_OVER_PI) * (z + T::from_f64(GELU_CUBIC) * z * z * z)
}

/// `row[j] = act(row[j] * scale[j] + bias[j])` over a contiguous row (no scale: times one;
/// no bias: plus zero; the product and the sum each rounded, never fused). Inlined into each
/// ISA's target-feature wrapper; the activation is matched once, outside the loop, so each
/// loop body is straight-line code that vectorises.
#[inline(always)]
pub(crate) fn finish_row<T: Element>(act: Activation, row: &mut [T], scale: Option<&[T]>, bias: Option<&[T]>) {
    if let Some(scale) = scale {
        for (v, &s) in row.iter_mut().zip(scale) {
            *v = *v * s;
        }
    }
    macro_rules! each {
        ($variant:expr) => {
            match bias {
                Some(bias) => map_row(row, bias, |z| $variant.apply(z)),
                None => row.iter_mut().for_each(|v| *v = $variant.apply(*v)),
            }
        };
    }
    match act {
        Activation::Linear => {
            if let Some(bias) = bias {
                map_row(row, bias, |z| z)
            }
        }
        Activation::Relu => each!(Activation::Relu),
        Activation::Relu6 => each!(Activation::Relu6),
        Activation::Sigmoid => each!(Activation::Sigmoid),
        Activation::Tanh => each!(Activation::Tanh),
        Activation::Gelu => each!(Activation::Gelu),
        Activation::GeluTanh => each!(Activation::GeluTanh),
        Activation::Silu => each!(Activation::Silu),
    }
}

#[inline(always)]
fn map_row<T: Element>(row: &mut [T], bias: &[T], f: impl Fn(T) -> T) {
    for (v, &b) in row.iter_mut().zip(bias) {
        *v = f(*v + b);
    }
}

/// `out[i] = dy[i] * act'(z[i])`, matched once outside the loop like `finish_row`.
#[inline(always)]
pub(crate) fn backward_slice<T: Element>(act: Activation, z: &[T], dy: &[T], out: &mut [T]) {
    macro_rules! each {
        ($variant:expr) => {
            for ((o, &zi), &g) in out.iter_mut().zip(z).zip(dy) {
                *o = g * $variant.derivative(zi);
            }
        };
    }
    match act {
        Activation::Linear => each!(Activation::Linear),
        Activation::Relu => each!(Activation::Relu),
        Activation::Relu6 => each!(Activation::Relu6),
        Activation::Sigmoid => each!(Activation::Sigmoid),
        Activation::Tanh => each!(Activation::Tanh),
        Activation::Gelu => each!(Activation::Gelu),
        Activation::GeluTanh => each!(Activation::GeluTanh),
        Activation::Silu => each!(Activation::Silu),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivatives_match_finite_differences() {
        for act in Activation::ALL {
            let mut z = -6.0f64;
            while z <= 6.0 {
                let h = 1e-6;
                let numeric = (act.apply(z + h) - act.apply(z - h)) / (2.0 * h);
                let analytic = act.derivative(z);
                let kink = match act {
                    Activation::Relu => z.abs() < 1e-5,
                    Activation::Relu6 => z.abs() < 1e-5 || (z - 6.0).abs() < 1e-5,
                    _ => false,
                };
                if !kink {
                    assert!((numeric - analytic).abs() < 1e-6, "{} at {z}: {numeric} vs {analytic}", act.name());
                }
                z += 0.037;
            }
        }
    }

    #[test]
    fn known_values() {
        assert_eq!(Activation::Relu.apply(-2.0f64), 0.0);
        assert!(Activation::Relu.apply(f32::NAN).is_nan());
        assert!((Activation::Sigmoid.apply(0.0f64) - 0.5).abs() < 1e-15);
        // gelu(1) = 0.5 * (1 + erf(1/sqrt 2)) = 0.8413447460685429
        assert!((Activation::Gelu.apply(1.0f64) - 0.841_344_746_068_542_9).abs() < 1e-14);
        // the tanh approximation differs from the erf form in the 4th digit
        assert!((Activation::GeluTanh.apply(1.0f64) - 0.841_191_990_607_477_2).abs() < 1e-12);
        assert_eq!(Activation::Relu6.apply(-2.0f64), 0.0);
        assert_eq!(Activation::Relu6.apply(2.5f64), 2.5);
        assert_eq!(Activation::Relu6.apply(7.0f32), 6.0);
        assert!(Activation::Relu6.apply(f32::NAN).is_nan());
        assert_eq!(Activation::Relu6.derivative(6.0f64), 1.0);
        assert_eq!(Activation::Relu6.derivative(6.5f64), 0.0);
        assert_eq!(Activation::Relu6.derivative(0.0f64), 0.0);
        assert!(Activation::from_name("softmax").is_err());
    }
}
