"""amber.metrics: mirrors keras.metrics."""
