"""amber.utils: mirrors keras.utils."""

# Owned by the saving part: the registry helpers Keras also exports from keras.utils.
from amber.saving.object_registration import (  # noqa: E402,F401
    CustomObjectScope,
    custom_object_scope,
    get_custom_objects,
    get_registered_name,
    get_registered_object,
    register_keras_serializable,
)
from amber.saving.serialization_lib import (  # noqa: E402,F401
    deserialize_keras_object,
    serialize_keras_object,
)

# Owned by the framework part.
from amber.backend import clear_session  # noqa: E402,F401
from amber.utils.data_utils import normalize, set_random_seed, to_categorical  # noqa: E402,F401

# Owned by the training part: batches from Python code for fit/evaluate/predict.
from amber.trainers.data_adapters import PyDataset  # noqa: E402,F401

Sequence = PyDataset  # Keras's older name for the same class
