"""amber.models: mirrors keras.models."""
