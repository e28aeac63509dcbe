"""Training data held in memory as uint8 tensors (on the GPU when there is one), with every target derived from
labels and pseudo-labels computed once, not per step.

Per sample: LR (3, 16, 64) and HR (3, 32, 128) RGB; the line and character pseudo-labels area-averaged to 16x64
and stored as quarters (0..4, uint8: 2x2 blocks of a 0/1 mask); class targets (L,); the CRNN text focus's CTC
targets; whether the glyph loss may use the sample (``glyph_ok``). The mask channel of TPGSR (RGBM) is computed on
the device per batch. A TextZoom-size set (17,367 pairs) takes about 0.6 GB.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from glyphsr.data.labels import MAX_CHARS
from glyphsr.sr.evaluation import rgbm
from glyphsr.sr.losses import class_targets, encode_ctc


def quarters(masks: np.ndarray) -> np.ndarray:
    """(N, K, 32, 128) 0/1 uint8 -> (N, K, 16, 64) uint8 counts 0..4 of each 2x2 block (area average x 4)."""
    n, k, h, w = masks.shape
    return masks.reshape(n, k, h // 2, 2, w // 2, 2).sum(axis=(3, 5), dtype=np.uint8)


@dataclass
class TrainTensors:
    lr: torch.Tensor  # uint8 (N, 3, 16, 64)
    hr: torch.Tensor  # uint8 (N, 3, 32, 128)
    line: torch.Tensor  # uint8 (N, 1, 16, 64), quarters
    char: torch.Tensor  # uint8 (N, L, 16, 64), quarters
    cls: torch.Tensor  # int64 (N, L)
    ctc: torch.Tensor  # int64 (N, S)
    ctc_len: torch.Tensor  # int64 (N,)
    glyph_ok: torch.Tensor  # bool (N,)
    tf_target: torch.Tensor | None = None  # float16 (N, T, D): the frozen recognizer's view of HR

    def __len__(self) -> int:
        return int(self.lr.shape[0])

    def to(self, device: torch.device) -> TrainTensors:
        return TrainTensors(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name).to(device)
                               for f in fields(self)})

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for f in fields(self) if (t := getattr(self, f.name)) is not None)

    def batch(self, idx: torch.Tensor) -> dict:
        """The model's and the loss's inputs for samples ``idx`` (a tensor on the data's device)."""
        out = {"lr": rgbm(self.lr[idx]), "hr": rgbm(self.hr[idx]),
               "line": self.line[idx].float() / 4, "char": self.char[idx].float() / 4,
               "cls": self.cls[idx], "ctc": (self.ctc[idx], self.ctc_len[idx]), "glyph_ok": self.glyph_ok[idx]}
        if self.tf_target is not None:
            out["tf_target"] = self.tf_target[idx]
        return out


def build_tensors(lr: np.ndarray, hr: np.ndarray, labels: list[str], line: np.ndarray, char: np.ndarray,
                  glyph_ok: np.ndarray, max_chars: int = MAX_CHARS) -> TrainTensors:
    """From uint8 LR/HR arrays, labels, and the store's 32x128 masks (or their 16x64 quarters)."""
    if line.shape[-1] == 128:
        line = quarters(line)
    if char.shape[-1] == 128:
        char = quarters(char)
    ctc, ctc_len = encode_ctc(labels)
    return TrainTensors(lr=torch.from_numpy(np.ascontiguousarray(lr)), hr=torch.from_numpy(np.ascontiguousarray(hr)),
                        line=torch.from_numpy(np.ascontiguousarray(line)),
                        char=torch.from_numpy(np.ascontiguousarray(char)),
                        cls=class_targets(labels, max_chars), ctc=ctc, ctc_len=ctc_len,
                        glyph_ok=torch.from_numpy(np.asarray(glyph_ok, dtype=bool)))


@torch.no_grad()
def add_text_focus_targets(data: TrainTensors, text_focus, batch: int = 512) -> None:
    """Compute the frozen recognizer's per-step probabilities of every HR image once (float16)."""
    if text_focus is None or not hasattr(text_focus, "hr_target"):
        return
    parts = []
    for s in range(0, len(data), batch):
        parts.append(text_focus.hr_target(rgbm(data.hr[s:s + batch])).to(torch.float16))
    data.tf_target = torch.cat(parts)
