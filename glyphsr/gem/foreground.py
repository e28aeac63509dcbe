"""Foreground by K-means (k = 2) on intensities with SIGA's border rule, vectorized over a batch.

Besides the hard foreground, :func:`text_alpha` gives a soft text coverage from the same two clusters: with an
image made as ``bg * (1 - a) + fg * a`` the projection of a pixel's intensity between the local background and
text levels recovers ``a``, so thresholding it at 0.5 matches ground truth defined by half-pixel coverage.
"""

from __future__ import annotations

import cv2
import numpy as np

from glyphsr.data.textzoom import luma


def gray(images: np.ndarray) -> np.ndarray:
    """RGB uint8 (B, H, W, 3) -> float32 (B, H, W) luma in 0..255."""
    return luma(images)


def kmeans2(x: np.ndarray, iters: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Batched 1-D K-means with k = 2. x float (B, N) -> (labels bool (B, N), centers (B, 2)).

    Initialized at the 10th and 90th percentiles; label True = the brighter cluster."""
    c = np.quantile(x, [0.1, 0.9], axis=1).T.astype(np.float32)  # (B, 2)
    for _ in range(iters):
        lab = np.abs(x - c[:, 1:2]) < np.abs(x - c[:, 0:1])  # (B, N) True -> cluster 1
        n1 = lab.sum(axis=1)
        n0 = lab.shape[1] - n1
        s1 = np.where(lab, x, 0).sum(axis=1)
        s0 = x.sum(axis=1) - s1
        c = np.stack([np.where(n0 > 0, s0 / np.maximum(n0, 1), c[:, 0]),
                      np.where(n1 > 0, s1 / np.maximum(n1, 1), c[:, 1])], axis=1)
    return np.abs(x - c[:, 1:2]) < np.abs(x - c[:, 0:1]), c


def border_says_background(lab: np.ndarray) -> np.ndarray:
    """SIGA's rule: cluster 1 is background when it covers more than half of at least 3 of the 4 borders.
    lab bool (B, H, W) -> bool (B,). With 2 borders each way, the larger cluster is background."""
    sides = np.stack([lab[:, 0, :].mean(1), lab[:, -1, :].mean(1), lab[:, :, 0].mean(1), lab[:, :, -1].mean(1)], 1)
    votes = (sides > 0.5).sum(axis=1)  # borders where cluster 1 dominates
    tie = votes == 2
    return np.where(tie, lab.mean(axis=(1, 2)) > 0.5, votes >= 3)


def kmeans_foreground(images: np.ndarray, iters: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Text foreground of RGB uint8 images (B, H, W, 3).

    Returns (fg bool (B, H, W), levels float32 (B, 2) = [background, text] intensity)."""
    g = gray(images)
    b, h, w = g.shape
    lab, c = kmeans2(g.reshape(b, -1), iters)
    lab = lab.reshape(b, h, w)
    bg_is_1 = border_says_background(lab)
    fg = np.where(bg_is_1[:, None, None], ~lab, lab)
    levels = np.where(bg_is_1[:, None], c[:, ::-1], c).astype(np.float32)  # [bg, text]
    return fg, levels


def text_alpha(images: np.ndarray, fg: np.ndarray, levels: np.ndarray, window: int = 15) -> np.ndarray:
    """Soft text coverage float32 (B, H, W) in [0, 1].

    Levels are estimated locally in a ``window`` x ``window`` neighbourhood, which follows gradients and shading:
    - background: the mean of the background cluster's core pixels (eroded by one pixel: edge pixels are
      mixtures and would pull the level towards the text);
    - text: the extreme of the text cluster's pixels (the darkest for dark text, the brightest for light text).
      Thin strokes (two pixels, softened) have no pure text pixel in their core, and the mean of the cluster sits
      between the levels, which made the mask a pixel too bold; the extreme is the nearest thing to pure ink there
      (+0.02 line IoU on synthetic data, bench/bench_gem.py). Image noise biases it outward by a few levels.
    Where a cluster is absent nearby the global K-means level stands in."""
    g = gray(images)
    out = np.empty_like(g)
    k = (window, window)
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    square = np.ones(k, np.uint8)
    for i in range(g.shape[0]):  # per image: a few box and min/max filters (C code), not a per-pixel loop
        f8 = fg[i].astype(np.uint8)
        core_bg = cv2.erode(1 - f8, cross)
        bgm = (core_bg if core_bg.sum() >= 8 else 1 - f8).astype(np.float32)
        w_bg = cv2.boxFilter(bgm, -1, k, normalize=True, borderType=cv2.BORDER_REFLECT)
        s_bg = cv2.boxFilter(g[i] * bgm, -1, k, normalize=True, borderType=cv2.BORDER_REFLECT)
        lb = np.where(w_bg > 0.05, s_bg / np.maximum(w_bg, 1e-6), levels[i, 0])
        if levels[i, 1] < levels[i, 0]:  # dark text: local minimum over text pixels (others set to +inf)
            ext = cv2.erode(np.where(f8 > 0, g[i], np.inf).astype(np.float32), square,
                            borderType=cv2.BORDER_REFLECT)
        else:  # light text: local maximum
            ext = cv2.dilate(np.where(f8 > 0, g[i], -np.inf).astype(np.float32), square,
                             borderType=cv2.BORDER_REFLECT)
        lt = np.where(np.isfinite(ext), ext, levels[i, 1])
        d = lt - lb
        d = np.where(np.abs(d) < 8.0, np.copysign(8.0, levels[i, 1] - levels[i, 0]), d)
        out[i] = np.clip((g[i] - lb) / d, 0.0, 1.0)
    return out
