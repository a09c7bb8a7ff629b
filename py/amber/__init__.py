"""amber: the Keras 3 model and saving API on a Rust engine.

``import amber as keras`` runs the code of the Keras "Serialization and saving" guide.
"""

from amber._native import __version__  # noqa: F401
from amber.backend import allocator as _allocator

_allocator.tune()  # large arrays freed by a forward pass are reused, not faulted in again

from amber import backend  # noqa: F401
from amber import ops  # noqa: F401
from amber import activations  # noqa: F401
from amber import initializers  # noqa: F401
from amber import regularizers  # noqa: F401
from amber import constraints  # noqa: F401
from amber import layers  # noqa: F401
from amber import losses  # noqa: F401
from amber import metrics  # noqa: F401
from amber import optimizers  # noqa: F401
from amber import callbacks  # noqa: F401
from amber import models  # noqa: F401
from amber import saving  # noqa: F401
from amber import utils  # noqa: F401
from amber import export  # noqa: F401
from amber import config  # noqa: F401

# Framework names Keras exposes at the top level.
from amber.layers import Input, InputSpec, KerasTensor, Layer  # noqa: E402,F401
from amber.models import Model, Sequential  # noqa: E402,F401
