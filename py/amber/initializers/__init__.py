"""amber.initializers: mirrors keras.initializers."""
