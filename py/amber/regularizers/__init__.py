"""amber.regularizers: mirrors keras.regularizers."""
