"""Rendering a word into per-character coverage maps, and placing it in a scene.

Each character is drawn on its own layer, so the image and the ground truth come from the same pixels: the
text coverage is the (clipped) sum of the layers, and a pixel belongs to the character whose layer covers it
most. Geometry (rotation, shear, perspective) is applied to all layers with one homography.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image, ImageDraw

from glyphsr.data.synth.fonts import load_font

_GLYPH_CACHE: dict[tuple[str, int, str], tuple[np.ndarray, int, int, float]] = {}
_GLYPH_CACHE_MAX = 50_000


def _glyph(font_path: str, size: int, ch: str) -> tuple[np.ndarray, int, int, float]:
    """Bitmap uint8 (h, w), its offset (left, top) from the pen position on the baseline, and the advance.

    Cached per process: rasterizing is the generator's largest cost and words share their letters."""
    k = (font_path, size, ch)
    hit = _GLYPH_CACHE.get(k)
    if hit is not None:
        return hit
    font = load_font(font_path, size)
    left, top, right, bottom = font.getbbox(ch, anchor="ls")
    w, h = right - left, bottom - top
    if w > 0 and h > 0:
        im = Image.new("L", (w, h))
        ImageDraw.Draw(im).text((-left, -top), ch, fill=255, font=font, anchor="ls")
        bmp = np.asarray(im)
    else:
        bmp = np.zeros((0, 0), np.uint8)
    if len(_GLYPH_CACHE) >= _GLYPH_CACHE_MAX:
        _GLYPH_CACHE.clear()
    out = _GLYPH_CACHE[k] = (bmp, left, top, font.getlength(ch))
    return out


def render_layers(text: str, font_path: str, size: int, tracking: float = 0.0) -> np.ndarray:
    """Per-character coverage float32 (L, H, W) in [0, 1] on a tight canvas (one line, baseline-aligned).

    Characters are placed by their advances (no kerning); ``tracking`` adds space between characters in
    pixels (negative tightens)."""
    font = load_font(font_path, size)
    ascent, descent = font.getmetrics()
    glyphs = [_glyph(font_path, size, ch) for ch in text]
    advances = np.array([g[3] for g in glyphs]) + tracking
    xs = np.concatenate([[0.0], np.cumsum(advances)[:-1]])
    width = int(np.ceil(xs[-1] + glyphs[-1][3])) + 2 * (size // 4) + 2
    height = ascent + descent + 2
    x0 = size // 4 + 1
    layers = np.zeros((len(text), height, width), np.uint8)
    for i, (bmp, left, top, _) in enumerate(glyphs):
        h, w = bmp.shape
        if h == 0:
            continue
        x, y = int(round(x0 + xs[i] + left)), ascent + 1 + top
        xa, ya = max(x, 0), max(y, 0)
        xb, yb = min(x + w, width), min(y + h, height)
        layers[i, ya:yb, xa:xb] = bmp[ya - y:yb - y, xa - x:xb - x]
    return layers.astype(np.float32) / 255.0


def random_homography(rng: np.random.Generator, w: int, h: int, strength: float = 1.0) -> np.ndarray:
    """A small random homography about the canvas center: rotation, italic-like shear, perspective."""
    angle = np.deg2rad(np.clip(rng.normal(0, 2.0 * strength), -6, 6))
    shear = rng.uniform(-0.22, 0.22) if rng.random() < 0.3 * strength else 0.0
    px = rng.normal(0, 0.0006 * strength)
    py = rng.normal(0, 0.002 * strength)
    c, s = np.cos(angle), np.sin(angle)
    center = np.array([[1, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1]])
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    sh = np.array([[1, shear, 0], [0, 1, 0], [0, 0, 1]])
    persp = np.array([[1, 0, 0], [0, 1, 0], [px, py, 1]])
    return np.linalg.inv(center) @ persp @ rot @ sh @ center


def warp_to_frame(layers: np.ndarray, hmat: np.ndarray, margins: tuple[float, float, float, float]
                  ) -> np.ndarray:
    """Warp (L, H, W) layers by ``hmat`` into a frame that holds the warped text plus margins
    (left, top, right, bottom, in pixels). Returns float32 (L, H', W')."""
    n, h, w = layers.shape
    cov = layers.max(axis=0)
    ys, xs = np.nonzero(cov > 0.02)
    if len(xs) == 0:
        ys, xs = np.array([0, h - 1]), np.array([0, w - 1])
    pts = np.array([[xs.min(), ys.min()], [xs.max() + 1, ys.min()], [xs.max() + 1, ys.max() + 1],
                    [xs.min(), ys.max() + 1]], np.float64)
    warped = cv2.perspectiveTransform(pts[None], hmat)[0]
    left, top, right, bottom = margins
    x_lo, y_lo = warped[:, 0].min() - left, warped[:, 1].min() - top
    x_hi, y_hi = warped[:, 0].max() + right, warped[:, 1].max() + bottom
    out_w, out_h = max(int(np.ceil(x_hi - x_lo)), 4), max(int(np.ceil(y_hi - y_lo)), 4)
    shift = np.array([[1, 0, -x_lo], [0, 1, -y_lo], [0, 0, 1]])
    m = shift @ hmat
    stack = layers.transpose(1, 2, 0)  # (H, W, L) for OpenCV
    out = cv2.warpPerspective(stack, m, (out_w, out_h), flags=cv2.INTER_LINEAR, borderValue=0)
    if out.ndim == 2:
        out = out[:, :, None]
    return np.ascontiguousarray(out.transpose(2, 0, 1))  # (L, H', W')


def label_map(layers: np.ndarray) -> np.ndarray:
    """uint8 (H, W): 0 where text covers less than half a pixel, else 1 + index of the dominant layer."""
    total = layers.sum(axis=0)
    return np.where(total >= 0.5, layers.argmax(axis=0) + 1, 0).astype(np.uint8)
