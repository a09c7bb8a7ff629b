"""Type stubs for ``amber._native``, the PyO3 binding over the ``amber-core`` Rust crate.

Every function releases the GIL during I/O and compute. Errors: ``FormatError`` (a
``ValueError``) for malformed, unsupported or refused input; ``FileIOError`` (an ``OSError``)
when the OS refuses; ``KeyError`` for a name that is not in the file. Messages name the file,
the entry or object, and the byte offset where it applies.

Arrays handed out by readers are read-only numpy views of the mapped file when the data is
stored contiguously and uncompressed (their ``.base`` keeps the mapping alive); other data is
decoded into fresh arrays.
"""

from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import numpy as np

__version__: str

class FormatError(ValueError): ...
class FileIOError(OSError): ...

# ------------------------------------------------------------------ zip archives
class Archive:
    """A zip archive, memory-mapped; its index is validated on open."""

    @staticmethod
    def open(path: str) -> "Archive": ...
    @property
    def path(self) -> str: ...
    def names(self) -> list[str]:
        """Entry names in central-directory order."""
    def entries(self) -> list[dict[str, Any]]:
        """One dict per entry: name, method ('stored'|'deflated'), data_offset (absolute, in the
        file), compressed_size, size, crc32, is_dir."""
    def read(self, name: str, limit: Optional[int] = None) -> bytes:
        """The entry's bytes (inflated if deflated, at most ``limit`` bytes or it fails; CRC
        checked)."""
    def open_h5(self, name: str) -> "H5File":
        """Open a stored entry as HDF5 in place (zero-copy); a deflated entry is inflated
        (bounded) into memory first."""

class ArchiveWriter:
    """Writes a zip archive to a temporary file beside ``path``; ``finish`` renames it into
    place. Stored entries have their data aligned to 64 bytes in the file."""

    def __init__(self, path: str) -> None: ...
    def add_bytes(self, name: str, data: bytes, deflate: bool = False) -> None: ...
    def add_h5(self, name: str, writer: "H5Writer") -> None:
        """Stream an HDF5 file, stored (uncompressed), straight from the arrays."""
    def finish(self) -> None: ...
    def abort(self) -> None:
        """Remove the temporary file; the target is untouched."""

class MappedView:
    """The ``.base`` of a zero-copy array: holds a window of a mapped file (keeping the mapping
    alive) and presents it to numpy through ``__array_interface__``, read-only."""

    @property
    def __array_interface__(self) -> dict[str, Any]: ...
    @property
    def offset(self) -> int:
        """Absolute offset of the viewed bytes in the mapped file."""
    def __len__(self) -> int: ...

# ------------------------------------------------------------------ HDF5 reading
AttrValue = Union[str, list[str], np.ndarray, int, float, bool]

class H5File:
    """An HDF5 file (or stored zip entry) opened for reading. Paths are '/'-separated,
    absolute or relative to the root."""

    @staticmethod
    def open(path: str) -> "H5File": ...
    @staticmethod
    def from_bytes(data: bytes, label: str = "<memory>") -> "H5File": ...
    def kind(self, path: str) -> Optional[str]:
        """'group', 'dataset', or None when nothing is at ``path``."""
    def keys(self, path: str = "/") -> list[str]:
        """Member names of the group at ``path`` in the file's link order (name order for
        symbol tables; creation order when tracked)."""
    def attrs(self, path: str = "/") -> dict[str, AttrValue]:
        """Attributes of a group or dataset: strings as ``str`` (arrays of strings as
        ``list[str]``), numbers as numpy scalars (0-d) or arrays."""
    def shape(self, path: str) -> tuple[int, ...]: ...
    def dtype(self, path: str) -> str:
        """numpy dtype name of the dataset ('float32', 'int64', 'bool', ...)."""
    def read(self, path: str, copy: bool = False) -> np.ndarray:
        """The dataset's data: a read-only view when contiguous and little-endian, else a
        fresh array. ``copy=True``: always a fresh writable array; copying from a mapped file
        drops the copied pages from this process's resident memory as it goes."""
    def visit(self) -> list[tuple[str, str]]:
        """Every object below the root, depth first: (path without leading '/', kind)."""

# ------------------------------------------------------------------ HDF5 writing
class H5Writer:
    """Builds an HDF5 file in memory as a plan (groups, attributes, references to arrays) and
    writes it in one sequential pass: dataset bytes go straight from the arrays to the file,
    aligned to 64 bytes. Intermediate groups are created as needed; group members keep
    creation order."""

    def __init__(self) -> None: ...
    def create_group(self, path: str) -> None: ...
    def create_dataset(self, path: str, data: np.ndarray) -> None:
        """Keeps a reference to ``data`` (C-contiguous; otherwise a contiguous copy is taken)."""
    def set_attr(self, path: str, name: str, value: AttrValue) -> None:
        """``str`` -> variable-length UTF-8 string; ``list[str]`` -> fixed-length string array;
        bool/int/float/numpy -> numeric."""
    def write(self, path: str) -> None:
        """Write to a temporary file beside ``path`` and rename it into place."""
    def to_bytes(self) -> bytes: ...

# ------------------------------------------------------------------ safetensors
def safetensors_load(path: str) -> tuple[dict[str, np.ndarray], Optional[dict[str, str]]]:
    """All tensors (read-only views of the mapped file) and the ``__metadata__`` dict."""
def safetensors_save(path: str, tensors: Mapping[str, np.ndarray], metadata: Optional[Mapping[str, str]] = None) -> None:
    """Write through a temporary file renamed into place."""

# ------------------------------------------------------------------ kernels
# Operands are read in place through their strides: transposed (``w.T``), sliced and
# Fortran-ordered arrays cost no copy, and neither do misaligned matrix operands (Keras places
# datasets at odd offsets; the kernels read them with unaligned loads). Negative strides, a
# misaligned bias or activation input, or a dtype other than the product's are copied first. float32 only when every operand is float32, else float64;
# other dtypes raise TypeError. Large products run on several threads (``AMBER_NUM_THREADS``,
# read once, caps them); the GIL is released while computing.
#
# Activations: 'linear', 'relu', 'relu6' (``min(max(z, 0), 6)``), 'sigmoid', 'tanh', 'gelu' (the erf form: Keras 3's
# ``keras.activations.gelu`` default, approximate=False), 'gelu_tanh' (the tanh approximation,
# approximate=True), 'silu' (alias 'swish').

def matmul(a: np.ndarray, b: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
    """float32/float64 matrix product of 2-D arrays of any strides (no copies). ``out`` (2-D,
    the product's dtype, writable, any non-negative strides without self-overlap) receives the
    result and is returned; inputs overlapping it are read from a copy."""
def dense(x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray] = None, activation: str = "linear", out: Optional[np.ndarray] = None, scale: Optional[np.ndarray] = None) -> np.ndarray:
    """``act(x @ w * scale + b)`` in one pass (``scale``, like ``b``, one value per output
    column; each optional): scale, bias and activation are applied to each output tile as
    it is finished."""
def activation(name: str, z: np.ndarray) -> np.ndarray:
    """``act(z)`` elementwise, any shape (a fresh contiguous array)."""
def activation_grad(name: str, z: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Backward of an activation from its pre-activation: ``dy * act'(z)``."""
def dense_grad(x: np.ndarray, w: np.ndarray, dz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward of Dense from the gradient at the pre-activation ``dz`` (use
    ``activation_grad`` first): ``(dz @ w.T, x.T @ dz, dz.sum(axis=0))``, the transposes read
    through strides."""
def set_isa(name: Optional[str] = None) -> None:
    """Force the kernel path: 'avx512', 'avx2', 'neon' or 'generic' (ValueError if this CPU lacks
    it); ``None`` returns to ``AMBER_KERNEL_ISA`` (read once) or the best path detected."""
def kernel_isa() -> str:
    """The kernel path in use now."""
def supported_isas() -> list[str]:
    """The kernel paths this CPU can run, best first."""
def peak_f32_flops(isa: str, threads: int = 1, iterations: int = 200_000_000) -> float:
    """Measured float32 FLOP/s of a pure-FMA loop ('avx512', 'avx2' or 'neon') on ``threads`` threads:
    the machine's peak, the yardstick of the benchmarks."""

# ------------------------------------------------------------------ convolutions
# Arrays must be aligned, C-contiguous float32 (ValueError otherwise, TypeError for another
# dtype); ``out`` is written in place. The GIL is released while computing.

def depthwise_conv2d_f32(x: np.ndarray, kernel: np.ndarray, out: np.ndarray, strides: tuple[int, int], dilation: tuple[int, int], pads: tuple[tuple[int, int], tuple[int, int]], bias: Optional[np.ndarray] = None, activation: str = "linear", scale: Optional[np.ndarray] = None) -> None:
    """Depthwise 2-D convolution (NHWC): ``x`` (batch, height, width, channels) with ``kernel``
    (kh, kw, channels, multiplier) into ``out`` (batch, out_h, out_w, channels * multiplier),
    output channel ``c * multiplier + m``. ``pads`` is ((top, bottom), (left, right)) of zeros
    read without building a padded copy. Per output, one float32 multiply and add per tap in
    row-major tap order (no FMA): the per-tap numpy loop's values. With ``scale`` and/or
    ``bias`` (one float32 value per output channel each) and/or ``activation`` (a name as for
    ``dense``, ``relu6`` included), each output becomes ``activation(y * scale + bias)`` while
    its row is in cache. A window that does not fit the padded input, an ``out`` of the wrong
    shape or a scale or bias of the wrong length raises ValueError."""
def depthwise_conv2d_backward_f32(x: np.ndarray, kernel: np.ndarray, grad: np.ndarray, dx: Optional[np.ndarray], dkernel: Optional[np.ndarray], strides: tuple[int, int], dilation: tuple[int, int], pads: tuple[tuple[int, int], tuple[int, int]]) -> None:
    """The gradients of ``depthwise_conv2d_f32`` for ``grad`` (the output's shape): the
    input's into ``dx`` (shape of ``x``) and the kernel's into ``dkernel`` (shape of
    ``kernel``), each skipped when None. float32 sums, in another order than numpy's."""

def scale_shift_f32(x: np.ndarray, scale: np.ndarray, shift: np.ndarray, out: np.ndarray) -> None:
    """``out = x * scale + shift`` in one pass, ``scale`` and ``shift`` (one value per
    channel) broadcast over the last axis of ``x``; ``out`` has the shape of ``x``. Product and
    sum each rounded to float32: the values of ``np.multiply(x, scale) + shift``."""

# ------------------------------------------------------------------ sigmoid, silu
# ``x`` and ``out`` are aligned, C-contiguous float32 arrays of one shape (ValueError
# otherwise, TypeError for another dtype); ``out`` is written in place, the GIL released.
# Values within a few ulp of float64 ``1 / (1 + exp(-x))``: the stable form (``exp`` only of
# ``-|x|``), exactly 0 and 1 where float32 saturates, subnormals kept, NaN propagated.

def sigmoid_f32(x: np.ndarray, out: np.ndarray) -> None:
    """``out = 1 / (1 + exp(-x))`` in one pass."""
def silu_f32(x: np.ndarray, out: np.ndarray) -> None:
    """``out = x * sigmoid(x)`` in one pass, the sigmoid rounded to float32 before the
    product (so ``silu(-inf)`` is NaN, as numpy's ``x * sigmoid(x)``)."""

# ------------------------------------------------------------------ optimizer steps
# One fused pass per step over flat float32 vectors, bitwise equal to Keras's float32 update
# rule written as numpy expressions (same operations, same order, every intermediate rounded
# to float32; no FMA), except that subnormal values are flushed to zero during a step (FTZ and
# DAZ, as XLA and TensorFlow run on CPU). Every array must be an aligned, C-contiguous float32 array of one
# length (any shape; ValueError otherwise, TypeError for another dtype); slots and
# ``value_out`` are written in place (writable, not overlapping each other or the inputs).
# Coefficients are the float32 values numpy would use, e.g. ``np.float32(1 - beta_1)``. The
# GIL is released while computing.

def sgd_step_f32(value_out: np.ndarray, value_in: np.ndarray, grad: np.ndarray, momentum: Optional[np.ndarray], learning_rate: float, momentum_factor: float, nesterov: bool) -> None:
    """SGD with ``step = g * learning_rate``: without a ``momentum`` slot
    ``value_out = value_in - step``; with one ``momentum = momentum * momentum_factor - step``,
    then ``value_out = value_in + momentum``, or with ``nesterov``
    ``value_out = value_in + (momentum * momentum_factor - step)``."""
def adam_step_f32(value_out: np.ndarray, value_in: np.ndarray, grad: np.ndarray, m: np.ndarray, v: np.ndarray, v_hat: Optional[np.ndarray], alpha: float, one_minus_beta_1: float, one_minus_beta_2: float, epsilon: float) -> None:
    """Adam: ``m += (g - m) * one_minus_beta_1``; ``v += (g*g - v) * one_minus_beta_2``;
    with a ``v_hat`` slot (AMSGrad) ``v_hat = np.maximum(v_hat, v)``, which then stands for
    ``v`` in ``value_out = value_in - (m * alpha) / (sqrt(v) + epsilon)``, ``alpha`` being the
    bias-corrected step size."""
def rmsprop_step_f32(value_out: np.ndarray, value_in: np.ndarray, grad: np.ndarray, velocity: np.ndarray, average_gradient: Optional[np.ndarray], momentum: Optional[np.ndarray], learning_rate: float, rho: float, one_minus_rho: float, epsilon: float, momentum_factor: float) -> None:
    """RMSprop: ``velocity = velocity * rho + (g*g) * one_minus_rho``; centered (an
    ``average_gradient`` slot) ``average = average * rho + g * one_minus_rho`` and
    ``denominator = (velocity - average*average) + epsilon``, else ``velocity + epsilon``;
    ``increment = (g * learning_rate) / sqrt(denominator)``; with a ``momentum`` slot
    ``momentum = momentum * momentum_factor + increment`` and ``value_out = value_in - momentum``,
    else ``value_out = value_in - increment`` (``momentum_factor`` is then unused)."""
def adagrad_step_f32(value_out: np.ndarray, value_in: np.ndarray, grad: np.ndarray, accumulator: np.ndarray, learning_rate: float, epsilon: float) -> None:
    """Adagrad: ``accumulator = accumulator + g*g``;
    ``value_out = value_in - (g * learning_rate) / sqrt(accumulator + epsilon)``."""
def nadam_step_f32(value_out: np.ndarray, value_in: np.ndarray, grad: np.ndarray, m: np.ndarray, v: np.ndarray, learning_rate: float, one_minus_beta_1: float, one_minus_beta_2: float, epsilon: float, next_momentum: float, one_minus_next_product: float, one_minus_momentum: float, one_minus_product: float, one_minus_beta_2_power: float) -> None:
    """Nadam: ``m`` and ``v`` as in Adam, then
    ``m_hat = (next_momentum * m) / one_minus_next_product + (one_minus_momentum * g) / one_minus_product``,
    ``v_hat = v / one_minus_beta_2_power``,
    ``value_out = value_in - (m_hat * learning_rate) / (sqrt(v_hat) + epsilon)`` (the scalars
    are Keras's per-step ``u_{t+1}``, ``1 - prod_t * u_{t+1}``, ``1 - u_t``, ``1 - prod_t``,
    ``1 - beta_2^t``)."""

def adamax_step_f32(value_out: np.ndarray, value_in: np.ndarray, grad: np.ndarray, m: np.ndarray, u: np.ndarray, learning_rate: float, one_minus_beta_1: float, beta_2: float, epsilon: float, one_minus_beta_1_power: float) -> None:
    """Adamax: ``m += (g - m) * one_minus_beta_1``; ``u = np.maximum(u * beta_2, abs(g))``;
    ``value_out = value_in - (learning_rate * m) / (one_minus_beta_1_power * (u + epsilon))``."""
def lion_step_f32(value_out: np.ndarray, value_in: np.ndarray, grad: np.ndarray, m: np.ndarray, learning_rate: float, beta_1: float, one_minus_beta_1: float, beta_2: float, one_minus_beta_2: float) -> None:
    """Lion: ``value_out = value_in - learning_rate * np.sign(m * beta_1 + g * one_minus_beta_1)``,
    then ``m = m * beta_2 + g * one_minus_beta_2``."""
def adadelta_step_f32(value_out: np.ndarray, value_in: np.ndarray, grad: np.ndarray, accumulated_grad: np.ndarray, accumulated_delta: np.ndarray, learning_rate: float, rho: float, one_minus_rho: float, epsilon: float) -> None:
    """Adadelta: ``accumulated_grad = accumulated_grad * rho + (g*g) * one_minus_rho``;
    ``delta = -((sqrt(accumulated_delta + epsilon) * g) / sqrt(accumulated_grad + epsilon))``;
    ``accumulated_delta = accumulated_delta * rho + (delta*delta) * one_minus_rho``;
    ``value_out = value_in + learning_rate * delta``."""
def ftrl_step_f32(value_out: np.ndarray, value_in: np.ndarray, grad: np.ndarray, accumulator: np.ndarray, linear: np.ndarray, learning_rate: float, power: float, two_l2_shrinkage: float, l1: float, two_l2: float) -> None:
    """Ftrl: ``new_accumulator = accumulator + g*g``;
    ``linear += (g + two_l2_shrinkage * value_in) - ((new_accumulator**power - accumulator**power) / learning_rate) * value_in``;
    ``value_out = (np.clip(linear, -l1, l1) - linear) / (new_accumulator**power / learning_rate + two_l2)``.
    ``power`` (``-learning_rate_power``) must be 0, 0.5, 1 or 2, the exponents numpy's float32
    ``power`` computes exactly (ValueError otherwise)."""
def weight_decay_f32(value_out: np.ndarray, value_in: np.ndarray, weight_decay: float, learning_rate: float) -> None:
    """Decoupled weight decay, applied before an update rule:
    ``value_out = value_in - (value_in * weight_decay) * learning_rate``."""

# ------------------------------------------------------------------ training steps

def dense_chain_backward(inputs: Sequence[np.ndarray], input_scales: Sequence[Optional[np.ndarray]], kernels: Sequence[np.ndarray], outputs: Sequence[np.ndarray], activations: Sequence[str], has_bias: Sequence[bool], output_gradient: np.ndarray, out: np.ndarray) -> None:
    """The backward pass of a chain of Dense layers: from each layer's float32 input, the
    dropout factor that input carries (the previous output times it; None for none), kernel,
    post-activation output and activation ('linear' or 'relu'), and the gradient at the last
    output, writes ``dW0, db0, dW1, ...`` end to end into ``out`` (a C-contiguous float32 vector
    of their total size, disjoint from the inputs; no ``db`` for a layer whose ``has_bias`` is
    False). Bitwise the gradients of Dense's and Dropout's own backward."""
def sparse_softmax_crossentropy(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row ``log(sum(exp(z - max))) - (z[label] - max)`` of float32 ``logits`` (rows x
    classes, any strides) against int64 ``labels``: ``(losses, softmax probabilities)``.
    A label out of range is a ValueError naming the row; a NaN logit gives its row NaN."""
def sparse_softmax_crossentropy_backward(probabilities: np.ndarray, labels: np.ndarray, row_gradients: np.ndarray) -> np.ndarray:
    """The gradient at the logits: ``row_gradients[r] * probabilities[r]``, minus
    ``row_gradients[r]`` at the row's label (C-contiguous float32 / int64 operands)."""
