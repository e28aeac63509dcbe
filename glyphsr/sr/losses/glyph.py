"""The glyph loss L_glyph = MSE(M_line) + MSE(M_char) + CE(P, Y) (paper, equations 1-4), and its targets.

Targets at the LR size: the mask store's 32x128 pseudo-labels averaged over 2x2 blocks (area averaging, so a
2-px stroke stays a soft 1-px stroke instead of vanishing or doubling); class targets (B, L): 0 = no character,
k = 1 + the character's index in the ``all`` charset, for the label's first L characters after the ``all`` filter.
Terms whose prediction is None (a switched-off GPM head) are left out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from glyphsr.data.labels import CHARSET_ALL, MAX_CHARS, str_filt

_INDEX = {c: i + 1 for i, c in enumerate(CHARSET_ALL)}


def glyph_targets(masks: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """(B, K, 32, 128) 0/1 masks -> (B, K, 16, 64) coverage in [0, 1]."""
    return F.avg_pool2d(masks.float(), factor)


def class_targets(labels: list[str], max_chars: int = MAX_CHARS) -> torch.Tensor:
    out = torch.zeros(len(labels), max_chars, dtype=torch.long)
    for i, label in enumerate(labels):
        chars = str_filt(label, "all").replace(" ", "")[:max_chars]
        if chars:
            out[i, :len(chars)] = torch.tensor([_INDEX[c] for c in chars])
    return out


class GlyphLoss(nn.Module):
    def __init__(self, w_line: float = 1.0, w_char: float = 1.0, w_cls: float = 1.0):
        super().__init__()
        self.w = {"line": w_line, "char": w_char, "cls": w_cls}

    def forward(self, line: torch.Tensor | None, char: torch.Tensor | None, cls: torch.Tensor | None,
                line_t: torch.Tensor | None, char_t: torch.Tensor | None, cls_t: torch.Tensor | None,
                valid: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``valid`` (B,) bool: samples that count (the mean is over them; none valid gives 0 with gradients)."""
        terms: dict[str, torch.Tensor] = {}
        w = None if valid is None else valid.to(torch.float32)
        if line is not None:
            terms["line"] = self.w["line"] * _masked_mse(line, line_t, w)
        if char is not None:
            terms["char"] = self.w["char"] * _masked_mse(char, char_t, w)
        if cls is not None:
            ce = F.cross_entropy(cls.flatten(0, 1).float(), cls_t.flatten().to(cls.device), reduction="none")
            terms["cls"] = self.w["cls"] * _masked_mean(ce.view(cls.shape[0], -1).mean(1), w)
        return terms


def _masked_mean(per_sample: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    if w is None:
        return per_sample.mean()
    w = w.to(per_sample.device)
    return (per_sample * w).sum() / w.sum().clamp_min(1.0)


def _masked_mse(pred: torch.Tensor, target: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    if w is None:
        return F.mse_loss(pred, target.to(pred.dtype))
    per = (pred.float() - target.float()).pow(2).flatten(1).mean(1)
    return _masked_mean(per, w)
