"""Pictures of super-resolution results (``sr-infer --sheet``): per image, the LR input, bicubic x2 and SR x2 one
above the other, labelled, with a judge's reading under each when there is one. One image or many on a sheet.

Panels are enlarged by nearest neighbour so pixels stay visible: SR and bicubic by ``zoom`` (2, or 1 when that
would make the sheet wider than ``max_width``), the LR input by twice that, so all three line up.
Text uses DejaVu Sans (matplotlib's copy or the system's) and PIL's default font where neither is found.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROWS = (("lr", "LR input"), ("bicubic", "bicubic x2"), ("sr", "SR x2"))
MARGIN = 8
LABEL_WIDTH = 96
FONT_SIZE = 13
LINE = 18  # pixels per line of text


@dataclass
class SheetEntry:
    """One image: ``title`` (its name and sizes), ``lr`` uint8 (h, w, 3), ``bicubic`` and ``sr`` uint8
    (2h, 2w, 3), and ``readings`` {"lr" | "bicubic" | "sr": text} by a judge, or None."""

    title: str
    lr: np.ndarray
    bicubic: np.ndarray
    sr: np.ndarray
    readings: dict[str, str] | None = None


def _font_paths() -> list[Path]:
    paths = []
    spec = importlib.util.find_spec("matplotlib")
    if spec is not None and spec.origin:
        paths.append(Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf")
    paths += [Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"), Path("/usr/share/fonts/dejavu/DejaVuSans.ttf")]
    return paths


@lru_cache(maxsize=4)
def sheet_font(size: int = FONT_SIZE) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    for p in _font_paths():
        if p.is_file():
            return ImageFont.truetype(str(p), size)
    return ImageFont.load_default(size)


def _zoom(img: np.ndarray, k: int) -> np.ndarray:
    return img.repeat(k, axis=0).repeat(k, axis=1) if k > 1 else img


def render_sheet(entries: Sequence[SheetEntry], judge: str | None = None, max_width: int = 2400) -> Image.Image:
    """Draw ``entries`` one under the other; ``judge`` names the reader of the readings."""
    if not entries:
        raise ValueError("a sheet needs at least one entry")
    widest = max(e.sr.shape[1] for e in entries)
    zoom = 2 if LABEL_WIDTH + 2 * widest + 2 * MARGIN <= max_width else 1
    font = sheet_font()
    blocks = []
    for e in entries:
        panels = {"lr": _zoom(e.lr, 2 * zoom), "bicubic": _zoom(e.bicubic, zoom), "sr": _zoom(e.sr, zoom)}
        read_line = LINE if e.readings is not None else 0
        blocks.append((e, panels, LINE + sum(p.shape[0] + read_line + 4 for p in panels.values()) + MARGIN))
    width = LABEL_WIDTH + max(p.shape[1] for _, ps, _ in blocks for p in ps.values()) + 2 * MARGIN
    width = max(width, 420)
    sheet = Image.new("RGB", (width, MARGIN + sum(h for _, _, h in blocks)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    y = MARGIN
    for e, panels, _ in blocks:
        draw.text((MARGIN, y), e.title, fill=(0, 0, 0), font=font)
        y += LINE
        for key, label in ROWS:
            p = panels[key]
            draw.text((MARGIN, y + max(0, p.shape[0] - LINE) // 2), label, fill=(60, 60, 60), font=font)
            sheet.paste(Image.fromarray(p), (LABEL_WIDTH, y))
            y += p.shape[0] + 2
            if e.readings is not None:
                text = e.readings.get(key, "")
                draw.text((LABEL_WIDTH, y), f"{judge or 'judge'}: {text!r}" if text else
                          f"{judge or 'judge'}: (nothing read)", fill=(0, 90, 160), font=font)
                y += LINE
            y += 2
        draw.line([(MARGIN, y + MARGIN // 2 - 1), (width - MARGIN, y + MARGIN // 2 - 1)], fill=(200, 200, 200))
        y += MARGIN
    return sheet
