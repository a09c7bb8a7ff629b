"""amber.losses: mirrors keras.losses."""
