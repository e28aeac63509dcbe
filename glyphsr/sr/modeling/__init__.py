"""The GlyphSR network, one file per component (shapes in each module's docstring)."""

from glyphsr.sr.modeling.glyphsr import CLS_CLASSES, GlyphSRNet, SRConfig, SROutput, build_model

__all__ = ["CLS_CLASSES", "GlyphSRNet", "SRConfig", "SROutput", "build_model"]
