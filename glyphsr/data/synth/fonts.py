"""Fonts for the synthetic generator: TTF/OTF files shipped by Python packages, plus system fonts.

Fonts are grouped by family (PIL's ``getname()[0]``), and the train/test split is by family, so the test set
can be drawn in type designs the training (and any tuning done on it) never saw.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ImageFont

from glyphsr.data.labels import CHARSET_ALL

#: PyPI packages that ship fonts (installed with glyphsr). Display faces that draw lowercase as capitals or
#: handwriting that a reader would not call "scene text" are left out.
FONT_PACKAGES = (
    "font_caladea",
    "font_fjallaone",
    "font_fredoka_one",
    "font_hanken_grotesk",
    "font_lato",
    "font_manrope",
    "font_rhd",
    "font_source_sans_pro",
    "font_source_serif_pro",
)

SYSTEM_FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts")
# Hairline weights leave strokes under half a pixel at TextZoom sizes: no usable glyph truth.
_SKIP_WORDS = ("variablefont", "math", "symbol", "emoji", "icon", "awesome", "thin", "extralight", "hairline")


@dataclass(frozen=True)
class Font:
    path: str
    family: str
    style: str
    source: str  # package name or "system"


def _package_font_files(pkg: str) -> list[Path]:
    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.submodule_search_locations:
        return []
    root = Path(next(iter(spec.submodule_search_locations)))
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in (".ttf", ".otf"))


def _system_font_files() -> list[Path]:
    out: list[Path] = []
    for d in SYSTEM_FONT_DIRS:
        if Path(d).is_dir():
            out += sorted(p for p in Path(d).rglob("*") if p.suffix.lower() in (".ttf", ".otf"))
    return out


def covers_charset(path: str, charset: str = CHARSET_ALL) -> bool:
    """True when every character of ``charset`` has a real glyph (not the .notdef box) in the font."""
    try:
        f = ImageFont.truetype(path, 24)
    except OSError:
        return False
    notdef = np.asarray(f.getmask("\ue000")).tobytes()
    for ch in charset:
        m = f.getmask(ch)
        if m.size[0] == 0 or m.size[1] == 0 or np.asarray(m).max() == 0:
            return False
        if np.asarray(m).tobytes() == notdef:
            return False
    return True


def available_fonts(system: bool = True) -> tuple[Font, ...]:
    """Every usable font found, deduplicated (TTF preferred over OTF of the same name), sorted by path.

    ``system=False`` leaves out the fonts installed on the machine (``SYSTEM_FONT_DIRS``): only those of the font
    packages remain, so a seed gives the same font split wherever glyphsr is installed (a GPU machine without
    DejaVu drew its test tiers from other families than a machine with it). Cached per value of ``system``
    (``available_fonts.cache_clear()`` forgets both)."""
    return _available_fonts(bool(system))


@functools.lru_cache(maxsize=2)
def _available_fonts(system: bool) -> tuple[Font, ...]:
    found: dict[str, tuple[Path, str]] = {}
    for pkg in FONT_PACKAGES:
        for p in _package_font_files(pkg):
            if p.suffix.lower() == ".ttf" or p.stem not in found:
                found[p.stem] = (p, pkg)
    for p in (_system_font_files() if system else ()):
        found.setdefault(p.stem, (p, "system"))
    fonts = []
    for stem, (p, src) in sorted(found.items()):
        if any(w in stem.lower() for w in _SKIP_WORDS) or not covers_charset(str(p)):
            continue
        family, style = ImageFont.truetype(str(p), 24).getname()
        fonts.append(Font(str(p), family or stem, style or "", src))
    return tuple(sorted(fonts, key=_order))


available_fonts.cache_clear = _available_fonts.cache_clear  # type: ignore[attr-defined]


def _order(f: Font) -> tuple[int, str]:
    """Where a font sits, independent of where Python is installed (same seed, same bytes on any machine): system
    fonts by path, then packaged fonts by their path inside site-packages. This is the order the full paths gave in
    a virtual environment under /work, where the recorded figures were measured; sorting by the full path made the
    data depend on the installation's location (a clone under /tmp put the packaged fonts first)."""
    if f.source == "system":
        return 0, f.path
    parts = Path(f.path).parts
    cut = max((i for i, part in enumerate(parts) if part in ("site-packages", "dist-packages")), default=-1)
    return 1, "/".join(parts[cut + 1:])


def split_fonts(fonts: tuple[Font, ...], seed: int, test_fraction: float = 0.3
                ) -> tuple[tuple[Font, ...], tuple[Font, ...]]:
    """Split fonts by family into (train, test), disjoint families; deterministic for ``seed``.

    With a single family there is nothing to hold out, and both sides get all fonts."""
    families = sorted({f.family for f in fonts})
    if len(families) < 2:
        return fonts, fonts
    random.Random(seed).shuffle(families)
    n_test = min(len(families) - 1, max(1, math.ceil(test_fraction * len(families))))
    test_fam = set(families[:n_test])
    train = tuple(f for f in fonts if f.family not in test_fam)
    test = tuple(f for f in fonts if f.family in test_fam)
    return train, test


@functools.lru_cache(maxsize=8192)
def load_font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)
