"""The classical segmenter: a promptable, weight-free stand-in for Segment Anything on text crops.

What it is, plainly: thresholding and connected components of a soft text-coverage map, with a column-profile
split of touching glyphs. No learning, no weights, a few milliseconds per image on a CPU.

Per image:

1. Text coverage ``alpha`` from the K-means foreground and locally estimated background/text levels
   (:func:`glyphsr.gem.foreground.text_alpha`); the text mask is ``alpha >= 0.5``.
2. Connected components (8-connected) of the text mask. Each component's column profile is cut at its deep
   valleys (a local minimum below ``valley_ratio`` x the lower of the maxima on either side): touching glyphs
   meet at thin junctions. This splits a component into segments.
3. A prompt snaps to the nearest text pixel (within ``snap_radius``) and so to one segment. Its candidates, like
   SAM's multimask output from part to whole: the runs of up to ``max_run`` consecutive segments of its
   component that contain its segment, each also in a "column-complete" form that adds the small components
   lying within the run's columns (the dot of an i, the parts of a colon or %), and the whole component.
4. Confidence: stability, as SAM's stability score: the IoU of the candidate's region thresholded at
   ``alpha >= 0.5 + stability_delta`` and at ``alpha >= 0.5 - stability_delta`` (components touching the
   candidate, within its columns). Crisp glyphs score near 1; blurred or ambiguous ones lower.
   This is not a calibrated IoU like SAM's: it says how sharp a mask's edges are, not whether it is one glyph,
   so the tau filter is off for this segmenter by default (measured in bench/bench_gem.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from glyphsr.gem.foreground import kmeans_foreground, text_alpha
from glyphsr.gem.segmenters import Candidates


@dataclass(frozen=True)
class ClassicalConfig:
    threshold: float = 0.5
    stability_delta: float = 0.1
    valley_ratio: float = 0.3
    snap_radius: float = 3.0
    max_run: int = 3
    alpha_window: int = 15


def _valley_cuts(proj: np.ndarray, ratio: float) -> np.ndarray:
    """bool (n, W): columns where each component's profile has a deep valley (cut before that column)."""
    n, w = proj.shape
    left = np.maximum.accumulate(proj, axis=1)
    right = np.maximum.accumulate(proj[:, ::-1], axis=1)[:, ::-1]
    p_prev = np.concatenate([np.full((n, 1), np.inf), proj[:, :-1]], 1)
    p_next = np.concatenate([proj[:, 1:], np.full((n, 1), np.inf)], 1)
    local_min = (proj <= p_prev) & (proj < p_next)  # last column of a flat bottom
    lm = np.concatenate([np.zeros((n, 1)), left[:, :-1]], 1)
    rm = np.concatenate([right[:, 1:], np.zeros((n, 1))], 1)
    deep = proj <= ratio * np.minimum(lm, rm)
    return local_min & deep & (np.minimum(lm, rm) >= 3)


class ClassicalSegmenter:
    """Promptable segmentation from the image alone (see the module docstring for exactly what it does)."""

    name = "classical"
    calibrated_confidence = False  # stability, not a predicted IoU: the tau filter stays off by default

    def __init__(self, config: ClassicalConfig = ClassicalConfig()):
        self.config = config

    def alpha(self, images: np.ndarray) -> np.ndarray:
        fg, levels = kmeans_foreground(images)
        return text_alpha(images, fg, levels, self.config.alpha_window)

    def segment(self, images: np.ndarray, points: list[np.ndarray], alpha: np.ndarray | None = None
                ) -> list[Candidates]:
        if alpha is None:
            alpha = self.alpha(images)
        return [self._segment_one(alpha[i], points[i]) for i in range(len(points))]

    def _segment_one(self, alpha: np.ndarray, pts: np.ndarray) -> Candidates:
        cfg = self.config
        h, w = alpha.shape
        n_prompts = len(pts)
        m_per = 2 * (cfg.max_run * (cfg.max_run + 1) // 2) + 1
        text = alpha >= cfg.threshold
        if not text.any() or n_prompts == 0:
            return Candidates.empty(n_prompts, h, w, m_per)
        n, lab = cv2.connectedComponents(text.astype(np.uint8), connectivity=8)
        # each component's column profile and its segments
        cols = np.broadcast_to(np.arange(w), (h, w))
        proj = np.bincount((lab * w + cols).ravel(), minlength=n * w).reshape(n, w).astype(np.float32)
        proj[0] = 0
        cut = _valley_cuts(proj, cfg.valley_ratio)
        seg_of_col = np.cumsum(cut, axis=1)  # (n, W): segment index within the component
        n_seg = seg_of_col[:, -1] + 1
        # column ranges of each (component, segment): [start, end)
        present = proj > 0
        comp_x0 = np.where(present.any(1), present.argmax(1), 0)
        comp_x1 = np.where(present.any(1), w - present[:, ::-1].argmax(1), 0)
        comp_area = proj.sum(1)
        # snap prompts to the nearest text pixel
        dist, (iy, ix) = ndimage.distance_transform_edt(~text, return_indices=True)
        ok = ~np.isnan(pts).any(axis=1)
        px = np.clip(np.nan_to_num(pts[:, 0]).round().astype(int), 0, w - 1)
        py = np.clip(np.nan_to_num(pts[:, 1]).round().astype(int), 0, h - 1)
        ok &= dist[py, px] <= cfg.snap_radius
        sy, sx = iy[py, px], ix[py, px]
        comp = np.where(ok, lab[sy, sx], 0)
        seg = np.where(ok, seg_of_col[comp, sx], 0)
        # unique (component, segment) pairs -> candidate specs
        keys = comp * (w + 1) + seg
        uniq, inv = np.unique(np.where(ok, keys, -1), return_inverse=True)
        low = (alpha >= cfg.threshold - cfg.stability_delta).astype(np.uint8)
        lab_lo = cv2.connectedComponents(low, connectivity=8)[1]
        text_hi = alpha >= cfg.threshold + cfg.stability_delta
        x = np.arange(w)
        spec_index: dict[tuple, int] = {}
        masks: list[np.ndarray] = []
        per_key: dict[int, list[int]] = {}
        for key in uniq:
            if key < 0:
                continue
            c, s = int(key // (w + 1)), int(key % (w + 1))
            ids: list[int] = []
            runs = [(a, a + r - 1) for r in range(1, cfg.max_run + 1) for a in range(s - r + 1, s + 1)
                    if a >= 0 and a + r - 1 < n_seg[c]]
            comp_mask = lab == c
            for a, b in runs:
                cols_in = (seg_of_col[c] >= a) & (seg_of_col[c] <= b) & present[c]
                x0, x1 = x[cols_in].min(), x[cols_in].max() + 1
                for variant in ("cut", "columns"):
                    spec = (c, a, b, variant)
                    if spec not in spec_index:
                        colmask = (x >= x0) & (x < x1)
                        m = comp_mask & colmask[None, :]
                        if variant == "columns":
                            inside = (comp_x0 >= x0 - 1) & (comp_x1 <= x1 + 1) & (comp_area > 0)
                            inside[c] = False
                            if inside.any():
                                m = m | (inside[lab] & colmask[None, :])
                        spec_index[spec] = len(masks)
                        masks.append(m)
                    ids.append(spec_index[spec])
            spec = (c, -1, -1, "whole")
            if spec not in spec_index:
                spec_index[spec] = len(masks)
                masks.append(comp_mask)
            ids.append(spec_index[spec])
            per_key[int(key)] = list(dict.fromkeys(ids))
        mask_arr = np.stack(masks) if masks else np.zeros((0, h, w), bool)
        scores = self._stability(mask_arr, lab_lo, text_hi)
        pc = np.full((n_prompts, m_per), -1, np.int64)
        for p in np.flatnonzero(ok):
            ids = per_key[int(keys[p])]
            pc[p, : len(ids)] = ids
        return Candidates(mask_arr, scores, pc)

    @staticmethod
    def _stability(masks: np.ndarray, lab_lo: np.ndarray, text_hi: np.ndarray) -> np.ndarray:
        """IoU between each candidate at the high and at the low threshold, within its columns."""
        u = len(masks)
        if u == 0:
            return np.zeros(0, np.float32)
        n_lo = int(lab_lo.max()) + 1
        flat = masks.reshape(u, -1)
        # low-threshold components touching each candidate
        touch = np.zeros((u, n_lo), bool)
        rows, pix = np.nonzero(flat)
        touch[rows, lab_lo.ravel()[pix]] = True
        touch[:, 0] = False
        cols_used = masks.any(axis=1)  # (U, W)
        lo = touch[:, lab_lo] & cols_used[:, None, :]  # (U, H, W)
        hi = masks & text_hi[None]
        inter = (lo & hi).reshape(u, -1).sum(1)
        union = (lo | hi).reshape(u, -1).sum(1)
        return np.where(union > 0, inter / np.maximum(union, 1), 0.0).astype(np.float32)
