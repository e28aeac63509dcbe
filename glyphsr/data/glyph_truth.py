"""Ground-truth glyph maps resampled by area.

GEM works at 32x128, the synthetic ground truth lives at the HR image's native size. Nearest-neighbour
resampling of 2-px strokes is no ground truth (it agrees with the area version at IoU 0.64 only), so masks are
compared against the area-resampled truth: a pixel is text when characters cover at least half of it, and it
belongs to the character that covers most of it.
"""

from __future__ import annotations

import numpy as np

from glyphsr.data.labels import MAX_CHARS
from glyphsr.data.textzoom import HR_SIZE


def area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix whose rows average the input cells each output cell overlaps, weighted by overlap."""
    edges_in = np.arange(n_in + 1, dtype=np.float64)
    edges_out = np.linspace(0.0, n_in, n_out + 1)
    lo = np.maximum(edges_out[:-1, None], edges_in[None, :-1])
    hi = np.minimum(edges_out[1:, None], edges_in[None, 1:])
    overlap = np.clip(hi - lo, 0.0, None)  # (n_out, n_in)
    return overlap / overlap.sum(axis=1, keepdims=True)


def area_resize(stack: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area-resample float (C, H, W) to (C, size[0], size[1]) exactly (any ratio, up or down)."""
    c, h, w = stack.shape
    rh = area_matrix(h, size[0])  # (h', h)
    rw = area_matrix(w, size[1])  # (w', w)
    # two matrix products (an unoptimized einsum would contract all four axes at once: minutes per image)
    return (rh @ stack.astype(np.float64) @ rw.T).astype(np.float32)


def char_coverage(label_map: np.ndarray, n_chars: int, size: tuple[int, int] = HR_SIZE) -> np.ndarray:
    """Fraction of each output pixel covered by character k: float32 (n_chars, H, W)."""
    ks = np.arange(1, n_chars + 1, dtype=label_map.dtype)
    onehot = (label_map[None] == ks[:, None, None]).astype(np.float32)  # (n_chars, h, w)
    return area_resize(onehot, size)


def resample_label_map(label_map: np.ndarray, n_chars: int, size: tuple[int, int] = HR_SIZE) -> np.ndarray:
    """Area-resampled label map, uint8 (H, W): 0 background, k = character k (1-based)."""
    if n_chars == 0:
        return np.zeros(size, np.uint8)
    cov = char_coverage(label_map, n_chars, size)  # (n, H, W)
    text = cov.sum(axis=0) >= 0.5
    return np.where(text, cov.argmax(axis=0) + 1, 0).astype(np.uint8)


def char_masks(label_map: np.ndarray, n_chars: int, max_chars: int = MAX_CHARS,
               size: tuple[int, int] = HR_SIZE) -> np.ndarray:
    """Per-character binary masks uint8 (max_chars, H, W) from the area-resampled label map.

    Characters past ``max_chars`` get no channel (the mask store's contract)."""
    lab = resample_label_map(label_map, n_chars, size)
    ks = np.arange(1, max_chars + 1, dtype=np.uint8)
    return (lab[None] == ks[:, None, None]).astype(np.uint8)
