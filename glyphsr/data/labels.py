"""Label filters of the TextZoom protocol.

``all`` keeps digits, ASCII letters and ASCII punctuation (``string.printable[:-6]``, 94 characters), in order;
``lower`` lowercases and keeps only ``[0-9a-z]``: the form every STISR paper evaluates accuracy on.
"""

from __future__ import annotations

import string
from typing import Literal

VocType = Literal["all", "lower"]

CHARSET_ALL = string.printable[:-6]  # digits + letters + punctuation, 94 characters
CHARSET_LOWER = string.digits + string.ascii_lowercase  # 36 characters
_KEEP = {"all": frozenset(CHARSET_ALL), "lower": frozenset(CHARSET_LOWER)}

#: Maximum number of characters that get a glyph channel (the paper's L).
MAX_CHARS = 15


def str_filt(text: str, voc_type: VocType = "all") -> str:
    """Filter ``text`` to the ``voc_type`` charset (``lower`` lowercases first)."""
    if voc_type not in _KEEP:
        raise ValueError(f"voc_type must be 'all' or 'lower', got {voc_type!r}")
    if voc_type == "lower":
        text = text.lower()
    keep = _KEEP[voc_type]
    return "".join(c for c in text if c in keep)
