"""amber: the Keras 3 model and saving API on a Rust engine.

``import amber as keras`` runs the code of the Keras "Serialization and saving" guide.
"""

from amber._native import __version__  # noqa: F401
