"""amber.activations: mirrors keras.activations."""
