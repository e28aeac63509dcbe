"""Contracts both stages share: TextZoom LMDB reading and writing, label filters, glyph ground truth, and the
synthetic TextZoom generator. Imports nothing of torch, so Dask workers and tools stay light."""

from glyphsr.data.labels import CHARSET_ALL, CHARSET_LOWER, MAX_CHARS, str_filt
from glyphsr.data.textzoom import (
    NotTextZoomError,
    RawRecord,
    Sample,
    TextZoomError,
    TextZoomLMDB,
    TextZoomWriter,
)

__all__ = [
    "CHARSET_ALL", "CHARSET_LOWER", "MAX_CHARS", "NotTextZoomError", "RawRecord", "Sample", "TextZoomError",
    "TextZoomLMDB", "TextZoomWriter", "str_filt",
]
