"""Constants of the mask store contract shared by ``gem-extract`` (writer) and ``sr-train`` (reader).

Sample i (0-based) is LMDB index i + 1. ``char`` uint8 (N, 15, 32, 128), ``line`` uint8 (N, 1, 32, 128),
``status`` uint8 (N,). Characters are those of the label after the ``all`` filter, in order; characters past the
15th get no channel.
"""

from __future__ import annotations

from glyphsr.data.labels import MAX_CHARS

MASK_SIZE = (32, 128)
STATUS_PENDING, STATUS_OK, STATUS_FAILED, STATUS_NO_GLYPH = 0, 1, 2, 3
STATUS_NAMES = {STATUS_PENDING: "pending", STATUS_OK: "ok", STATUS_FAILED: "failed", STATUS_NO_GLYPH: "no glyph"}

__all__ = ["MASK_SIZE", "MAX_CHARS", "STATUS_FAILED", "STATUS_NAMES", "STATUS_NO_GLYPH", "STATUS_OK",
           "STATUS_PENDING"]
