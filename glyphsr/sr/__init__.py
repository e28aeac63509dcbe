"""The GlyphSR super-resolution network, its losses, the training loop and metrics.

Not implemented yet (see the project's issues).
"""
