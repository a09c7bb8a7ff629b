"""amber.saving: mirrors keras.saving."""
