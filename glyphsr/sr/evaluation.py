"""Judging super-resolution the paper's way: recognition accuracy per set, PSNR and SSIM.

- Accuracy: exact match of the ``lower`` forms (lowercase alphanumerics) of the judge's reading and the label (the
  anchors' ``str_filt(..., 'lower')``); records whose label has no alphanumeric character count like any other.
- PSNR and SSIM per image on RGB in [0, 1], averaged over the set (independent of batch size and order). SSIM:
  Gaussian window 11, sigma 1.5, C1 = 0.01^2, C2 = 0.03^2, zero padding of 5 ("same" size), per channel, mean over
  channels and pixels: the window and constants of the TextZoom code's SSIM. ``legacy_psnr``/``legacy_ssim``
  compute the TextZoom code's form instead (one value per batch, averaged over batches).
- The rows of the paper's Table 1: bicubic, the model, HR. Bicubic and HR depend only on the data and the judge,
  so :class:`EvalSet` computes them once and keeps them (``reference_rows``).

A judge is anything with ``name`` and ``recognize(images)``: a list of RGB uint8 (H, W, 3) arrays -> strings.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from glyphsr.data.labels import str_filt
from glyphsr.recognizers.images import luma

#: TextZoom's test tiers and their sizes (the weights of the paper's average).
TEXTZOOM_TIERS = {"easy": 1619, "medium": 1411, "hard": 1343}


def rgbm(images: torch.Tensor) -> torch.Tensor:
    """RGB (B, 3, H, W), uint8 or float in [0, 1] -> float RGBM (B, 4, H, W) with TPGSR's mask channel:
    1 where the luma is at most the image's mean luma, else 0."""
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    g = luma(x)
    mask = (g <= g.mean(dim=(2, 3), keepdim=True)).to(x.dtype)
    return torch.cat([x, mask], 1)


def bicubic_up(lr: torch.Tensor, scale: int = 2) -> torch.Tensor:
    """LR (B, C, h, w), uint8 or float in [0, 1] -> float (B, C, h * scale, w * scale) in [0, 1]: the "bicubic" row.

    PIL's bicubic (Keys a = -0.5), the kernel that reads the data (``glyphsr.data.decode``) and that calibrated the
    synthetic tiers (``bench/calibrate_tiers.py``): ``antialias=True`` selects it in PyTorch. Its uint8 path (taken
    for uint8 input, on the CPU) follows PIL's fixed-point passes: identical on the synthetic tiers, at most one
    level off on random noise. Float input gets the same kernel without PIL's intermediate rounding and clipping.
    ``F.interpolate``'s default kernel (a = -0.75) read 2-3 points lower with RapidOCR on 300 synthetic images per
    tier; the anchors' ``BICUBIC`` uses that kernel with ``align_corners=True``."""
    if lr.dtype == torch.uint8:
        up = F.interpolate(lr.cpu(), scale_factor=scale, mode="bicubic", align_corners=False, antialias=True)
        return up.float() / 255
    return F.interpolate(lr.float(), scale_factor=scale, mode="bicubic", align_corners=False,
                         antialias=True).clamp(0, 1)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) float in [0, 1] -> uint8 (B, H, W, 3)."""
    return (images.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per image: (B, C, H, W) in [0, 1] -> (B,) dB; identical images give 100 dB (MSE floored at 1e-10)."""
    mse = (a.float() - b.float()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


def _gaussian_window(size: int = 11, sigma: float = 1.5, device=None) -> torch.Tensor:
    """The normalized 1-D Gaussian (size,); the 2-D window is its outer product."""
    x = torch.arange(size, dtype=torch.float32, device=device) - size // 2
    g = torch.exp(-x * x / (2 * sigma * sigma))
    return g / g.sum()


def ssim_map(a: torch.Tensor, b: torch.Tensor, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """The SSIM map (B, C, H, W) of images in [0, 1], per channel, zero padding ``size // 2``. The Gaussian window
    is separable: a vertical then a horizontal 1-D convolution (each zero-padded) is the 2-D zero-padded one, and
    the five local statistics go through one grouped convolution: half the time of five 2-D ones (4,373 images
    of 3 x 32 x 128: 3.8 against 7.7 s, 2 threads)."""
    c = a.shape[1]
    g = _gaussian_window(size, sigma, a.device)
    a, b = a.float(), b.float()
    x = torch.cat([a, b, a * a, b * b, a * b], dim=1)  # (B, 5C, H, W)
    x = F.conv2d(x, g.view(1, 1, size, 1).expand(5 * c, 1, size, 1), padding=(size // 2, 0), groups=5 * c)
    x = F.conv2d(x, g.view(1, 1, 1, size).expand(5 * c, 1, 1, size), padding=(0, size // 2), groups=5 * c)
    mu_a, mu_b, e_aa, e_bb, e_ab = x.split(c, dim=1)
    s_aa = e_aa - mu_a * mu_a
    s_bb = e_bb - mu_b * mu_b
    s_ab = e_ab - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    return ((2 * mu_a * mu_b + c1) * (2 * s_ab + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (s_aa + s_bb + c2))


def ssim(a: torch.Tensor, b: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    """Per image: (B, C, H, W) in [0, 1] -> (B,), ``chunk`` images at a time."""
    if len(a) == 0:
        return torch.zeros(0)
    return torch.cat([ssim_map(a[i:i + chunk], b[i:i + chunk]).flatten(1).mean(1) for i in range(0, len(a), chunk)])


def legacy_psnr(batches: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """The TextZoom code's PSNR: one MSE per batch (images x 255), the PSNR of each batch, averaged over batches."""
    vals = []
    for a, b in batches:
        mse = ((a.float() - b.float()) * 255).pow(2).mean()
        vals.append(20 * math.log10(255.0 / math.sqrt(mse.item())) if mse > 0 else 100.0)
    return float(np.mean(vals))


def legacy_ssim(batches: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """The TextZoom code's SSIM: the mean of one batch's SSIM map, averaged over batches."""
    return float(np.mean([ssim_map(a, b).mean().item() for a, b in batches]))


def is_correct(predictions: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    return np.array([str_filt(p, "lower") == str_filt(t, "lower") for p, t in zip(predictions, labels)], dtype=bool)


@dataclass
class EvalSet:
    """One set to judge: LR (N, 3, 16, 64) and HR (N, 3, 32, 128) uint8 tensors, labels, a name."""

    name: str
    lr: torch.Tensor
    hr: torch.Tensor
    labels: list[str]
    indices: list[int] | None = None  # 1-based LMDB index of each sample
    key: str | None = None  # identifies the data (LMDB fingerprint and size) for the on-disk reference cache
    reference: dict[str, dict] = field(default_factory=dict)  # judge -> {"bicubic": row, "hr": row}

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, n: int | None) -> EvalSet:
        if n is None or n >= len(self):
            return self
        return EvalSet(self.name, self.lr[:n], self.hr[:n], self.labels[:n],
                       indices=self.indices[:n] if self.indices else None,
                       key=f"{self.key}-first{n}" if self.key else None)


def load_sets(paths: Sequence[str], limit: int | None = None, workers: int | None = None
              ) -> tuple[list[EvalSet], dict[str, dict[int, str]]]:
    """Decode the LMDBs that ``paths`` stand for (a textzoom-synth folder or TextZoom's test/ expands to its
    tiers) -> the sets (bad records left out of every row alike) and the bad records per set {index: reason}
    (1-based LMDB indices)."""
    from glyphsr.data.decode import decode_lmdb, find_sets
    from glyphsr.data.textzoom import TextZoomLMDB

    sets, bad = [], {}
    for p in paths:
        for name, path in find_sets(p).items():
            if any(x.name == name for x in sets):
                name = f"{name}:{path}"
            d = decode_lmdb(path, limit=limit, workers=workers)
            keep = np.flatnonzero(d.good)
            with TextZoomLMDB(path) as ds:
                key = f"{ds.fingerprint()}-n{len(d)}"
            sets.append(EvalSet(name, torch.from_numpy(d.lr[keep]), torch.from_numpy(d.hr[keep]),
                                [d.labels[i] for i in keep], key=key, indices=(keep + 1).tolist()))
            bad[name] = {i + 1: r for i, r in d.bad.items()}
    return sets, bad


def judge_images(judge, images: torch.Tensor, labels: Sequence[str], batch: int = 256) -> tuple[np.ndarray, list[str]]:
    """Read (N, 3, H, W) float images in [0, 1] with the judge -> (correct (N,), readings). Images are quantized to
    uint8 first, as a saved PNG would be, whatever the judge takes."""
    readings: list[str] = []
    tensor_judge = hasattr(judge, "recognize_tensor")
    device = next(judge.model.parameters()).device if tensor_judge and hasattr(judge, "model") else None
    for s in range(0, len(labels), batch):
        chunk = to_uint8(images[s:s + batch])
        if tensor_judge:
            x = torch.from_numpy(chunk).permute(0, 3, 1, 2).float().div(255)
            readings += judge.recognize_tensor(x.to(device) if device is not None else x)
        else:
            readings += judge.recognize(list(chunk))
    return is_correct(readings, labels), readings


#: Bumped whenever the reference rows' computation changes, so that rows cached by another version are not read.
#: 2: bicubic with PIL's kernel (1: ``F.interpolate``'s default kernel).
REFERENCE_VERSION = 2


def judge_key(judge) -> str | None:
    """What identifies a judge's readings for the reference cache (``cache_key`` attribute, else None: no cache)."""
    return getattr(judge, "cache_key", None)


def cache_dir() -> Path:
    return Path(os.environ.get("GLYPHSR_CACHE", Path.home() / ".cache" / "glyphsr")) / "eval"


def _row(correct: np.ndarray, sr: torch.Tensor, hr: torch.Tensor, readings: list[str]) -> dict:
    return {"n": int(len(correct)), "accuracy": float(correct.mean()) if len(correct) else float("nan"),
            "psnr": float(psnr(sr, hr).mean()), "ssim": float(ssim(sr, hr).mean()),
            "correct": correct, "readings": readings}


def _load_rows(path: Path, s: EvalSet) -> dict[str, dict] | None:
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if d.get("labels_hash") != _labels_hash(s.labels):
        return None
    return {r: {**v, "correct": np.array(v["correct"], dtype=bool)} for r, v in d["rows"].items()}


def _labels_hash(labels: Sequence[str]) -> str:
    return hashlib.blake2b("\n".join(labels).encode(), digest_size=8).hexdigest()


def _save_rows(path: Path, s: EvalSet, rows: dict[str, dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    plain = {r: {**v, "correct": v["correct"].tolist()} for r, v in rows.items()}
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    tmp.write_text(json.dumps({"set": s.name, "labels_hash": _labels_hash(s.labels), "rows": plain}))
    tmp.replace(path)  # atomic: processes sharing the cache never read half a file


def reference_rows(s: EvalSet, judge, batch: int = 256, use_cache: bool = True) -> dict[str, dict]:
    """Bicubic and HR rows of a set for a judge, kept on the set and, when the set has a ``key`` (its LMDB's
    fingerprint and size) and the judge a ``cache_key``, on disk under $GLYPHSR_CACHE (default ~/.cache/glyphsr)."""
    jk = judge_key(judge)
    # two judges of one name (crnn with two weight files) must not share rows: keep them by cache key or identity
    mem = jk or f"{getattr(judge, 'name', type(judge).__name__)}@{id(judge):x}"
    if mem in s.reference:
        return s.reference[mem]
    path = cache_dir() / f"{s.key}-{jk}-v{REFERENCE_VERSION}.json" if (use_cache and s.key and jk) else None
    rows = _load_rows(path, s) if path is not None and path.is_file() else None
    if rows is None:
        hr = s.hr.float() / 255
        bic = bicubic_up(s.lr)
        rows = {}
        for row, img in (("bicubic", bic), ("hr", hr)):
            correct, readings = judge_images(judge, img, s.labels, batch)
            rows[row] = _row(correct, img, hr, readings)
        if path is not None:
            _save_rows(path, s, rows)
    s.reference[mem] = rows
    return rows


@torch.no_grad()
def super_resolve(sr_fn: Callable[[torch.Tensor], torch.Tensor], lr_uint8: torch.Tensor, device: torch.device,
                  batch: int = 256, autocast: bool = False, quantize: bool = True) -> torch.Tensor:
    """Run ``sr_fn`` (RGBM LR (B, 4, 16, 64) -> SR RGB(M) (B, C, 32, 128)) over uint8 LR images; returns RGB float
    (N, 3, 32, 128) in [0, 1] on the CPU, quantized to multiples of 1/255: the images a PNG holds, so the metrics
    of SR images saved and judged again (``sr-eval --save-sr``, then ``--sr-dir``) are the same numbers
    (``quantize=False``: the network's float32 output as it is, neither clamped nor quantized). On the CPU at most
    :data:`glyphsr.sr.runtime.CPU_BATCH` images go through at once (larger batches ran slower there)."""
    from glyphsr.sr.runtime import CPU_BATCH

    if device.type == "cpu":
        batch = min(batch, CPU_BATCH)
    out = []
    for s in range(0, len(lr_uint8), batch):
        x = rgbm(lr_uint8[s:s + batch].to(device, non_blocking=True))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            y = sr_fn(x)
        y = y[:, :3].float()
        out.append((y.clamp(0, 1).mul(255).round().div(255) if quantize else y).cpu())
    return torch.cat(out) if out else torch.zeros(0, 3, 32, 128)


def evaluate(sr_fn: Callable[[torch.Tensor], torch.Tensor] | None, sets: Sequence[EvalSet], judge,
             device: torch.device, batch: int = 256, autocast: bool = False,
             use_cache: bool = True) -> dict[str, dict[str, dict]]:
    """{set name: {"bicubic": row, "sr": row, "hr": row}}; a row: n, accuracy, psnr, ssim, and per image
    ``correct`` and ``readings``. ``sr_fn`` None judges the reference rows only."""
    results = {}
    for s in sets:
        rows = dict(reference_rows(s, judge, batch, use_cache))
        if sr_fn is not None:
            sr = super_resolve(sr_fn, s.lr, device, batch, autocast)
            hr = s.hr.float() / 255
            correct, readings = judge_images(judge, sr, s.labels, batch)
            rows["sr"] = _row(correct, sr, hr, readings)
        results[s.name] = rows
    return results


def weighted_average(results: dict[str, dict[str, dict]], row: str, key: str = "accuracy",
                     weights: dict[str, float] | None = None) -> float:
    """The average over sets of one row's ``key``, weighted by TextZoom's tier sizes when the sets are named
    easy/medium/hard (the paper's average), else by the sets' own sizes."""
    names = list(results)
    if weights is None:
        weights = ({n: TEXTZOOM_TIERS[n] for n in names} if set(names) <= set(TEXTZOOM_TIERS)
                   else {n: results[n][row]["n"] for n in names})
    total = sum(weights[n] for n in names)
    return float(sum(results[n][row][key] * weights[n] for n in names) / total) if total else float("nan")


def paired(correct: np.ndarray, reference: np.ndarray) -> dict:
    """A model's readings against a reference row's (bicubic) on the same images, judged by the same judge.

    ``fixed``: images the model's output reads right and the reference's wrong; ``broken``: the reverse. ``delta``:
    the accuracy difference (a fraction); ``ci95``: its 95% interval (clipped to [-1, 1]; None, like ``delta``,
    for no images), the normal approximation for paired proportions, which uses the per-image pairing (far
    narrower than two independent accuracies' intervals);
    ``p``: the exact two-sided McNemar test (a binomial test of ``fixed`` among the ``fixed + broken`` images that
    disagree, p = 1/2). A model that reads 45% where bicubic reads 43%, on 1,000 images, can be noise or not:
    these say which."""
    correct, reference = np.asarray(correct, dtype=bool), np.asarray(reference, dtype=bool)
    if correct.shape != reference.shape:
        raise ValueError(f"paired: {correct.shape} readings against {reference.shape} reference readings")
    n = len(correct)
    fixed = int(np.sum(correct & ~reference))
    broken = int(np.sum(~correct & reference))
    if n == 0:
        return {"n": 0, "fixed": 0, "broken": 0, "delta": None, "ci95": None, "p": 1.0}
    delta = (fixed - broken) / n
    half = 1.959964 * math.sqrt(max((fixed + broken) / n - delta * delta, 0.0) / n)
    return {"n": n, "fixed": fixed, "broken": broken, "delta": delta,
            "ci95": [max(delta - half, -1.0), min(delta + half, 1.0)], "p": mcnemar_p(fixed, broken)}


def mcnemar_p(fixed: int, broken: int) -> float:
    """The exact two-sided McNemar p of ``fixed`` against ``broken`` discordant images: twice the binomial tail
    P(X <= min(fixed, broken)), X ~ Bin(fixed + broken, 1/2), capped at 1; summed in log space (thousands of
    images)."""
    m, k = fixed + broken, min(fixed, broken)
    if m == 0 or 2 * k == m:
        return 1.0
    logs = [math.lgamma(m + 1) - math.lgamma(i + 1) - math.lgamma(m - i + 1) - m * math.log(2) for i in range(k + 1)]
    top = max(logs)
    return min(1.0, 2 * math.exp(top) * sum(math.exp(x - top) for x in logs))


def format_p(p: float) -> str:
    """A p-value as the tables print it: "< 0.001", else 3 decimals below 0.1, else 2."""
    return "< 0.001" if p < 0.001 else f"{p:.3f}" if p < 0.1 else f"{p:.2f}"


def versus(results: dict[str, dict[str, dict]], reference: str = "bicubic") -> dict[str, dict[str, dict]]:
    """{set: {row: :func:`paired` against ``reference``}} for every row but the reference and HR."""
    return {name: {r: paired(v[r]["correct"], v[reference]["correct"]) for r in v if r not in (reference, "hr")}
            for name, v in results.items() if reference in v}


def summary(results: dict[str, dict[str, dict]]) -> dict:
    """JSON-ready numbers: per set and row accuracy, PSNR, SSIM, n; the weighted average accuracy per row; and
    each model row against bicubic image by image (:func:`versus`), when the rows keep their per-image readings."""
    out: dict = {"sets": {}, "average": {}}
    rows = sorted({r for v in results.values() for r in v})
    for name, v in results.items():
        out["sets"][name] = {r: {k: v[r][k] for k in ("n", "accuracy", "psnr", "ssim")} for r in v}
    if all("correct" in row for v in results.values() for row in v.values()):
        out["versus_bicubic"] = versus(results)
    for r in rows:
        if all(r in v for v in results.values()):
            out["average"][r] = weighted_average(results, r)
    return out
