"""glyphsr: glyph-aware scene text image super-resolution (GlyphSR, AAAI 2025) as a toolkit.

Subpackages (the README's "Layout" section lists them with their modules):

- ``glyphsr.data``: TextZoom LMDB reading/writing, label filters, the synthetic TextZoom generator.
- ``glyphsr.recognizers``: pretrained text recognizers behind one small interface.
- ``glyphsr.gem``: the Glyph Extraction Module.
- ``glyphsr.sr``: the super-resolution network, its losses, training loop and metrics.
- ``glyphsr.pipelines``: the command-line programs.
"""

from glyphsr._version import __version__, code_version

__all__ = ["__version__", "code_version"]
