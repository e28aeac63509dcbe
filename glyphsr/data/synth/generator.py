"""Synthetic TextZoom: ``generate(out, n_train, n_test, seed)`` writes TextZoom-format LMDBs with glyph truth.

Layout written:

- ``OUT/train``: ``n_train`` pairs, a tier drawn per sample, rendered in the training fonts;
- ``OUT/test/easy``, ``OUT/test/medium``, ``OUT/test/hard``: ``n_test`` pairs each, in the test fonts
  (families disjoint from the training fonts whenever more than one family is installed);
- ``OUT/val/easy``, ``OUT/val/medium``, ``OUT/val/hard`` (when ``n_val`` > 0): ``n_val`` pairs each, drawn like the
  test tiers (test fonts, the tier's severities) from their own random streams: held out from both, so a trainer
  picks its checkpoint without looking at the pairs it is reported on;
- ``OUT/synth.json``: the seed, counts, font split and code version.

Every record has ``glyph_hr-%09d``: a PNG label map at the HR image's native size, 0 background and k for the
k-th character of the label (labels have no spaces, so the k-th label character is the k-th glyph).

Sample i of a split depends only on (seed, split, i): the output is the same for any number of processes.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from glyphsr._version import code_version
from glyphsr.data.synth.degrade import TIERS, degrade_lr, finish_hr
from glyphsr.data.synth.fonts import Font, available_fonts, split_fonts
from glyphsr.data.synth.render import label_map, random_homography, render_layers, warp_to_frame
from glyphsr.data.synth.words import sample_label, word_buckets
from glyphsr.data.textzoom import LUMA_601, TextZoomWriter

SPLITS = ("train", "easy", "medium", "hard", "val-easy", "val-medium", "val-hard")  # append only: codes seed streams
_SPLIT_CODE = {name: i for i, name in enumerate(SPLITS)}


@dataclass(frozen=True)
class SynthSample:
    label: str
    hr: np.ndarray  # uint8 (H, W, 3) native HR
    lr: bytes  # JPEG of the native LR image
    glyph: np.ndarray  # uint8 (H, W) label map
    tier: str
    font: str
    hr_format: str


def _lum(c: np.ndarray) -> float:
    r, g, b = LUMA_601
    return float(r * c[0] + g * c[1] + b * c[2])


def _colors(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Background and text colour with a luminance difference of at least 70 (of 255)."""
    bg = rng.uniform(0, 255, 3)
    for _ in range(50):
        fg = rng.uniform(0, 255, 3)
        if abs(_lum(fg) - _lum(bg)) >= 70:
            return bg, fg
    fg = np.full(3, 0.0 if _lum(bg) > 127 else 255.0)
    return bg, fg


def _background(rng: np.random.Generator, h: int, w: int, color: np.ndarray) -> np.ndarray:
    """Base colour + a linear gradient + low-frequency texture + sometimes the edge of a sign or a border."""
    img = np.empty((h, w, 3), np.float32)
    img[:] = color
    a = rng.uniform(0, 2 * np.pi)
    gx = (np.arange(w, dtype=np.float32) - w / 2) * np.float32(np.cos(a) / max(h, w))
    gy = (np.arange(h, dtype=np.float32) - h / 2) * np.float32(np.sin(a) / max(h, w))
    img += (np.float32(rng.uniform(0, 45)) * (gy[:, None] + gx[None, :]))[:, :, None]
    small = rng.normal(0, 1, (max(2, h // 6), max(2, w // 6), 3)).astype(np.float32)
    img += cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC) * rng.uniform(0, 10)
    if rng.random() < 0.25:  # a band of another colour along one edge
        band = rng.uniform(0, 255, 3).astype(np.float32)
        side, t = int(rng.integers(4)), int(rng.integers(1, max(2, min(h, w) // 8)))
        sl = [(slice(0, t), slice(None)), (slice(h - t, h), slice(None)),
              (slice(None), slice(0, t)), (slice(None), slice(w - t, w))][side]
        img[sl] = band
    return img


def make_sample(rng: np.random.Generator, fonts: Sequence[Font], tier: str | None = None,
                severity: float | None = None) -> SynthSample:
    """One synthetic pair. ``tier`` None draws one (the training split); ``severity`` overrides the tier's."""
    if tier is None:
        tier = list(TIERS)[int(rng.integers(len(TIERS)))]
    lo, hi = TIERS[tier]
    severity = rng.uniform(lo, hi) if severity is None else severity
    label = sample_label(rng)
    font = fonts[int(rng.integers(len(fonts)))]
    # even sizes only: half the (font, size) pairs, twice the glyph-cache hits, no visible loss of variety
    size = 2 * int(round(np.exp(rng.uniform(np.log(20), np.log(56))) / 2))
    tracking = rng.uniform(-0.03, 0.12) * size if rng.random() < 0.5 else 0.0
    layers = render_layers(label, font.path, size, tracking)  # (L, h, w)
    _, h0, w0 = layers.shape
    hmat = random_homography(rng, w0, h0)
    m = size * np.array([rng.uniform(0.05, 0.35), rng.uniform(0.02, 0.2), rng.uniform(0.05, 0.35),
                         rng.uniform(0.02, 0.2)])
    layers = warp_to_frame(layers, hmat, tuple(m))  # (L, H, W) native HR frame
    _, h, w = layers.shape
    glyph = label_map(layers)
    alpha = np.clip(layers.sum(axis=0), 0, 1)[:, :, None]  # (H, W, 1)
    bg_col, fg_col = _colors(rng)
    bg = _background(rng, h, w, bg_col)
    fg = fg_col.astype(np.float32) + (rng.uniform(-15, 15, 3) * np.linspace(-1, 1, h)[:, None, None]).astype(
        np.float32)
    scene = bg * (1 - alpha) + fg * alpha  # float32 (H, W, 3) in ~0..255
    unit = h / 32.0
    hr = finish_hr(rng, scene, unit)
    lr = degrade_lr(rng, scene, unit, severity)
    hr_format = "PNG" if rng.random() < 0.3 else "JPEG"  # TextZoom's own writer used JPEG
    return SynthSample(label, hr, lr, glyph, tier, Path(font.path).name, hr_format)


def sample_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, _SPLIT_CODE[split], index])


def _encode(s: SynthSample) -> tuple[str, bytes, bytes, bytes]:
    def enc(img: np.ndarray, ext: str, params: list[int]) -> bytes:
        ok, buf = cv2.imencode(ext, img[:, :, ::-1] if img.ndim == 3 else img, params)
        assert ok
        return buf.tobytes()

    # PNG stored uncompressed: zlib would cost more than everything else in the sample
    hr = enc(s.hr, ".png", [cv2.IMWRITE_PNG_COMPRESSION, 0]) if s.hr_format == "PNG" else enc(
        s.hr, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 95])
    glyph = enc(s.glyph, ".png", [cv2.IMWRITE_PNG_COMPRESSION, 1])
    return s.label, hr, s.lr, glyph


# -- parallel generation ---------------------------------------------------------------------------------
_WORKER_FONTS: dict[str, tuple[Font, ...]] = {}


def _init_worker(font_sets: dict[str, tuple[Font, ...]]) -> None:
    cv2.setNumThreads(1)
    _WORKER_FONTS.clear()
    _WORKER_FONTS.update(font_sets)


def _work(job: tuple[int, str, int, int]) -> list[tuple[str, bytes, bytes, bytes]]:
    seed, split, start, stop = job
    fonts = _WORKER_FONTS["train" if split == "train" else "test"]
    tier = None if split == "train" else split.removeprefix("val-")
    return [_encode(make_sample(sample_rng(seed, split, i), fonts, tier)) for i in range(start, stop)]


def generate(
    out: str | os.PathLike,
    n_train: int,
    n_test: int,
    seed: int = 0,
    *,
    workers: int | None = None,
    test_font_fraction: float = 0.3,
    overwrite: bool = False,
    chunk: int = 64,
    progress: Callable[[str, int, int], None] | None = None,
    system_fonts: bool = True,
    n_val: int = 0,
) -> dict:
    """Write the synthetic TextZoom to ``out``; returns the manifest (also written to ``out/synth.json``).

    ``progress(split, done, total)`` is called as chunks finish. ``system_fonts=False``: only the packaged fonts
    (the same font split on every machine). ``n_val`` > 0 adds the validation tiers (``OUT/val``); the other
    splits are the same with or without them."""
    if n_train < 0 or n_test < 0 or n_val < 0:
        raise ValueError(f"sample counts must be >= 0, got train={n_train} test={n_test} val={n_val}")
    out = Path(out)
    targets = {"train": out / "train", "easy": out / "test" / "easy", "medium": out / "test" / "medium",
               "hard": out / "test" / "hard"}
    counts = {"train": n_train, "easy": n_test, "medium": n_test, "hard": n_test}
    if n_val:
        for tier in TIERS:
            targets[f"val-{tier}"] = out / "val" / tier
            counts[f"val-{tier}"] = n_val
    # validation tiers this call would not rewrite: from earlier data, which synth.json will no longer describe
    stale = [out / "val" / t for t in TIERS if not n_val and (out / "val" / t).exists()]
    existing = [str(p) for p in [*targets.values(), *stale] if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{out} already holds {', '.join(existing)} (overwrite to replace them"
                              + (", and to remove validation tiers this call does not make" if stale else "") + ")")
    fonts = available_fonts(system_fonts)
    if not fonts:
        raise RuntimeError("no usable font found: install glyphsr's font packages (pip install glyphsr)")
    train_fonts, test_fonts = split_fonts(fonts, seed, test_font_fraction)
    word_buckets()  # load the word list once, before forking
    workers = workers or os.cpu_count() or 1
    if stale:  # overwrite: they go with the data they were made beside
        for q in stale:
            shutil.rmtree(q)
        if not any((out / "val").iterdir()):
            (out / "val").rmdir()
    t0 = time.perf_counter()
    font_sets = {"train": train_fonts, "test": test_fonts}
    # forkserver, not fork: a process that already ran torch or OpenCV has thread pools a forked child inherits
    # half-locked (pool workers hung after torch had run in the same pytest process)
    ctx = mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
    pool = ctx.Pool(workers, initializer=_init_worker, initargs=(font_sets,)) if workers > 1 else None
    if pool is None:
        _init_worker(font_sets)
    try:
        for split, path in targets.items():
            n = counts[split]
            jobs = [(seed, split, a, min(a + chunk, n)) for a in range(0, n, chunk)]
            results = pool.imap(_work, jobs) if pool is not None else map(_work, jobs)
            if progress is not None:
                progress(split, 0, n)
            with TextZoomWriter(path, overwrite=overwrite) as writer:
                for res in results:
                    for label, hr, lr, glyph in res:
                        writer.add(label, hr, lr, glyph)
                    if progress is not None:
                        progress(split, len(writer), n)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    seconds = time.perf_counter() - t0
    manifest = {
        "generator": "glyphsr.data.synth",
        "code_version": code_version(),
        "seed": seed,
        "system_fonts": system_fonts,
        "counts": counts,
        "tiers": {k: list(v) for k, v in TIERS.items()},
        "fonts": {
            "train": sorted({f.family for f in train_fonts}),
            "test": sorted({f.family for f in test_fonts}),
            "train_files": [Path(f.path).name for f in train_fonts],
            "test_files": [Path(f.path).name for f in test_fonts],
        },
        "workers": workers,
        "seconds": round(seconds, 3),
    }
    tmp = out / "synth.json.partial"
    tmp.write_text(json.dumps(manifest, indent=2))
    os.replace(tmp, out / "synth.json")
    return manifest
