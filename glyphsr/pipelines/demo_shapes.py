"""Inputs of other shapes than TextZoom's for ``glyphsr-demo``'s ``sr-infer`` stage, made with the synthetic
generator's renderer and degradations (test fonts, so the network never saw them):

- ``long-line.png``: a whole line of text, about 20:1, which ``sr-infer --mode auto`` processes in tiles;
- ``tall-crop.png``: a two-line sign cropped taller than wide, which ``fit`` squeezes to 64x16 as TextZoom would;
- ``gray-word.jpg``: a grayscale (mode L) JPEG: an LR record of the medium test tier, as a camera in grayscale.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from glyphsr.data.synth.degrade import degrade_lr
from glyphsr.data.synth.fonts import available_fonts, split_fonts
from glyphsr.data.synth.render import render_layers
from glyphsr.data.textzoom import TextZoomLMDB

LONG_LINE = "Glyphs stay apart when the line is read in tiles"
SIGN = ("OPEN", "24 HRS")


def _ink(text: str, font_path: str, size: int) -> np.ndarray:
    """Text coverage float32 (h, w) in [0, 1] on a tight canvas."""
    return np.clip(render_layers(text, font_path, size).sum(axis=0), 0, 1)


def _scene(alpha: np.ndarray, bg: tuple[int, int, int], fg: tuple[int, int, int]) -> np.ndarray:
    """float32 (H, W, 3) in 0..255: ``fg`` text over a ``bg`` background with a gentle vertical gradient."""
    h = alpha.shape[0]
    base = np.array(bg, np.float32) + np.linspace(-12, 12, h, dtype=np.float32)[:, None, None]
    a = alpha[..., None]
    return base * (1 - a) + np.array(fg, np.float32) * a


def _pad(alpha: np.ndarray, top: int, bottom: int, left: int, right: int) -> np.ndarray:
    return np.pad(alpha, ((top, bottom), (left, right)))


def _lr(scene: np.ndarray, rng: np.random.Generator, severity: float) -> Image.Image:
    """The generator's LR degradations (blur, about 2x fewer pixels, noise, JPEG) of a scene."""
    data = degrade_lr(rng, scene, scene.shape[0] / 32.0, severity)
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return Image.fromarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))


def make_shapes(out: Path, data: Path, seed: int = 0) -> list[tuple[Path, str]]:
    """Write the three inputs into ``out``; returns (path, what it is) for each. ``data``: a textzoom-synth folder."""
    out.mkdir(parents=True, exist_ok=True)
    _, test_fonts = split_fonts(available_fonts(system=False), seed)  # the split of the demo's data
    font = sorted(test_fonts, key=lambda f: (f.style != "Regular", f.path))[0].path
    rng = np.random.default_rng([seed, 14])
    made = []

    line = _ink(LONG_LINE, font, 40)
    line = _pad(line, 8, 8, 12, 12)
    p = out / "long-line.png"
    _lr(_scene(line, (236, 228, 205), (25, 40, 90)), rng, 0.45).save(p)
    made.append((p, f"a line of text, '{LONG_LINE}'"))

    rows = [_ink(t, font, 36) for t in SIGN]
    w = max(r.shape[1] for r in rows) + 24
    stacked = np.concatenate([np.pad(r, ((4, 4), ((w - r.shape[1]) // 2, w - r.shape[1] - (w - r.shape[1]) // 2)))
                              for r in rows])
    extra = max(0, int(1.25 * w) - stacked.shape[0])  # taller than wide: a loose crop around a two-line sign
    stacked = _pad(stacked, extra // 2, extra - extra // 2, 0, 0)
    p = out / "tall-crop.png"
    _lr(_scene(stacked, (20, 90, 50), (245, 245, 235)), rng, 0.35).save(p)
    made.append((p, f"a two-line sign, '{SIGN[0]} / {SIGN[1]}', cropped taller than wide"))

    with TextZoomLMDB(data / "test" / "medium") as ds:
        rec = ds.read_raw(min(2, len(ds)))
    p = out / "gray-word.jpg"
    rec.lr.convert("L").save(p, quality=90)
    made.append((p, f"a grayscale JPEG (an LR record of the medium tier, label '{rec.label}')"))
    return made
