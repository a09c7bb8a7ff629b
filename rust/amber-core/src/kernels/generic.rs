//! Portable kernels: plain Rust the compiler may vectorise for the baseline target. The
//! reference path for machines without a SIMD path, and for checking the others.

use super::activation::{backward_slice, finish_row, Activation};
use super::element::Element;
use super::pack::pack_b_any;
use super::microkernel::{kernels_by_rows, Kernel, MicroKernel, TileOut};

const NR: usize = 8;

unsafe fn microkernel<T: Element, const R: usize, const PACKED: bool>(
    k: usize,
    a: *const T,
    rs_a: usize,
    cs_a: usize,
    b: *const T,
    rs_b: usize,
    out: TileOut<T>,
) {
    let mut acc = [[T::ZERO; NR]; R];
    let mut a = a;
    let mut b = b;
    for _ in 0..k {
        let mut bv = [T::ZERO; NR];
        for (j, slot) in bv.iter_mut().enumerate() {
            *slot = b.add(j).read_unaligned();
        }
        for (i, row) in acc.iter_mut().enumerate() {
            let ai = a.add(if PACKED { i } else { i * rs_a }).read_unaligned();
            for (slot, &bj) in row.iter_mut().zip(&bv) {
                *slot += ai * bj;
            }
        }
        a = a.add(if PACKED { R } else { cs_a });
        b = b.add(rs_b);
    }
    for (i, row) in acc.iter().enumerate() {
        let c_row = out.c.add(i * out.rs_c);
        for (j, &value) in row.iter().enumerate().take(out.cols) {
            let p = c_row.add(j);
            let mut z = if out.accumulate { *p + value } else { value };
            if !out.bias.is_null() {
                z += *out.bias.add(j);
            }
            *p = if out.relu { Activation::Relu.apply(z) } else { z };
        }
    }
}

#[allow(clippy::too_many_arguments)]
unsafe fn microkernel_f32<const R: usize, const P: bool>(k: usize, a: *const f32, rs_a: usize, cs_a: usize, b: *const f32, rs_b: usize, out: TileOut<f32>) {
    microkernel::<f32, R, P>(k, a, rs_a, cs_a, b, rs_b, out)
}
#[allow(clippy::too_many_arguments)]
unsafe fn microkernel_f64<const R: usize, const P: bool>(k: usize, a: *const f64, rs_a: usize, cs_a: usize, b: *const f64, rs_b: usize, out: TileOut<f64>) {
    microkernel::<f64, R, P>(k, a, rs_a, cs_a, b, rs_b, out)
}

unsafe fn finish_row_any<T: Element>(act: Activation, row: &mut [T], scale: Option<&[T]>, bias: Option<&[T]>) {
    finish_row(act, row, scale, bias)
}
unsafe fn backward_any<T: Element>(act: Activation, z: &[T], dy: &[T], out: &mut [T]) {
    backward_slice(act, z, dy, out)
}

pub(crate) static F32: Kernel<f32> = Kernel {
    mr: 4,
    nr: NR,
    mc: 128,
    kc: 256,
    nc: 512,
    column_cost: 5,
    align: 1,
    by_rows: kernels_by_rows!(microkernel_f32, true; 1 2 3 4),
    by_rows_strided: kernels_by_rows!(microkernel_f32, false; 1 2 3 4),
    pack_b: pack_b_any::<f32>,
    finish_row: finish_row_any::<f32>,
    backward: backward_any::<f32>,
};

pub(crate) static F64: Kernel<f64> = Kernel {
    mr: 4,
    nr: NR,
    mc: 128,
    kc: 256,
    nc: 256,
    column_cost: 5,
    align: 1,
    by_rows: kernels_by_rows!(microkernel_f64, true; 1 2 3 4),
    by_rows_strided: kernels_by_rows!(microkernel_f64, false; 1 2 3 4),
    pack_b: pack_b_any::<f64>,
    finish_row: finish_row_any::<f64>,
    backward: backward_any::<f64>,
};

/// The only tile of each type on this path.
pub(crate) static F32_TILES: [&Kernel<f32>; 1] = [&F32];
pub(crate) static F64_TILES: [&Kernel<f64>; 1] = [&F64];
