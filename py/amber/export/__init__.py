"""amber.export: mirrors keras.export."""
