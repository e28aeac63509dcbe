"""Degradations that turn a clean scene into TextZoom-like HR and LR images.

TextZoom's pairs are the same scene shot at two focal lengths: the LR image is the wide shot, about half the
resolution, with the camera's defocus and shake, sensor noise, JPEG and a loss of contrast, slightly
misaligned with the HR shot. The HR image is itself a real photo: mildly soft and noisy.

Blur and motion are measured in "canonical pixels" (a 32-row HR image), so a tier means the same difficulty
whatever the native size. ``severity`` in [0, 1] drives every LR degradation; a tier is a severity range.
"""

from __future__ import annotations

import cv2
import numpy as np

#: Severity range of each test tier; the training split draws a tier per sample. Calibrated against RapidOCR
#: on bicubic LR (bench/calibrate_tiers.py) to land near TextZoom's bicubic accuracies with ASTER (64.7 / 42.4 /
#: 31.2 %). The ranges overlap, as TextZoom's tiers do: a tier is a distribution of difficulties.
TIERS: dict[str, tuple[float, float]] = {
    "easy": (0.28, 0.68),
    "medium": (0.48, 0.84),
    "hard": (0.53, 1.0),
}


def _disk_kernel(radius: float) -> np.ndarray:
    r = max(radius, 0.5)
    n = int(np.ceil(r)) * 2 + 1
    yy, xx = np.mgrid[:n, :n] - n // 2
    k = np.clip(r + 0.5 - np.sqrt(xx**2 + yy**2), 0, 1).astype(np.float32)
    return k / k.sum()


def _motion_kernel(length: float, angle: float) -> np.ndarray:
    n = int(np.ceil(length)) | 1
    k = np.zeros((n, n), np.float32)
    c = n // 2
    dx, dy = np.cos(angle), np.sin(angle)
    for t in np.linspace(-length / 2, length / 2, max(2 * n, 3)):
        k[int(round(c + t * dy)) % n, int(round(c + t * dx)) % n] += 1
    return k / k.sum()


def encode_jpeg(img: np.ndarray, quality: int) -> bytes:
    """RGB uint8 -> JPEG bytes."""
    ok, buf = cv2.imencode(".jpg", img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def finish_hr(rng: np.random.Generator, scene: np.ndarray, unit: float) -> np.ndarray:
    """The HR shot: slight softness and noise. scene float32 (H, W, 3) in 0..255 -> uint8."""
    img = scene
    sigma = rng.uniform(0.0, 0.45) * unit
    if sigma > 0.15:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    img = img + rng.uniform(0.0, 2.5) * rng.standard_normal(img.shape, dtype=np.float32)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def degrade_lr(rng: np.random.Generator, scene: np.ndarray, unit: float, severity: float) -> bytes:
    """The LR shot of ``scene`` (float32 (H, W, 3), 0..255) at ``severity`` in [0, 1], as JPEG bytes
    (the JPEG compression is the last degradation, and what the LMDB stores)."""
    h, w = scene.shape[:2]
    s = float(np.clip(severity, 0.0, 1.0))
    # viewpoint: the wide shot is not pixel-aligned with the tele shot
    scale = rng.uniform(0.97, 1.03)
    tx, ty = rng.normal(0, 0.012 * w), rng.normal(0, 0.03 * h)
    m = np.array([[scale, 0, (1 - scale) * w / 2 + tx], [0, scale, (1 - scale) * h / 2 + ty]], np.float32)
    img = cv2.warpAffine(scene, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    # optics: defocus (disk) or a gaussian point spread, in canonical pixels
    blur = (0.5 + 2.6 * s) * rng.uniform(0.8, 1.2) * unit
    if rng.random() < 0.4:
        img = cv2.filter2D(img, -1, _disk_kernel(1.3 * blur), borderType=cv2.BORDER_REFLECT)
    else:
        img = cv2.GaussianBlur(img, (0, 0), blur)
    # camera shake
    if rng.random() < 0.15 + 0.35 * s:
        length = (1.0 + 4.0 * s * rng.random()) * unit
        img = cv2.filter2D(img, -1, _motion_kernel(length, rng.uniform(0, np.pi)), borderType=cv2.BORDER_REFLECT)
    # the wide shot has about half the pixels
    f = rng.uniform(1.8, 2.3) * (1.0 + 0.25 * s * rng.random())
    lw, lh = max(int(round(w / f)), 4), max(int(round(h / f)), 4)
    img = cv2.resize(img, (lw, lh), interpolation=cv2.INTER_AREA)
    # contrast loss (haze, exposure) towards the image mean
    c = 1.0 - s * rng.uniform(0.15, 0.55)
    mean = img.reshape(-1, 3).mean(axis=0)
    img = mean + c * (img - mean) + rng.uniform(-12, 12) * s
    img = img + (rng.uniform(1.0, 2.5) + 6.0 * s) * rng.standard_normal(img.shape, dtype=np.float32)
    img = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    q = int(rng.uniform(92 - 55 * s, 98 - 40 * s))
    return encode_jpeg(img, q)
