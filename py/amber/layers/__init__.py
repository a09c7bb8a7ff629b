"""amber.layers: mirrors keras.layers."""
