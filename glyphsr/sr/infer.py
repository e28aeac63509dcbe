"""Super-resolving anyone's text images, of any size, with a network made for 16x64 inputs (``sr-infer``'s core).

**Loading** (:func:`load_image`, :func:`to_rgb`): any file PIL opens, the first frame of an animation, turned by its
EXIF orientation. Modes become RGB uint8: ``1``/``L``/``P``/``CMYK``/``YCbCr``/... by PIL's conversion; 16-bit
grayscale (``I;16*``) scaled by 1/257; ``I`` (32-bit) and ``F`` (float) kept as they are when they fit 0..255
(``F`` in 0..1 is scaled by 255), else 16-bit range (``I`` in 0..65535) or stretched from their minimum to their
maximum; transparent images (``RGBA``, ``LA``, ``PA``, palette with transparency) are laid over white, or over
black when their visible content is light (light text on a transparent background stays readable). A JPEG much
larger than needed is decoded at a reduced scale (PIL's ``draft``, at least 4x the size the network gets), so a
huge photo never sits in memory at full size. An empty or unreadable file raises :class:`ImageError` with the
reason.

**Modes** (:func:`choose_mode`): TextZoom's LR is 64x16, an aspect ratio (width / height) of 4.

- ``fit``: TextZoom's protocol: bicubic resize to 64x16 whatever the aspect ratio; the output is 128x32.
- ``tiles``: bicubic resize to height 16 keeping the aspect ratio (a 2500x300 line becomes 133x16), overlapping
  64-wide windows (:func:`window_starts`: as few as give every neighbouring pair at least 16 columns of overlap,
  evenly spread), each super-resolved, blended linearly across the overlaps (:func:`blend_weights`), output at
  twice the resized size (266x32). An image narrower than 64 after resizing is padded by repeating its edge
  columns and the output cropped back. TPGSR's mask channel is computed over the whole line, not per window, so
  windows agree on what is text.
- ``auto`` (default): ``fit`` up to an aspect ratio of 8 (:data:`TILES_ASPECT`), ``tiles`` beyond. Why 8, twice
  TextZoom's 4: ``fit`` squeezes a wider image's glyphs horizontally by aspect / 4, and up to 8 that is at most
  2x, the range the training data spans (the synthetic training images: median 3.2, 95th percentile 6.3, 99th 8.9,
  TextZoom's crops are single words too); past it glyphs would be crushed beyond anything the network saw, while
  a window shows them at their own proportions. Narrow images (aspect < 4) stay with ``fit``: TextZoom stretches
  them the same way, and tiles would pad them.

**Batching** (:func:`super_resolve_images`): windows of many images go through the network together, at most
``batch`` at a time, so a huge image (thousands of windows) is processed in bounded memory and small images share
a forward pass; images come out in input order as soon as their last window is done.
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

from glyphsr.sr.evaluation import rgbm, to_uint8

MODES = ("auto", "fit", "tiles")
#: The network's LR input, (height, width): TextZoom's 64x16.
WINDOW = (16, 64)
SCALE = 2
#: ``auto`` tiles images wider than this many times their height (twice TextZoom's 4:1, see the module docstring).
TILES_ASPECT = 8.0
#: Least overlap, in LR columns, of neighbouring windows in ``tiles`` mode.
MIN_OVERLAP = 16
#: PIL's ``draft`` keeps JPEGs decoded at least this many times the size the network gets.
DRAFT_MARGIN = 4


class ImageError(ValueError):
    """An input that cannot be super-resolved; the message says why."""


# -- loading -------------------------------------------------------------------------------------------------------
def _to_8bit(a: np.ndarray, mode: str) -> np.ndarray:
    """A one-channel high-depth image (``I;16*``, ``I``, ``F``) as uint8 (see the module docstring)."""
    a = a.astype(np.float64)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if mode.startswith("I;16") or (mode == "I" and lo >= 0 and 255 < hi <= 65535):
        a = a / 257.0
    elif mode == "F" and lo >= 0 and hi <= 1:
        a = a * 255.0
    elif lo < 0 or hi > 255:
        a = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
    return np.clip(np.round(a), 0, 255).astype(np.uint8)


def _flatten_alpha(img: Image.Image) -> Image.Image:
    """Lay a transparent image over white, or over black when its visible content is light."""
    rgba = np.asarray(img.convert("RGBA"), dtype=np.float32)  # (H, W, 4)
    alpha = rgba[..., 3:] / 255.0
    rgb = rgba[..., :3]
    covered = float(alpha.sum())
    luma = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    light = covered > 0 and float((luma * alpha[..., 0]).sum()) / covered > 127.5
    bg = 0.0 if light else 255.0
    return Image.fromarray(np.clip(np.round(rgb * alpha + bg * (1 - alpha)), 0, 255).astype(np.uint8), "RGB")


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL image as an RGB image (8 bits per channel), as the module docstring describes."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode.startswith("I;16") or mode in ("I", "F"):
        return Image.fromarray(_to_8bit(np.asarray(img), mode), "L").convert("RGB")
    if mode in ("RGBA", "RGBa", "LA", "La", "PA") or (mode == "P" and img.has_transparency_data):
        return _flatten_alpha(img)
    return img.convert("RGB")


def _oriented_size(img: Image.Image) -> tuple[int, int]:
    """(width, height) after the EXIF orientation is applied (tags 5-8 swap the axes)."""
    w, h = img.size
    try:
        orientation = img.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block is no reason to refuse the pixels
        orientation = 1
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def choose_mode(size: tuple[int, int], mode: str = "auto") -> str:
    """``fit`` or ``tiles`` for an image of ``size`` (width, height) under ``mode`` (auto, fit, tiles)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode != "auto":
        return mode
    w, h = size
    return "tiles" if w > TILES_ASPECT * h else "fit"


def lr_size(size: tuple[int, int], mode: str) -> tuple[int, int]:
    """The (width, height) the network gets for an image of ``size`` in ``fit`` or ``tiles`` mode."""
    height, width = WINDOW
    if mode == "fit":
        return width, height
    w, h = size
    return max(1, round(w * height / h)), height


@dataclass(frozen=True)
class LRImage:
    """An input as the network gets it.

    ``pixels``: uint8 (3, 16, W'), the resized RGB, W' = max(width, 64) (edge columns repeated past ``width``);
    ``mask``: uint8 (16, W'), TPGSR's mask channel (0/1) over the whole line, or None for an image that is exactly
    one 64-wide window (every ``fit`` image): then :func:`~glyphsr.sr.evaluation.rgbm` computes it with the batch on
    the device, as training and evaluation do. ``width``: the resized width (64 in ``fit``); ``mode``: fit or
    tiles; ``source_size`` (width, height, after EXIF orientation) and ``source_mode`` describe the input."""

    pixels: np.ndarray
    mask: np.ndarray | None
    width: int
    mode: str
    source_size: tuple[int, int]
    source_mode: str

    @property
    def rgb(self) -> np.ndarray:
        """uint8 (16, width, 3): the LR image itself."""
        return np.ascontiguousarray(self.pixels[:, :, :self.width].transpose(1, 2, 0))

    @property
    def out_size(self) -> tuple[int, int]:
        """(width, height) of the super-resolved image."""
        return self.width * SCALE, WINDOW[0] * SCALE


def prepare(img: Image.Image, mode: str = "auto", source: tuple[tuple[int, int], str] | None = None) -> LRImage:
    """A PIL image (any mode; EXIF orientation not yet applied) -> :class:`LRImage`. ``source``: the original's
    (width, height) after orientation and its mode, when ``img`` was decoded at a reduced scale (JPEG draft); the
    mode and the LR size are decided from it."""
    img = ImageOps.exif_transpose(img)
    size, source_mode = source or (img.size, img.mode)
    rgb = to_rgb(img)
    chosen = choose_mode(size, mode)
    w, h = lr_size(size, chosen)
    pixels = np.array(rgb.resize((w, h), Image.BICUBIC)).transpose(2, 0, 1)  # (3, 16, w); no-op resize at 64x16
    mask = None
    if w != WINDOW[1]:
        mask = rgbm(torch.from_numpy(pixels)[None])[0, 3].to(torch.uint8).numpy()  # (16, w): over the whole line
        if w < WINDOW[1]:
            pixels = np.pad(pixels, ((0, 0), (0, 0), (0, WINDOW[1] - w)), mode="edge")
            mask = np.pad(mask, ((0, 0), (0, WINDOW[1] - w)), mode="edge")
    return LRImage(np.ascontiguousarray(pixels), mask, w, chosen, size, source_mode)


def load_image(path: str | os.PathLike, mode: str = "auto") -> LRImage:
    """Read an image file and prepare it for the network; raises :class:`ImageError` naming the reason."""
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        raise ImageError(f"cannot read ({exc.strerror or exc})") from None
    if size == 0:
        raise ImageError("empty file (0 bytes)")
    try:
        with Image.open(path) as img:
            source = (_oriented_size(img), img.mode)
            w, h = lr_size(source[0], choose_mode(source[0], mode))
            req = (DRAFT_MARGIN * w, DRAFT_MARGIN * h)
            img.draft(img.mode, req if source[0] == img.size else req[::-1])  # JPEG only; a no-op elsewhere
            img.load()
            return prepare(img, mode, source)
    except Image.UnidentifiedImageError:
        raise ImageError("not an image PIL can read") from None
    except Exception as exc:  # noqa: BLE001 - truncated data, broken chunks, decompression bombs: one error to a user
        raise ImageError(f"unreadable image data ({type(exc).__name__}: {exc})") from None


def iter_loaded(paths: Iterable[Any], mode: str = "auto", workers: int = 2, lookahead: int = 64
                ) -> Iterator[tuple[Any, LRImage | ImageError]]:
    """``(path, LRImage or ImageError)`` for each path, in order, decoded by ``workers`` threads (PIL releases the
    GIL while decoding and resizing) at most ``lookahead`` ahead of the consumer."""

    def one(p: Any) -> LRImage | ImageError:
        try:
            return load_image(p, mode)
        except ImageError as exc:
            return exc

    it = iter(paths)
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="sr-infer-load") as pool:
        queue: deque = deque()
        for p in it:
            queue.append((p, pool.submit(one, p)))
            if len(queue) >= lookahead:
                break
        while queue:
            p, fut = queue.popleft()
            nxt = next(it, None)
            if nxt is not None:
                queue.append((nxt, pool.submit(one, nxt)))
            yield p, fut.result()


# -- tiles ---------------------------------------------------------------------------------------------------------
def window_starts(width: int, window: int = WINDOW[1], min_overlap: int = MIN_OVERLAP) -> np.ndarray:
    """First columns (n,) of the fewest ``window``-wide windows covering ``width`` columns with at least
    ``min_overlap`` columns shared by neighbours, evenly spread from 0 to ``width - window``."""
    if width <= window:
        return np.zeros(1, np.int64)
    n = math.ceil((width - window) / (window - min_overlap)) + 1
    return np.round(np.linspace(0, width - window, n)).astype(np.int64)


def blend_weights(starts: np.ndarray, window: int = WINDOW[1], scale: int = SCALE) -> np.ndarray:
    """Per window, the weight (n, window * scale) of each of its output columns: 1 where no neighbour overlaps,
    a linear ramp across each overlap with a neighbour (the two ramps add up to 1 there). Edges of the image keep
    weight 1, and a single window is 1 everywhere."""
    n = len(starts)
    cols = np.arange(window * scale, dtype=np.float64) + 0.5
    w = np.ones((n, window * scale))
    for i in range(n):
        if i > 0:  # overlap with the previous window: its last columns, our first ones
            ov = (starts[i - 1] + window - starts[i]) * scale
            w[i] = np.minimum(w[i], np.clip(cols / ov, 0, 1))
        if i < n - 1:
            ov = (starts[i] + window - starts[i + 1]) * scale
            w[i] = np.minimum(w[i], np.clip((window * scale - cols) / ov, 0, 1))
    return w.astype(np.float32)


def merge_windows(windows: torch.Tensor, starts: np.ndarray, width: int, scale: int = SCALE) -> torch.Tensor:
    """Blend super-resolved windows (n, C, H, window * scale) whose LR windows start at ``starts`` into one image
    (C, H, width * scale); a single window is returned as it is (bitwise)."""
    n, c, h, ww = windows.shape
    if n == 1:
        return windows[0, :, :, :width * scale]
    canvas = _Canvas.new(starts, ww // scale, scale, c, h, windows.device)
    canvas.add(0, windows)
    return canvas.result(width * scale)


@dataclass
class _Canvas:
    """The weighted sum of an image's super-resolved windows, filled batch by batch."""

    cols: torch.Tensor  # (n, window * scale) output column of each window column
    weights: torch.Tensor  # (n, window * scale)
    total: torch.Tensor  # (W' * scale,) the sum of the weights per output column
    acc: torch.Tensor  # (C, H, W' * scale)

    @staticmethod
    def new(starts: np.ndarray, window: int, scale: int, channels: int, height: int, device) -> _Canvas:
        wo = (int(starts[-1]) + window) * scale
        cols = torch.from_numpy(starts * scale)[:, None] + torch.arange(window * scale)  # (n, window * scale)
        weights = torch.from_numpy(blend_weights(starts, window, scale))
        total = torch.zeros(wo).index_add_(0, cols.flatten(), weights.flatten())
        return _Canvas(cols.to(device), weights.to(device), total.to(device),
                       torch.zeros(channels, height, wo, device=device))

    def add(self, first: int, windows: torch.Tensor) -> None:
        """Add windows ``first``, ``first + 1``, ... (k, C, H, ww)."""
        k, c, h, ww = windows.shape
        weighted = windows.float() * self.weights[first:first + k, None, None, :]  # (k, C, H, ww)
        weighted = weighted.permute(1, 2, 0, 3).reshape(c, h, k * ww)  # columns of window 0, then 1, ...
        self.acc.index_add_(2, self.cols[first:first + k].flatten(), weighted)

    def result(self, width: int) -> torch.Tensor:
        return (self.acc / self.total)[:, :, :width]


# -- batched inference ---------------------------------------------------------------------------------------------
@dataclass
class _Job:
    key: Any
    image: LRImage
    starts: np.ndarray
    canvas: _Canvas | None = None  # None for an image of one window
    done: int = 0
    out: np.ndarray | None = None  # uint8 (H, W, 3) once finished


def super_resolve_images(sr_fn: Callable[[torch.Tensor], torch.Tensor], items: Iterable[tuple[Any, LRImage]], *,
                         device: str | torch.device = "cpu", batch: int = 64, autocast: bool = False
                         ) -> Iterator[tuple[Any, np.ndarray]]:
    """Super-resolve :class:`LRImage` s: ``items`` yields ``(key, image)``; yields ``(key, SR uint8 (32, 2W, 3))``
    in the same order. ``sr_fn`` maps RGBM (B, 4, 16, 64) in [0, 1] to SR (B, >= 3, 32, 128) (e.g.
    ``lambda x: model(x).sr``); it runs under ``torch.inference_mode`` and, with ``autocast``, bfloat16 autocast.
    At most ``batch`` windows go through it at once, from one image or many."""
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    device = torch.device(device)
    win_h, win_w = WINDOW
    pending: deque[_Job] = deque()  # images in input order, not yet yielded
    queue: deque[tuple[_Job, int]] = deque()  # windows not yet run

    @torch.inference_mode()
    def run(k: int) -> None:
        todo = [queue.popleft() for _ in range(k)]
        cols = [slice(int(job.starts[i]), int(job.starts[i]) + win_w) for job, i in todo]
        x8 = torch.from_numpy(np.stack([job.image.pixels[:, :, c] for (job, _), c in zip(todo, cols)]))
        x = rgbm(x8.to(device, non_blocking=True))  # (k, 4, 16, 64), the mask per window
        lines = [r for r, (job, _) in enumerate(todo) if job.image.mask is not None]
        if lines:  # windows of a line take the line's mask
            m = np.stack([todo[r][0].image.mask[:, cols[r]] for r in lines])  # (l, 16, 64) uint8
            x[lines, 3] = torch.from_numpy(m).to(device).float()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            y = sr_fn(x)
        y = y[:, :3].float().clamp(0, 1)  # (k, 3, 32, 128)
        singles = [i for i, (job, _) in enumerate(todo) if job.canvas is None]
        if singles:
            y8 = to_uint8(y[singles])  # (s, 32, 128, 3): one transfer for all one-window images
            for r, i in enumerate(singles):
                job = todo[i][0]
                job.out = y8[r][:, :job.image.width * SCALE]
                job.done = 1
        i = 0
        while i < k:  # consecutive windows of one tiled image: one weighted add
            job, first = todo[i]
            j = i + 1
            if job.canvas is not None:
                while j < k and todo[j][0] is job:
                    j += 1
                job.canvas.add(first, y[i:j])
                job.done += j - i
                if job.done == len(job.starts):
                    job.out = to_uint8(job.canvas.result(job.image.width * SCALE)[None])[0]
                    job.canvas = None
            i = j

    def finished() -> Iterator[tuple[Any, np.ndarray]]:
        while pending and pending[0].out is not None:
            job = pending.popleft()
            yield job.key, job.out

    for key, image in items:
        starts = window_starts(image.pixels.shape[2], win_w)
        job = _Job(key, image, starts)
        if len(starts) > 1:
            job.canvas = _Canvas.new(starts, win_w, SCALE, 3, win_h * SCALE, device)
        pending.append(job)
        queue.extend((job, i) for i in range(len(starts)))
        while len(queue) >= batch:
            run(batch)
            yield from finished()
    while queue:
        run(min(batch, len(queue)))
        yield from finished()
