"""amber.config: mirrors keras.config."""
