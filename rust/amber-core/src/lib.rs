//! amber-core: Keras model files and fast CPU math, with no Python.
//!
//! - `archive`: zip archives (`.keras`), entries mapped in place.
//! - `h5`: the HDF5 subset of Keras files, read (zero-copy views) and written.
//! - `safetensors`: read (views) and write.
//! - `storage`: mapped files and checked byte ranges shared by all views.
//! - `kernels`: SIMD matmul and fused Dense.
//! - `conv`: depthwise 2-D convolution read from the unpadded input.
//! - `affine`: per-channel scale and shift in one pass (inference BatchNormalization).
//! - `sigmoid`: float32 sigmoid and silu in one pass.
//! - `train`: the backward pass of a chain of Dense layers in one call.
//! - `optim`: fused one-pass optimizer steps (SGD, Adam, RMSprop, Adagrad, Nadam, Adamax, Lion, Adadelta, weight decay) over flat float32 vectors.
//! - `error`: the one error type.

pub mod affine;
pub mod archive;
pub mod conv;
pub mod dtype;
pub mod error;
pub mod h5;
pub mod kernels;
pub mod optim;
pub mod safetensors;
pub mod sigmoid;
pub mod storage;
pub mod train;

#[cfg(test)]
mod test_noise;

pub use error::{Error, ErrorKind, Result};
