//! Strided matrix views over memory. The constructors check once that every element the
//! view can address lies inside its buffer; the kernels then address elements with raw
//! pointers and no further checks. Read views may be misaligned, so operands are always
//! read with unaligned loads. Strides count elements, so a transposed operand is just a
//! view with its strides swapped (no copy).

use std::marker::PhantomData;

use crate::error::{Error, Result};

/// Index one past the largest element a `rows x cols` view with these strides addresses,
/// or `None` on overflow. Zero when the view is empty.
fn span(rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> Option<usize> {
    if rows == 0 || cols == 0 {
        return Some(0);
    }
    (rows - 1).checked_mul(row_stride)?.checked_add((cols - 1).checked_mul(col_stride)?)?.checked_add(1)
}

fn check_span(what: &str, rows: usize, cols: usize, rs: usize, cs: usize, len: usize) -> Result<()> {
    match span(rows, cols, rs, cs) {
        Some(needed) if needed <= len => Ok(()),
        Some(needed) => Err(Error::invalid(format!(
            "{what}: a {rows}x{cols} view with strides ({rs}, {cs}) needs {needed} elements, the buffer has {len}"
        ))),
        None => Err(Error::invalid(format!(
            "{what}: a {rows}x{cols} view with strides ({rs}, {cs}) overflows the address space"
        ))),
    }
}

/// A read-only `rows x cols` matrix: element (i, j) is `data[i * row_stride + j * col_stride]`.
///
/// Held as a raw pointer rather than a slice because the elements may sit at an address
/// that is not a multiple of their alignment (weights mapped straight from a file written
/// with an odd offset); every read through it is an unaligned read.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a, T> {
    data: *const T,
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
    borrow: PhantomData<&'a [T]>,
}

// Safety: a `MatRef` is a shared borrow of `T`s, exactly as `&'a [T]` is.
unsafe impl<T: Sync> Send for MatRef<'_, T> {}
unsafe impl<T: Sync> Sync for MatRef<'_, T> {}

impl<'a, T: Copy> MatRef<'a, T> {
    pub fn new(data: &'a [T], rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> Result<Self> {
        // Safety: a slice is `len` readable elements borrowed for `'a`.
        unsafe { Self::from_raw_parts(data.as_ptr(), data.len(), rows, cols, row_stride, col_stride) }
    }

    /// A view of `len` elements at `data`, which need not be aligned for `T`.
    ///
    /// # Safety
    /// `data .. data + len` must be readable memory holding valid `T`s, not written by
    /// anyone while `'a` lasts.
    pub unsafe fn from_raw_parts(
        data: *const T,
        len: usize,
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Result<Self> {
        check_span("matrix", rows, cols, row_stride, col_stride, len)?;
        Ok(MatRef { data, rows, cols, row_stride, col_stride, borrow: PhantomData })
    }
    /// A C-ordered (row-major) matrix.
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Result<Self> {
        Self::new(data, rows, cols, cols, 1)
    }
    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    pub fn row_stride(&self) -> usize {
        self.row_stride
    }
    pub fn col_stride(&self) -> usize {
        self.col_stride
    }
    /// The same elements seen transposed.
    pub fn t(self) -> Self {
        MatRef { rows: self.cols, cols: self.rows, row_stride: self.col_stride, col_stride: self.row_stride, ..self }
    }
    /// The first element's address; possibly misaligned, so read only with `read_unaligned`.
    pub(crate) fn ptr(&self) -> *const T {
        self.data
    }
    pub fn get(&self, i: usize, j: usize) -> Option<T> {
        if i >= self.rows || j >= self.cols {
            return None;
        }
        // Safety: (i, j) is inside the view, whose span the constructor checked.
        Some(unsafe { self.data.add(i * self.row_stride + j * self.col_stride).read_unaligned() })
    }
}

/// A writable `rows x cols` matrix whose elements are all distinct memory locations.
#[derive(Debug)]
pub struct MatMut<'a, T> {
    data: &'a mut [T],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a, T: Copy> MatMut<'a, T> {
    /// Refuses strides under which two elements would share memory: the kernels write tiles
    /// from several threads and must never race on one location.
    pub fn new(data: &'a mut [T], rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> Result<Self> {
        check_span("output", rows, cols, row_stride, col_stride, data.len())?;
        // Order the two dimensions by stride; the inner one must step by at least 1 and the
        // outer one must step past a whole inner run.
        let (inner_len, inner_stride, outer_len, outer_stride) = if col_stride <= row_stride {
            (cols, col_stride, rows, row_stride)
        } else {
            (rows, row_stride, cols, col_stride)
        };
        let inner_ok = inner_len <= 1 || inner_stride >= 1;
        let outer_ok = outer_len <= 1
            || inner_len == 0
            || (inner_len - 1).checked_mul(inner_stride).map_or(false, |last| outer_stride > last);
        let empty = rows == 0 || cols == 0;
        if !(empty || (inner_ok && outer_ok)) {
            return Err(Error::invalid(format!(
                "output: a {rows}x{cols} view with strides ({row_stride}, {col_stride}) writes some elements to the same memory"
            )));
        }
        Ok(MatMut { data, rows, cols, row_stride, col_stride })
    }
    pub fn row_major(data: &'a mut [T], rows: usize, cols: usize) -> Result<Self> {
        Self::new(data, rows, cols, cols, 1)
    }
    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    pub fn row_stride(&self) -> usize {
        self.row_stride
    }
    pub fn col_stride(&self) -> usize {
        self.col_stride
    }
    pub(crate) fn ptr(&mut self) -> *mut T {
        self.data.as_mut_ptr()
    }
    pub fn as_ref(&self) -> MatRef<'_, T> {
        MatRef {
            data: self.data.as_ptr(),
            rows: self.rows,
            cols: self.cols,
            row_stride: self.row_stride,
            col_stride: self.col_stride,
            borrow: PhantomData,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_must_fit_their_buffer() {
        let data = [0.0f32; 6];
        assert!(MatRef::new(&data, 2, 3, 3, 1).is_ok());
        assert!(MatRef::new(&data, 3, 2, 1, 3).is_ok());
        let err = MatRef::new(&data, 3, 3, 3, 1).unwrap_err();
        assert!(err.to_string().contains("needs 9 elements"), "{err}");
        assert!(MatRef::new(&data, 2, 2, usize::MAX, 1).is_err());
        assert!(MatRef::new(&data, 0, 100, 100, 1).is_ok());
    }

    #[test]
    fn outputs_must_not_alias() {
        let mut data = [0.0f32; 16];
        assert!(MatMut::new(&mut data, 2, 2, 2, 1).is_ok());
        assert!(MatMut::new(&mut data, 2, 2, 1, 2).is_ok());
        assert!(MatMut::new(&mut data, 2, 3, 2, 1).is_err());
        assert!(MatMut::new(&mut data, 2, 2, 0, 1).is_err());
        assert!(MatMut::new(&mut data, 1, 4, 0, 1).is_ok());
        assert!(MatMut::new(&mut data, 3, 3, 4, 1).is_ok());
        assert!(MatMut::new(&mut data, 0, 5, 0, 0).is_ok());
    }
}
