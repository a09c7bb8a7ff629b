//! Training-step pieces above the kernels: the backward pass of a whole chain of Dense
//! layers in one call, and sparse softmax cross-entropy (the usual classification loss) with
//! its gradient in one pass each.
//!
//! A front end that records one autodiff node per Dense layer walks the chain back one
//! layer at a time, paying its interpreter's overhead for every product. For a model that is
//! only Dense layers (with dropout between them), this does the same walk natively: for each
//! layer, from the last, `dz = g * act'(y)`, `dW = inputᵀ·dz`, `db = Σ_rows dz` and, below the
//! first layer, `g = (dz·Wᵀ) * scale` (`scale` the dropout factor between the two layers, if
//! any: the layer's input was the previous output times it). Each product is the same `kernels::matmul` call (same operands, same strides,
//! so the same summation order) a per-layer backward makes, and `db` adds the rows in order
//! as numpy's `add.reduce(dz, axis=0)` does, so the gradients are bitwise those of the
//! layer-by-layer walk.

use crate::error::{Error, Result};
use crate::kernels::{self, Activation, Float, MatMut, MatRef};

/// One Dense layer of a chain, as its forward pass left it.
pub struct ChainLayer<'a, T> {
    /// What the layer multiplied, `batch x inputs`: the chain's input for the first layer,
    /// else the previous layer's output (times `input_scale`).
    pub input: MatRef<'a, T>,
    /// When the input is the previous layer's output times a factor of the same shape (a
    /// dropout mask already scaled), that factor: the gradient flowing down is multiplied
    /// by it. Ignored for the first layer (no gradient flows into the chain's input).
    pub input_scale: Option<MatRef<'a, T>>,
    /// The kernel, `inputs x units`, any strides.
    pub kernel: MatRef<'a, T>,
    /// The layer's output after its activation, `batch x units`: the activations whose
    /// derivative is taken from the output (`linear`, `relu`) need nothing else.
    pub output: MatRef<'a, T>,
    pub activation: Activation,
}

/// Where one layer's gradients go.
pub struct ChainGradients<'a, T> {
    /// `inputs x units`, row-major.
    pub kernel: &'a mut [T],
    /// `units` values, or None for a layer without bias.
    pub bias: Option<&'a mut [T]>,
}

/// The gradients of every layer's kernel and bias, given the gradient at the last layer's
/// output (`batch x units`). `gradients[i]` receives layer `i`'s.
pub fn dense_chain_backward<T: Float>(
    layers: &[ChainLayer<'_, T>],
    output_gradient: MatRef<'_, T>,
    gradients: &mut [ChainGradients<'_, T>],
) -> Result<()> {
    check_chain(layers, &output_gradient, gradients)?;
    let batch = output_gradient.rows();
    // The gradient at the current layer's output, row-major `batch x units`.
    let last_units = output_gradient.cols();
    let mut g: Vec<T> = Vec::with_capacity(batch * last_units);
    for r in 0..batch {
        for c in 0..last_units {
            g.push(output_gradient.get(r, c).unwrap_or(T::ZERO));
        }
    }
    let mut dz: Vec<T> = Vec::new();
    for index in (0..layers.len()).rev() {
        let layer = &layers[index];
        let units = layer.kernel.cols();
        // dz = g * act'(y), computed as the per-layer backward does: relu's derivative is
        // the mask `y > 0` taken as 1.0 / 0.0 and multiplied in (so -g*0 keeps its sign).
        let dz_values: &[T] = match layer.activation {
            Activation::Linear => &g,
            Activation::Relu => {
                dz.clear();
                dz.reserve(g.len());
                for r in 0..batch {
                    for c in 0..units {
                        let y = layer.output.get(r, c).unwrap_or(T::ZERO);
                        let mask = if y > T::ZERO { T::ONE } else { T::ZERO };
                        dz.push(g[r * units + c] * mask);
                    }
                }
                &dz
            }
            other => {
                return Err(Error::invalid(format!(
                    "dense chain backward: layer {index} has activation '{}'; only linear and relu \
                     are taken from the output",
                    other.name()
                )))
            }
        };
        let dz_view = MatRef::row_major(dz_values, batch, units)?;
        let target = &mut gradients[index];
        kernels::matmul(layer.input.t(), dz_view, MatMut::row_major(&mut *target.kernel, layer.kernel.rows(), units)?)?;
        if let Some(bias) = target.bias.as_deref_mut() {
            column_sums(dz_values, batch, units, bias);
        }
        if index > 0 {
            let inputs = layer.kernel.rows();
            let mut below = vec![T::ZERO; batch * inputs];
            kernels::matmul(dz_view, layer.kernel.t(), MatMut::row_major(&mut below, batch, inputs)?)?;
            if let Some(scale) = layer.input_scale {
                // As the multiply's backward: g * scale, element by element.
                for r in 0..batch {
                    for c in 0..inputs {
                        let value = &mut below[r * inputs + c];
                        *value = *value * scale.get(r, c).unwrap_or(T::ZERO);
                    }
                }
            }
            g = below;
        }
    }
    Ok(())
}

/// `out[c] = Σ_r values[r][c]`, rows added in order starting from row 0 (numpy's order for a
/// reduction over the outer axis; for an empty batch, zeros).
fn column_sums<T: Float>(values: &[T], rows: usize, cols: usize, out: &mut [T]) {
    if rows == 0 {
        out.fill(T::ZERO);
        return;
    }
    out.copy_from_slice(&values[..cols]);
    for row in values.chunks_exact(cols).skip(1) {
        for (sum, &v) in out.iter_mut().zip(row) {
            *sum = *sum + v;
        }
    }
}

fn check_chain<T: Float>(
    layers: &[ChainLayer<'_, T>],
    output_gradient: &MatRef<'_, T>,
    gradients: &[ChainGradients<'_, T>],
) -> Result<()> {
    let fail = |msg: String| Err(Error::invalid(format!("dense chain backward: {msg}")));
    if layers.is_empty() {
        return fail("the chain has no layers".into());
    }
    if gradients.len() != layers.len() {
        return fail(format!("{} gradient targets for {} layers", gradients.len(), layers.len()));
    }
    let batch = output_gradient.rows();
    for (index, (layer, target)) in layers.iter().zip(gradients).enumerate() {
        let (inputs, units) = (layer.kernel.rows(), layer.kernel.cols());
        let (input_rows, width) = (layer.input.rows(), layer.input.cols());
        if input_rows != batch || inputs != width {
            return fail(format!(
                "layer {index}'s kernel is {inputs}x{units} but its input is {input_rows}x{width} (batch {batch})"
            ));
        }
        if index > 0 {
            let below = &layers[index - 1].output;
            if below.rows() != batch || below.cols() != width {
                return fail(format!(
                    "layer {index}'s input is {batch}x{width} but layer {}'s output is {}x{}",
                    index - 1,
                    below.rows(),
                    below.cols()
                ));
            }
        }
        if let Some(scale) = &layer.input_scale {
            if scale.rows() != batch || scale.cols() != width {
                return fail(format!(
                    "layer {index}'s input scale is {}x{}, expected {batch}x{width}",
                    scale.rows(),
                    scale.cols()
                ));
            }
        }
        if layer.output.rows() != batch || layer.output.cols() != units {
            return fail(format!(
                "layer {index}'s output is {}x{}, expected {batch}x{units}",
                layer.output.rows(),
                layer.output.cols()
            ));
        }
        if target.kernel.len() != inputs * units {
            return fail(format!(
                "layer {index}'s kernel gradient has {} values, expected {inputs}x{units}",
                target.kernel.len()
            ));
        }
        if let Some(bias) = &target.bias {
            if bias.len() != units {
                return fail(format!("layer {index}'s bias gradient has {} values, expected {units}", bias.len()));
            }
        }
    }
    let last = &layers[layers.len() - 1].output;
    if output_gradient.cols() != last.cols() {
        return fail(format!(
            "the output gradient is {}x{}, expected {batch}x{}",
            output_gradient.rows(),
            output_gradient.cols(),
            last.cols()
        ));
    }
    Ok(())
}

/// Sparse softmax cross-entropy from logits, row by row (`classes` columns): with
/// `m = max(z)` and `s = Σ e^(z - m)`, `loss = ln s - (z[label] - m)` and the softmax
/// `p = e^(z - m) / s` is written to `probabilities` for the gradient. Exponentials and the
/// logarithm are the correctly rounded-or-close libm ones (not the kernels' fast
/// approximations): the loss is reported to the user. A NaN logit makes its row's loss NaN,
/// as it does in numpy, so `TerminateOnNaN` sees it.
pub fn sparse_softmax_crossentropy(
    logits: MatRef<'_, f32>,
    labels: &[i64],
    losses: &mut [f32],
    probabilities: &mut [f32],
) -> Result<()> {
    let (rows, classes) = (logits.rows(), logits.cols());
    let fail = |msg: String| Err(Error::invalid(format!("sparse softmax cross-entropy: {msg}")));
    if labels.len() != rows || losses.len() != rows || probabilities.len() != rows * classes {
        return fail(format!(
            "{rows}x{classes} logits need {rows} labels, {rows} losses and {} probabilities; got {}, {} and {}",
            rows * classes,
            labels.len(),
            losses.len(),
            probabilities.len()
        ));
    }
    for (row, &label) in labels.iter().enumerate() {
        if label < 0 || label as u64 >= classes as u64 {
            return fail(format!("label {label} of row {row} is out of range for {classes} classes"));
        }
    }
    for row in 0..rows {
        let p = &mut probabilities[row * classes..(row + 1) * classes];
        let mut max = f32::NEG_INFINITY;
        for (c, slot) in p.iter_mut().enumerate() {
            let z = logits.get(row, c).unwrap_or(0.0);
            *slot = z;
            // NaN wins, as numpy's max propagates it.
            if z > max || z.is_nan() || max.is_nan() {
                max = if max.is_nan() { max } else { z };
            }
        }
        let mut sum = 0.0f32;
        for slot in p.iter_mut() {
            *slot = (*slot - max).exp();
            sum += *slot;
        }
        let label = labels[row] as usize;
        let shifted_label = logits.get(row, label).unwrap_or(0.0) - max;
        losses[row] = sum.ln() - shifted_label;
        for slot in p.iter_mut() {
            *slot /= sum;
        }
    }
    Ok(())
}

/// The gradient at the logits of `sparse_softmax_crossentropy` for per-row output gradients
/// `g`: `g[r] * p[r][c]`, minus `g[r]` at the row's label.
pub fn sparse_softmax_crossentropy_backward(
    probabilities: MatRef<'_, f32>,
    labels: &[i64],
    row_gradients: &[f32],
    out: &mut [f32],
) -> Result<()> {
    let (rows, classes) = (probabilities.rows(), probabilities.cols());
    if labels.len() != rows || row_gradients.len() != rows || out.len() != rows * classes {
        return Err(Error::invalid(format!(
            "sparse softmax cross-entropy backward: {rows}x{classes} probabilities need {rows} labels, {rows} row \
             gradients and {} outputs; got {}, {} and {}",
            rows * classes,
            labels.len(),
            row_gradients.len(),
            out.len()
        )));
    }
    for row in 0..rows {
        let g = row_gradients[row];
        for (c, o) in out[row * classes..(row + 1) * classes].iter_mut().enumerate() {
            *o = g * probabilities.get(row, c).unwrap_or(0.0);
        }
        let label = labels[row];
        if label < 0 || label as u64 >= classes as u64 {
            return Err(Error::invalid(format!(
                "sparse softmax cross-entropy backward: label {label} of row {row} is out of range for {classes} classes"
            )));
        }
        out[row * classes + label as usize] -= g;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pseudo-random floats in [-1, 1).
    fn noise(n: usize, seed: u64) -> Vec<f32> {
        crate::test_noise::noise(n, seed, 1.0)
    }

    /// Naive f64 products as the reference.
    fn product(a: &[f32], b: &[f32], m: usize, k: usize, n: usize, a_t: bool, b_t: bool) -> Vec<f64> {
        let mut out = vec![0.0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0f64;
                for p in 0..k {
                    let av = if a_t { a[p * m + i] } else { a[i * k + p] };
                    let bv = if b_t { b[j * k + p] } else { b[p * n + j] };
                    s += av as f64 * bv as f64;
                }
                out[i * n + j] = s;
            }
        }
        out
    }

    #[test]
    fn two_layer_chain_matches_a_naive_backward() {
        let (batch, d0, d1, d2) = (5usize, 7usize, 4usize, 3usize);
        let x = noise(batch * d0, 1);
        let w1 = noise(d0 * d1, 2);
        let w2 = noise(d1 * d2, 3);
        // Forward: h = relu(x w1 + 0), out = h w2 (linear).
        let z1 = product(&x, &w1, batch, d0, d1, false, false);
        let h: Vec<f32> = z1.iter().map(|&z| (z as f32).max(0.0)).collect();
        let out: Vec<f32> = product(&h, &w2, batch, d1, d2, false, false).iter().map(|&v| v as f32).collect();
        let g = noise(batch * d2, 4);
        let (mut gk1, mut gb1, mut gk2, mut gb2) = (vec![0.0; d0 * d1], vec![0.0; d1], vec![0.0; d1 * d2], vec![0.0; d2]);
        {
            let layers = [
                ChainLayer { input: MatRef::row_major(&x, batch, d0).unwrap(), input_scale: None, kernel: MatRef::row_major(&w1, d0, d1).unwrap(), output: MatRef::row_major(&h, batch, d1).unwrap(), activation: Activation::Relu },
                ChainLayer { input: MatRef::row_major(&h, batch, d1).unwrap(), input_scale: None, kernel: MatRef::row_major(&w2, d1, d2).unwrap(), output: MatRef::row_major(&out, batch, d2).unwrap(), activation: Activation::Linear },
            ];
            let mut grads = [
                ChainGradients { kernel: &mut gk1[..], bias: Some(&mut gb1[..]) },
                ChainGradients { kernel: &mut gk2[..], bias: Some(&mut gb2[..]) },
            ];
            dense_chain_backward(&layers, MatRef::row_major(&g, batch, d2).unwrap(), &mut grads).unwrap();
        }
        let close = |a: &[f32], b: &[f64]| a.iter().zip(b).all(|(&a, &b)| (a as f64 - b).abs() <= 1e-5 * (1.0 + b.abs()));
        // Layer 2: dW2 = hᵀ g, db2 = Σ g.
        assert!(close(&gk2, &product(&h, &g, d1, batch, d2, true, false)));
        let gb2_ref: Vec<f64> = (0..d2).map(|c| (0..batch).map(|r| g[r * d2 + c] as f64).sum()).collect();
        assert!(close(&gb2, &gb2_ref));
        // Below: gh = g W2ᵀ, dz1 = gh * (h > 0), dW1 = xᵀ dz1, db1 = Σ dz1.
        let gh = product(&g, &w2, batch, d2, d1, false, true);
        let dz1: Vec<f32> = gh.iter().zip(&h).map(|(&v, &y)| if y > 0.0 { v as f32 } else { 0.0 }).collect();
        assert!(close(&gk1, &product(&x, &dz1, d0, batch, d1, true, false)));
        let gb1_ref: Vec<f64> = (0..d1).map(|c| (0..batch).map(|r| dz1[r * d1 + c] as f64).sum()).collect();
        assert!(close(&gb1, &gb1_ref));
    }

    #[test]
    fn mismatched_shapes_are_refused_with_the_layer_named() {
        let (x, w, y, g) = (vec![0.0f32; 6], vec![0.0f32; 6], vec![0.0f32; 4], vec![0.0f32; 4]);
        let mut gk = vec![0.0f32; 6];
        let layers = [ChainLayer { input: MatRef::row_major(&x, 2, 3).unwrap(), input_scale: None, kernel: MatRef::row_major(&w, 2, 3).unwrap(), output: MatRef::row_major(&y, 2, 2).unwrap(), activation: Activation::Relu }];
        let mut grads = [ChainGradients { kernel: &mut gk[..], bias: None }];
        let err = dense_chain_backward(&layers, MatRef::row_major(&g, 2, 2).unwrap(), &mut grads).unwrap_err();
        assert!(err.to_string().contains("layer 0's kernel is 2x3 but its input is 2x3"), "{err}");
    }

    #[test]
    fn softmax_crossentropy_matches_an_f64_reference_and_refuses_bad_labels() {
        let (rows, classes) = (4usize, 5usize);
        let mut z: Vec<f32> = noise(rows * classes, 9).iter().map(|v| v * 30.0).collect();
        z[7] = 80.0; // large logits must not overflow
        let labels = [0i64, 4, 2, 1];
        let (mut losses, mut p) = (vec![0.0f32; rows], vec![0.0f32; rows * classes]);
        sparse_softmax_crossentropy(MatRef::row_major(&z, rows, classes).unwrap(), &labels, &mut losses, &mut p).unwrap();
        let g = [0.25f32, -1.0, 0.5, 2.0];
        let mut grad = vec![0.0f32; rows * classes];
        sparse_softmax_crossentropy_backward(MatRef::row_major(&p, rows, classes).unwrap(), &labels, &g, &mut grad).unwrap();
        let err = sparse_softmax_crossentropy_backward(MatRef::row_major(&p, rows, classes).unwrap(), &labels[..2], &g, &mut grad).unwrap_err();
        assert!(err.to_string().contains("need 4 labels"), "{err}");
        for r in 0..rows {
            let row: Vec<f64> = z[r * classes..(r + 1) * classes].iter().map(|&v| v as f64).collect();
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = row.iter().map(|v| (v - m).exp()).sum();
            let loss = s.ln() - (row[labels[r] as usize] - m);
            assert!((losses[r] as f64 - loss).abs() <= 1e-5 * (1.0 + loss.abs()), "row {r}: {} vs {loss}", losses[r]);
            for c in 0..classes {
                let expected = g[r] as f64 * ((row[c] - m).exp() / s - if c == labels[r] as usize { 1.0 } else { 0.0 });
                assert!((grad[r * classes + c] as f64 - expected).abs() <= 1e-6 * (1.0 + expected.abs()));
            }
        }
        let mut nan_z = z.clone();
        nan_z[classes + 1] = f32::NAN;
        sparse_softmax_crossentropy(MatRef::row_major(&nan_z, rows, classes).unwrap(), &labels, &mut losses, &mut p).unwrap();
        assert!(losses[1].is_nan() && !losses[0].is_nan());
        let err = sparse_softmax_crossentropy(MatRef::row_major(&z, rows, classes).unwrap(), &[0, 5, 0, 0], &mut losses, &mut p).unwrap_err();
        assert!(err.to_string().contains("label 5 of row 1 is out of range for 5 classes"), "{err}");
    }

    #[test]
    fn a_dropout_scale_multiplies_the_gradient_flowing_below_its_layer() {
        let (batch, d0, d1, d2) = (4usize, 3usize, 5usize, 2usize);
        let x = noise(batch * d0, 11);
        let w1 = noise(d0 * d1, 12);
        let w2 = noise(d1 * d2, 13);
        let h: Vec<f32> = product(&x, &w1, batch, d0, d1, false, false).iter().map(|&z| z as f32).collect(); // linear
        let scale: Vec<f32> = noise(batch * d1, 14).iter().map(|&v| if v > 0.0 { 2.0 } else { 0.0 }).collect();
        let dropped: Vec<f32> = h.iter().zip(&scale).map(|(a, b)| a * b).collect();
        let out: Vec<f32> = product(&dropped, &w2, batch, d1, d2, false, false).iter().map(|&v| v as f32).collect();
        let g = noise(batch * d2, 15);
        let (mut gk1, mut gk2) = (vec![0.0; d0 * d1], vec![0.0; d1 * d2]);
        {
            let layers = [
                ChainLayer { input: MatRef::row_major(&x, batch, d0).unwrap(), input_scale: None, kernel: MatRef::row_major(&w1, d0, d1).unwrap(), output: MatRef::row_major(&h, batch, d1).unwrap(), activation: Activation::Linear },
                ChainLayer { input: MatRef::row_major(&dropped, batch, d1).unwrap(), input_scale: Some(MatRef::row_major(&scale, batch, d1).unwrap()), kernel: MatRef::row_major(&w2, d1, d2).unwrap(), output: MatRef::row_major(&out, batch, d2).unwrap(), activation: Activation::Linear },
            ];
            let mut grads = [ChainGradients { kernel: &mut gk1[..], bias: None }, ChainGradients { kernel: &mut gk2[..], bias: None }];
            dense_chain_backward(&layers, MatRef::row_major(&g, batch, d2).unwrap(), &mut grads).unwrap();
        }
        let close = |a: &[f32], b: &[f64]| a.iter().zip(b).all(|(&a, &b)| (a as f64 - b).abs() <= 1e-5 * (1.0 + b.abs()));
        assert!(close(&gk2, &product(&dropped, &g, d1, batch, d2, true, false)));
        let gh: Vec<f32> = product(&g, &w2, batch, d2, d1, false, true).iter().zip(&scale).map(|(&v, &s)| v as f32 * s).collect();
        assert!(close(&gk1, &product(&x, &gh, d0, batch, d1, true, false)));
    }
}
