"""Small images where the answer is known: words rendered at 32x128 with per-character truth."""

from __future__ import annotations

import numpy as np
import pytest

from glyphsr.data.synth.fonts import available_fonts
from glyphsr.data.synth.render import label_map, render_layers


def render_word(text: str, size: int = 22, spacing: float = 0.0, dark_on_light: bool = True,
                family: str = "DejaVu Sans", x0: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """(image uint8 (32, 128, 3), truth label map uint8 (32, 128)) for ``text`` centred vertically."""
    fonts = available_fonts()  # DejaVu is a system font: fall back to a packaged one where it is absent
    if not any(f.family == family for f in fonts):
        family = "Lato"
    font = next(f for f in fonts if f.family == family and f.style in ("Book", "Regular"))
    layers = render_layers(text, font.path, size, tracking=spacing)  # (L, h, w)
    _, h, w = layers.shape
    canvas = np.zeros((len(text), 32, 128), np.float32)
    y0 = max(0, (32 - h) // 2)
    hh, ww = min(h, 32 - y0), min(w, 128 - x0)
    canvas[:, y0:y0 + hh, x0:x0 + ww] = layers[:, :hh, :ww]
    alpha = np.clip(canvas.sum(0), 0, 1)[..., None]
    bg, fg = (np.array([230, 225, 210.0]), np.array([25, 30, 60.0]))
    if not dark_on_light:
        bg, fg = fg, bg
    img = (bg * (1 - alpha) + fg * alpha).round().astype(np.uint8)
    return img, label_map(canvas)


@pytest.fixture(scope="session")
def extractor():
    from glyphsr.gem.extractor import GEMConfig, GlyphExtractor

    return GlyphExtractor(GEMConfig())
