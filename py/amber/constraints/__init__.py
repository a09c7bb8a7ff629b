"""amber.constraints: mirrors keras.constraints."""
