"""amber.optimizers: mirrors keras.optimizers."""
