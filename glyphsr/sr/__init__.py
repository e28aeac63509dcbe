"""The GlyphSR network (``sr.modeling``), its losses (``sr.losses``), and later the training loop and metrics.
Imports ``data`` and ``recognizers`` only, never ``gem``."""
