"""amber.backend: mirrors keras.backend."""
