"""The pictures of ``glyphsr-demo``'s report. Every picture has a title, labelled columns and a label per row.

- :func:`grid`: the layout they share: a title, legend lines, column headers, then rows of image cells, each cell
  enlarged by nearest neighbour (pixels stay visible) with caption lines under it;
- :func:`synth_figure`: a test tier as written (HR, bicubic LR, glyph ground truth);
- :func:`gem_figure`: GEM's character masks over HR images with both key points and the anchors of every character;
- :func:`store_figure`: the mask store ``gem-extract`` wrote (what ``sr-train`` reads);
- :func:`sr_figure`: LR / bicubic / SR / HR per tier with the judge's reading and whether it is right.

``GLYPH_COLORS`` are the character colours of these pictures and of ``glyphsr-view``: vivid hues, neighbouring
characters far apart on the colour wheel, none pale or dark, so that a mask stands apart from the text and from a
light or dark background; pictures grey and darken the image under the masks for the same reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from glyphsr.sr.sheet import sheet_font

#: Colour of character k (1-based) is GLYPH_COLORS[(k - 1) % 15].
GLYPH_COLORS = ("#ff3355", "#00d26a", "#2f7dff", "#ffd400", "#c04dff", "#00e0e0", "#ff8a00", "#ff40c8", "#8fe000",
                "#5b4bff", "#ff5a36", "#00d1b2", "#e0c000", "#9b59ff", "#3fd0ff")
LINE_COLOR = "#ff00ff"  # the line mask, where it is drawn in colour

RIGHT = (0, 140, 60)
WRONG = (200, 20, 40)
INK = (20, 20, 20)
GREY = (90, 90, 90)
MARGIN = 10
LINE = 17  # pixels per line of text


def hex_rgb(color: str) -> tuple[int, int, int]:
    c = color.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def palette(n: int = 64) -> np.ndarray:
    """uint8 (n + 1, 3): black for label 0, then the character colours, repeated."""
    cols = [hex_rgb(GLYPH_COLORS[k % len(GLYPH_COLORS)]) for k in range(n)]
    return np.array([(0, 0, 0)] + cols, np.uint8)


def colour_labels(labels: np.ndarray) -> np.ndarray:
    """A label image (..., H, W), 0 background and k character k -> RGB uint8 (..., H, W, 3)."""
    pal = palette()
    return pal[np.minimum(labels, len(pal) - 1)]


def overlay(image: np.ndarray, labels: np.ndarray, alpha: float = 0.75) -> np.ndarray:
    """Labels in their colours over a greyed, darkened copy of ``image`` (H, W, 3) uint8."""
    gray = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    base = np.repeat((40 + 0.45 * gray)[..., None], 3, axis=2)
    colour = colour_labels(labels).astype(np.float32)
    out = np.where(labels[..., None] > 0, (1 - alpha) * base + alpha * colour, base)
    return out.clip(0, 255).astype(np.uint8)


def mask_rgb(mask: np.ndarray) -> np.ndarray:
    """A 0/1 mask (H, W) -> white on black RGB uint8."""
    return np.repeat((np.asarray(mask) > 0).astype(np.uint8)[..., None] * 255, 3, axis=2)


@dataclass
class Cell:
    """One image of a grid (uint8 (H, W, 3), enlarged by its column's zoom) with caption lines under it, each
    ``(text, rgb)``; ``draw`` (optional) paints on the enlarged image: ``draw(ImageDraw, zoom)``."""

    image: np.ndarray
    lines: Sequence[tuple[str, tuple[int, int, int]]] = ()
    draw: object | None = None


@dataclass
class Row:
    label: str
    cells: Sequence[Cell]
    sublabel: str = ""
    rule: bool = False  # a line above this row (a new group)
    extra: dict = field(default_factory=dict)


def _text_width(text: str) -> int:
    font = sheet_font()
    return int(np.ceil(font.getlength(text))) if hasattr(font, "getlength") else 7 * len(text)


def grid(title: str, columns: Sequence[str], rows: Sequence[Row], zoom: Sequence[int],
         legend: Sequence[str] = ()) -> Image.Image:
    """Lay out ``rows`` under ``columns`` (one zoom per column), with ``title`` and ``legend`` lines on top."""
    if not rows:
        raise ValueError("a grid needs at least one row")
    font = sheet_font()
    bold = sheet_font(15)
    ncol = len(columns)
    widths = [max(max(r.cells[c].image.shape[1] * zoom[c] for r in rows), _text_width(columns[c]) + 4)
              for c in range(ncol)]
    label_w = max(max(_text_width(r.label) for r in rows), max(_text_width(r.sublabel) for r in rows)) + 2 * MARGIN
    label_w = min(max(label_w, 80), 260)
    heights = []
    for r in rows:
        img_h = max(r.cells[c].image.shape[0] * zoom[c] for c in range(ncol))
        cap = max(len(r.cells[c].lines) for c in range(ncol)) * LINE
        heights.append(img_h + cap + MARGIN)
    top = MARGIN + 22 + LINE * len(legend) + 6 + LINE + 4
    width = label_w + sum(widths) + MARGIN * (ncol + 1)
    width = max(width, _text_width(title) + 2 * MARGIN, *(_text_width(x) + 2 * MARGIN for x in legend))
    sheet = Image.new("RGB", (width, top + sum(heights) + MARGIN), (255, 255, 255))
    d = ImageDraw.Draw(sheet)
    d.text((MARGIN, MARGIN), title, fill=INK, font=bold)
    for i, text in enumerate(legend):
        d.text((MARGIN, MARGIN + 22 + i * LINE), text, fill=GREY, font=font)
    xs = [label_w + MARGIN]
    for w in widths[:-1]:
        xs.append(xs[-1] + w + MARGIN)
    y = top - LINE - 4
    for c, name in enumerate(columns):
        d.text((xs[c], y), name, fill=INK, font=font)
    d.line([(MARGIN, top - 3), (width - MARGIN, top - 3)], fill=(160, 160, 160))
    y = top + 2
    for r, h in zip(rows, heights):
        if r.rule:
            d.line([(MARGIN, y - 5), (width - MARGIN, y - 5)], fill=(200, 200, 200))
        d.text((MARGIN, y), r.label, fill=INK, font=font)
        if r.sublabel:
            d.text((MARGIN, y + LINE), r.sublabel, fill=GREY, font=font)
        for c, cell in enumerate(r.cells):
            z = zoom[c]
            big = Image.fromarray(cell.image).resize((cell.image.shape[1] * z, cell.image.shape[0] * z),
                                                     Image.NEAREST)
            if cell.draw is not None:
                cell.draw(ImageDraw.Draw(big), z)
            sheet.paste(big, (xs[c], y))
            ty = y + big.height + 2
            for text, colour in cell.lines:
                d.text((xs[c], ty), text, fill=colour, font=font)
                ty += LINE
        y += h
    return sheet


# -- the figures -----------------------------------------------------------------------------------------------------
def synth_figure(title: str, samples: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]]) -> Image.Image:
    """samples: (label, HR (32, 128, 3), LR bicubic-upsampled to (32, 128, 3), truth label map (32, 128))."""
    rows = [Row(label, [Cell(hr), Cell(lr), Cell(overlay(hr, truth))]) for label, hr, lr, truth in samples]
    return grid(title, ["HR (32x128)", "LR (64x16), bicubic x2", "glyph ground truth (one colour per character)"],
                rows, zoom=[3, 3, 3])


def _draw_keypoints(keypoints: np.ndarray, anchors: np.ndarray, on_mask: np.ndarray, n: int):
    """A painter for :class:`Cell`: keypoints (L, 2, 2) as (x, y), anchors (L, 2, A, 2), on_mask (L, 2, A) bool."""

    def paint(d: ImageDraw.ImageDraw, z: int) -> None:
        for k in range(n):
            col = hex_rgb(GLYPH_COLORS[k % len(GLYPH_COLORS)])
            for p in range(2):
                for a, hit in zip(anchors[k, p], on_mask[k, p]):
                    if np.isnan(a).any():
                        continue
                    x, y = (a + 0.5) * z
                    d.ellipse([x - 2, y - 2, x + 2, y + 2], fill=col if hit else None, outline=(0, 0, 0) if hit
                              else col)
            ka, kb = keypoints[k]
            if not np.isnan(ka).any():
                x, y = (ka + 0.5) * z
                d.ellipse([x - 5, y - 5, x + 5, y + 5], outline=(255, 255, 255), width=2)
                d.ellipse([x - 6, y - 6, x + 6, y + 6], outline=(0, 0, 0), width=1)
            if not np.isnan(kb).any():
                x, y = (kb + 0.5) * z
                d.polygon([(x, y - 6), (x + 6, y), (x, y + 6), (x - 6, y)], outline=(0, 0, 0), fill=(255, 255, 255))
                d.polygon([(x, y - 3), (x + 3, y), (x, y + 3), (x - 3, y)], fill=col)

    return paint


def gem_figure(title: str, images: np.ndarray, labels: Sequence[str], truths: Sequence[np.ndarray], result,
               anchor_points: np.ndarray, ious: Sequence[tuple[float, float]], groups: Sequence[str] = ()
               ) -> Image.Image:
    """GEM on HR images (B, 32, 128, 3): HR | ground truth | characters with key points and anchors | line mask.

    ``result`` is :class:`glyphsr.gem.extractor.GEMResult`; ``anchor_points`` (B, L, 2, A, 2) its anchors
    (:func:`glyphsr.gem.keypoints.anchors`); ``ious`` (character IoU, line IoU) per image; ``groups`` a row
    sublabel per image (its tier)."""
    rows = []
    for i in range(len(images)):
        n = len(result.chars[i])
        lab = np.zeros(images.shape[1:3], np.uint8)
        for c in range(n - 1, -1, -1):
            lab[result.char[i, c] > 0] = c + 1
        h, w = lab.shape
        ax = np.clip(np.nan_to_num(anchor_points[i, :, :, :, 0], nan=-1).round().astype(int), -1, w - 1)
        ay = np.clip(np.nan_to_num(anchor_points[i, :, :, :, 1], nan=-1).round().astype(int), -1, h - 1)
        on = np.zeros(ax.shape, bool)
        for k in range(n):
            ok = (ax[k] >= 0) & (ay[k] >= 0)
            on[k][ok] = result.char[i, k][ay[k][ok], ax[k][ok]] > 0
        ci, li = ious[i]
        status = {1: "ok", 2: "failed", 3: "no glyph"}.get(int(result.status[i]), "?")
        rows.append(Row(f"'{labels[i]}'", [
            Cell(images[i]), Cell(overlay(images[i], truths[i])),
            Cell(overlay(images[i], lab), [(f"character IoU {ci:.2f}, {status}", INK)],
                 draw=_draw_keypoints(result.keypoints[i], anchor_points[i], on, n)),
            Cell(mask_rgb(result.line[i, 0]), [(f"line IoU {li:.2f}", INK)])],
            sublabel=groups[i] if i < len(groups) else "",
            rule=0 < i < len(groups) and groups[i] != groups[i - 1]))
    legend = ["white ring: position key point (the CTC peak at the text's vertical centre);  white diamond: glyph key "
              "point (centre of the box of the character's glyph attention)",
              "dots: the 4K+1 = 9 anchors around each key point (steps 2 and 4 px), the segmenter's prompts; filled "
              "where the anchor lies on the character's chosen mask, hollow where it does not",
              "IoU against the ground truth resampled by area to 32x128 (the measure of gem-eval)"]
    return grid(title, ["HR (32x128)", "glyph ground truth", "GEM characters, key points, anchors", "GEM line mask"],
                rows, zoom=[4, 4, 4, 4], legend=legend)


def store_figure(title: str, hr: np.ndarray, glyphs: np.ndarray, line: np.ndarray, labels: Sequence[str],
                 statuses: Sequence[str]) -> Image.Image:
    """The first samples of a mask store: hr (B, 32, 128, 3), glyphs (B, 32, 128) label image, line (B, 32, 128)."""
    rows = [Row(f"'{labels[i]}'", [Cell(hr[i]), Cell(overlay(hr[i], glyphs[i])), Cell(mask_rgb(line[i]))],
                sublabel=f"sample {i}, {statuses[i]}") for i in range(len(hr))]
    return grid(title, ["HR (store array 0)", "characters (labels/glyphs) over HR", "line mask (line)"], rows,
                zoom=[3, 3, 3])


@dataclass
class SRSample:
    """One test image: its tier, label, LR (16, 64, 3), bicubic and HR (32, 128, 3), and per model an SR image;
    readings {column: (text, right)} for the columns the judge read."""

    tier: str
    index: int
    label: str
    lr: np.ndarray
    bicubic: np.ndarray
    hr: np.ndarray
    sr: dict[str, np.ndarray]
    readings: dict[str, tuple[str, bool]]


def _reading(judge: str, r: tuple[str, bool] | None) -> list[tuple[str, tuple[int, int, int]]]:
    if r is None:
        return []
    text, right = r
    return [(f"{judge}: {text!r} " + ("\u2713 right" if right else "\u2717 wrong"), RIGHT if right else WRONG)]


def sr_figure(title: str, samples: Sequence[SRSample], models: Sequence[str], judge: str,
              legend: Sequence[str] = ()) -> Image.Image:
    """LR | bicubic | SR per model | HR, one row per sample, grouped by tier."""
    rows = []
    for i, s in enumerate(samples):
        cells = [Cell(s.lr, [(f"label: {s.label!r}", GREY)]),
                 Cell(s.bicubic, _reading(judge, s.readings.get("bicubic")))]
        cells += [Cell(s.sr[m], _reading(judge, s.readings.get(m))) for m in models]
        cells.append(Cell(s.hr, _reading(judge, s.readings.get("hr"))))
        rows.append(Row(s.tier, cells, sublabel=f"record {s.index}", rule=i > 0 and s.tier != samples[i - 1].tier))
    columns = ["LR input (64x16)", "bicubic x2 (128x32)"] + [f"SR: {m}" for m in models] + ["HR (128x32)"]
    return grid(title, columns, rows, zoom=[6, 3] + [3] * len(models) + [3], legend=legend)
