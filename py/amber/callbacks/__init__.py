"""amber.callbacks: mirrors keras.callbacks."""
