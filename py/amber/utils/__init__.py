"""amber.utils: mirrors keras.utils."""
