"""Mask quality against ground truth: mean character IoU and line IoU at 32x128.

The ground truth is the synthetic data's native-size label map resampled by area
(:func:`glyphsr.data.glyph_truth.resample_label_map`), never by nearest neighbour.
"""

from __future__ import annotations

import numpy as np

from glyphsr.data.glyph_truth import resample_label_map


def truth_at(label_map: np.ndarray, n_chars: int) -> np.ndarray:
    """The ground truth at 32x128 (:func:`~glyphsr.data.glyph_truth.resample_label_map`), what masks are compared
    with."""
    return resample_label_map(label_map, n_chars)


def mask_ious(char: np.ndarray, line: np.ndarray, truth: np.ndarray, n_chars: int) -> tuple[np.ndarray, float]:
    """char uint8 (L, H, W), line (1, H, W) or (H, W), truth uint8 label map (H, W) at the same size.

    Returns (IoU per character that has ground truth pixels among the first L, line IoU vs all text)."""
    L = char.shape[0]
    k = min(n_chars, L)
    gt = truth[None] == np.arange(1, k + 1, dtype=truth.dtype)[:, None, None]  # (k, H, W)
    pred = char[:k].astype(bool)
    has = gt.reshape(k, -1).any(1)
    inter = (gt & pred).reshape(k, -1).sum(1)
    union = (gt | pred).reshape(k, -1).sum(1)
    ious = (inter / np.maximum(union, 1))[has]
    t = truth > 0
    p = np.asarray(line).reshape(t.shape).astype(bool)
    u = (t | p).sum()
    line_iou = float((t & p).sum() / u) if u else 1.0
    return ious.astype(np.float32), line_iou
