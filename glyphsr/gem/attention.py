"""Attention providers: where each character of the label is, per image.

Every provider returns :class:`Attention` for a batch of RGB uint8 images (B, 32, 128, 3) and their character
lists (the label after the ``all`` filter, spaces removed; at most ``max_chars`` used):

- ``ctc`` (:class:`CTCAttention`, the default, offline): EasyOCR's pretrained english_g2 CRNN gives per-step
  class log-probabilities; a Viterbi forced alignment of the label gives each character's most confident step
  (its peak) and a 1D attention over the image columns.
- ``stt`` (:mod:`glyphsr.gem.stt`): the Scene Text Telescope transformer recognizer, teacher-forced with the
  label; its cross-attention gives a 2D position attention per character.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from glyphsr.data.labels import MAX_CHARS
from glyphsr.gem.ctc_align import viterbi_align
from glyphsr.recognizers.easyocr_crnn import CHARSET, load_easyocr_crnn, preprocess


@dataclass
class Attention:
    """Per-character attention of a batch. L = max_chars; entries past a label's length are empty."""

    column: np.ndarray  # float32 (B, L, W): 1D attention over columns, each valid row sums to 1
    peak_x: np.ndarray  # float32 (B, L): the most attended column (NaN where absent)
    valid: np.ndarray  # bool (B, L): the character has an attention
    position: np.ndarray | None = None  # float32 (B, L, H, W): 2D position attention (stt), None for ctc
    reasons: list[str | None] | None = None  # per image: why no attention could be computed


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto`` -> bfloat16 on CUDA and on CPUs with native bf16 (AVX512-BF16 / AMX), else float32."""
    if dtype == "float32":
        return torch.float32
    if dtype == "bfloat16":
        return torch.bfloat16
    if dtype != "auto":
        raise ValueError(f"dtype must be auto, float32 or bfloat16, got {dtype!r}")
    if device.type == "cuda":
        return torch.bfloat16
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return torch.float32
    return torch.bfloat16 if ("avx512_bf16" in flags or "amx_bf16" in flags) else torch.float32


def interpolation_matrix(x_from: np.ndarray, x_to: np.ndarray) -> np.ndarray:
    """(len(x_to), len(x_from)) matrix M with M @ f = np.interp(x_to, x_from, f) for any f (x_from ascending)."""
    m = np.zeros((len(x_to), len(x_from)), np.float32)
    j = np.clip(np.searchsorted(x_from, x_to) - 1, 0, len(x_from) - 2)
    frac = np.clip((x_to - x_from[j]) / (x_from[j + 1] - x_from[j]), 0.0, 1.0)
    rows = np.arange(len(x_to))
    m[rows, j] = 1.0 - frac
    m[rows, j + 1] += frac
    return m


class CTCAttention:
    """1D character attention from EasyOCR's CRNN by CTC forced alignment.

    Per character k: its steps on the best path that emits the label, the step where the character's
    probability peaks, and a column attention: the character's probability over the steps between its
    neighbours' peaks, normalized, mapped from the T steps onto the W image columns."""

    name = "ctc"

    def __init__(self, *, weights: str | None = None, device: str = "cpu", dtype: str = "auto",
                 batch_size: int = 64, max_chars: int = MAX_CHARS):
        self.device = torch.device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.model = load_easyocr_crnn(weights, self.device)
        if self.device.type == "cpu":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.batch_size = batch_size
        self.max_chars = max_chars
        self._index = {c: i + 1 for i, c in enumerate(CHARSET)}

    @torch.inference_mode()
    def log_probs(self, images: np.ndarray) -> np.ndarray:
        """(B, H, W, 3) uint8 -> float32 log-probabilities (B, T, 97)."""
        out = []
        for a in range(0, len(images), self.batch_size):
            x = preprocess(images[a:a + self.batch_size]).to(self.device)
            if self.device.type == "cpu":
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
                logits = self.model(x)
            out.append(torch.log_softmax(logits.float(), dim=-1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 63, len(CHARSET) + 1), np.float32)

    def __call__(self, images: np.ndarray, chars: list[str]) -> Attention:
        b, h, w = images.shape[:3]
        L = self.max_chars
        logp = self.log_probs(images)  # (B, T, C)
        t_steps = logp.shape[1]
        targets = [[self._index.get(c, -1) for c in s] for s in chars]  # -1: not in the charset (wildcard)
        path, feasible = viterbi_align(logp, targets)
        column = np.zeros((b, L, w), np.float32)
        peak_x = np.full((b, L), np.nan, np.float32)
        valid = np.zeros((b, L), bool)
        reasons: list[str | None] = [None] * b
        prob = np.exp(logp)
        p_char = 1.0 - prob[:, :, 0]  # P(any character) per step, for wildcards
        step_x = (np.arange(t_steps) + 0.5) * w / t_steps  # column of each step's center
        interp = interpolation_matrix(step_x, np.arange(w) + 0.5)  # (W, T)
        for i in range(b):  # per image, vectorized over characters and steps
            n = len(targets[i])
            if n == 0:
                reasons[i] = "empty label"
                continue
            if not feasible[i]:
                reasons[i] = f"label of {n} characters cannot be aligned to {t_steps} recognizer steps"
                continue
            tg = np.array(targets[i])
            pc = np.where(tg[None, :] >= 0, prob[i][:, np.clip(tg, 0, None)], p_char[i][:, None])  # (T, n)
            on = path[i][:, None] == (2 * np.arange(n) + 1)[None, :]  # (T, n): step emits char k
            score = np.where(on, pc, -1.0)
            peak_t = score.argmax(axis=0)  # (n,)
            px = step_x[peak_t]
            # window of char k: between the neighbours' peaks
            lo = np.concatenate([[-1], peak_t[:-1]])
            hi = np.concatenate([peak_t[1:], [t_steps]])
            tt = np.arange(t_steps)[:, None]
            win = (tt > lo[None]) & (tt < hi[None])  # (T, n)
            att = np.where(win, pc, 0.0) + on * 1e-3  # keep the aligned steps even if improbable
            k = min(n, L)
            att_cols = (interp @ att[:, :k]).T  # (k, W)
            att_cols /= np.maximum(att_cols.sum(axis=1, keepdims=True), 1e-12)
            column[i, :k] = att_cols
            peak_x[i, :k] = px[:k]
            valid[i, :k] = True
        return Attention(column=column, peak_x=peak_x, valid=valid, reasons=reasons)
