"""Building blocks that Keras's `keras.applications` models name in their configs.

Keras keeps a few layers inside its application modules instead of `keras.layers` (ConvNeXt's
`LayerScale`); a saved ConvNeXt names them by that module, so amber resolves them from here.
"""
