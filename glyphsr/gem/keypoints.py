"""Key points and anchors (paper, "Key Point Extraction" and "Anchor-based Mask Selection").

Per character two key points:

(a) the center of the position attention: for a 2D attention (stt), the centroid of the largest connected
    component after morphological filtering of low responses; for a 1D attention (ctc), the peak column at the
    vertical center of the foreground around it;
(b) the center of the minimum bounding rectangle of the glyph attention = foreground x the attention expanded
    over the height. A 1D CTC attention is spiky (a character fires on one or two steps), so its expansion is the
    character's cell: the columns between its neighbours' peaks, cut at the ink valley (the lowest column of the
    text profile) between each pair of peaks, or at the midpoint when no profile is given (:func:`cells`).

Each key point is shifted up, down, left and right by each step size: 4K + 1 anchors per key point, clipped.
"""

from __future__ import annotations

import cv2
import numpy as np


def cells(peak_x: np.ndarray, valid: np.ndarray, width: int, profile: np.ndarray | None = None
          ) -> tuple[np.ndarray, np.ndarray]:
    """Column cells (lo, hi) float32 (B, L) of consecutive valid peaks; the first from 0, the last to W.

    Without ``profile`` a boundary is the midpoint of two peaks. With a text column profile (B, W) it is the
    profile's lowest column between the two peaks (the middle of the lowest run): glyphs meet where there is
    least ink, and a peak that fires off-centre no longer cuts its neighbour in half."""
    b, L = peak_x.shape
    lo = np.full((b, L), np.nan, np.float32)
    hi = np.full((b, L), np.nan, np.float32)
    for i in range(b):
        k = np.flatnonzero(valid[i])
        if len(k) == 0:
            continue
        px = peak_x[i, k]
        bounds = (px[:-1] + px[1:]) / 2
        if profile is not None:
            for j in range(len(bounds)):
                a, z = int(np.floor(min(px[j], px[j + 1]))), int(np.ceil(max(px[j], px[j + 1])))
                seg = profile[i, a:z + 1]
                if len(seg) >= 3:
                    low = np.flatnonzero(seg <= seg.min() + 1e-6)
                    bounds[j] = a + (low[0] + low[-1]) / 2 + 0.5
        lo[i, k] = np.concatenate([[0.0], bounds])
        hi[i, k] = np.concatenate([bounds, [float(width)]])
    return lo, hi


def glyph_attention(fg: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """bool (B, L, H, W): foreground inside each character's cell (empty for absent characters)."""
    w = fg.shape[2]
    x = np.arange(w, dtype=np.float32) + 0.5
    in_cell = (x[None, None, :] >= lo[:, :, None]) & (x[None, None, :] < hi[:, :, None])  # (B, L, W); NaN -> False
    return fg[:, None, :, :] & in_cell[:, :, None, :]


def bbox_centers(masks: np.ndarray) -> np.ndarray:
    """Centers (x, y) of the bounding rectangles of bool masks (..., H, W) -> float32 (..., 2), NaN if empty."""
    rows = masks.any(axis=-1)  # (..., H)
    cols = masks.any(axis=-2)  # (..., W)
    h, w = masks.shape[-2:]

    def span(a: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        first = np.where(a.any(-1), a.argmax(-1), -1)
        last = np.where(a.any(-1), n - 1 - a[..., ::-1].argmax(-1), -1)
        return first, last

    y0, y1 = span(rows, h)
    x0, x1 = span(cols, w)
    c = np.stack([(x0 + x1 + 1) / 2.0, (y0 + y1 + 1) / 2.0], axis=-1).astype(np.float32)
    c[x0 < 0] = np.nan
    return c


def position_keypoints_1d(peak_x: np.ndarray, fg: np.ndarray, half_width: int = 2) -> np.ndarray:
    """(a) for a 1D attention: (peak x, vertical center of the foreground within +-half_width columns)."""
    b, L = peak_x.shape
    h, w = fg.shape[1:]
    out = np.full((b, L, 2), np.nan, np.float32)
    ok = ~np.isnan(peak_x)
    xi = np.clip(np.nan_to_num(peak_x).astype(int), 0, w - 1)
    cols = np.arange(w)
    near = np.abs(cols[None, None, :] - xi[:, :, None]) <= half_width  # (B, L, W)
    rows_any = (fg[:, None, :, :] & near[:, :, None, :]).any(-1)  # (B, L, H)
    ys = np.arange(h, dtype=np.float32)
    cnt = rows_any.sum(-1)
    y_mid = np.where(cnt > 0, (rows_any * ys).sum(-1) / np.maximum(cnt, 1), (h - 1) / 2)
    # centre of the covered rows' extent rather than their mean: letters with bowls are not uniform
    first = np.where(cnt > 0, rows_any.argmax(-1), 0)
    last = np.where(cnt > 0, h - 1 - rows_any[..., ::-1].argmax(-1), h - 1)
    y_mid = np.where(cnt > 0, (first + last) / 2.0, y_mid)
    out[..., 0] = np.where(ok, peak_x, np.nan)
    out[..., 1] = np.where(ok, y_mid, np.nan)
    return out


def position_keypoints_2d(position: np.ndarray, rel_threshold: float = 0.5) -> np.ndarray:
    """(a) for a 2D attention (B, L, H, W): keep responses >= rel_threshold x max, open morphologically (3x3) to
    drop isolated specks, take the largest connected component's centroid (the attention radiates from there)."""
    b, L, h, w = position.shape
    out = np.full((b, L, 2), np.nan, np.float32)
    mx = position.reshape(b, L, -1).max(-1)
    kernel = np.ones((3, 3), np.uint8)
    for i in range(b):
        for k in range(L):
            if not mx[i, k] > 0:
                continue
            m = (position[i, k] >= rel_threshold * mx[i, k]).astype(np.uint8)
            opened = cv2.morphologyEx(m, cv2.MORPH_OPEN, kernel)
            if opened.any():
                m = opened
            n, lab, stats, cent = cv2.connectedComponentsWithStats(m, connectivity=8)
            if n <= 1:
                continue
            j = 1 + int(stats[1:, cv2.CC_STAT_AREA].argmax())
            out[i, k] = cent[j]
    return out


def anchors(keypoints: np.ndarray, steps: tuple[int, ...], width: int, height: int) -> np.ndarray:
    """keypoints (..., 2) -> anchors (..., 4K+1, 2): the point, then up, down, left, right by each step; clipped
    to the image. NaN key points give NaN anchors."""
    offs = [(0.0, 0.0)]
    for s in steps:
        offs += [(0.0, -s), (0.0, s), (-s, 0.0), (s, 0.0)]
    off = np.array(offs, np.float32)  # (4K+1, 2)
    a = keypoints[..., None, :] + off
    a[..., 0] = np.clip(a[..., 0], 0, width - 1)
    a[..., 1] = np.clip(a[..., 1], 0, height - 1)
    return a
