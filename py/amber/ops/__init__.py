"""amber.ops: mirrors keras.ops."""
