"""PARSeq as a judge (``--recognizer parseq:parseq-bb5792a6.pt``): the module GlyphSR's TPG uses
(:mod:`glyphsr.recognizers.parseq`, the official checkpoints' parameter names), reading RGB resized bicubically to
32x128 and scaled to [-1, 1] as PARSeq's own test transform does; autoregressive decoding with refinement, the
prediction cut at the first end token. Its file cannot be downloaded here."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from glyphsr.data.labels import CHARSET_ALL
from glyphsr.recognizers.judges.common import check_images, resize
from glyphsr.recognizers.parseq import EOS, PARSeq, load_parseq


def decode(logits: torch.Tensor) -> list[str]:
    """(B, T, 95) logits -> strings: greedy per step, up to the first end token (class 0)."""
    out = []
    for row in logits.argmax(-1).tolist():
        chars = []
        for c in row:
            if c == EOS:
                break
            chars.append(CHARSET_ALL[c - 1])
        out.append("".join(chars))
    return out


class PARSeqJudge:
    name = "parseq"
    title = "PARSeq"
    weights_file = "parseq-bb5792a6.pt"

    def __init__(self, model: PARSeq):
        self.model = model

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> PARSeqJudge:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"PARSeq ({cls.weights_file}) checkpoint not found: {p} (give the file with "
                                    "--recognizer parseq:PATH; it cannot be downloaded here)")
        return cls(load_parseq(p, str(device)))

    @torch.no_grad()
    def recognize_tensor(self, images: torch.Tensor) -> list[str]:
        check_images(images)
        x = resize(images, (32, 128)).clamp(0, 1) * 2 - 1
        return decode(self.model(x))
