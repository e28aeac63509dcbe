"""GlyphSR's training loss L = L_sr + L_glyph (paper, equations 6-7):
L_sr = 1 * MSE(SR, HR) + 1 * L_tf + 0.1 * L_hog; L_glyph = MSE(line) + MSE(char) + CE(class).

``GlyphSRLoss(LossConfig())(out, hr, labels, line_t, char_t)`` returns a dict of the weighted terms and their
``total``. ``hr`` (B, C, 32, 128) in [0, 1] (C = 4 with the mask channel: the pixel loss covers all channels, the
recognizers and HOG see RGB); ``line_t``/``char_t`` are the mask store's 32x128 pseudo-labels, brought to 16x64 by
area averaging here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from glyphsr.sr.losses.glyph import GlyphLoss, class_targets, glyph_targets
from glyphsr.sr.losses.hog import HOGLoss, hog
from glyphsr.sr.losses.text_focus import (
    CRNNTextFocus,
    STTTextFocus,
    load_wce_table,
    wce_table_from_confusion,
    weighted_cross_entropy,
)
from glyphsr.sr.modeling.glyphsr import SROutput

__all__ = ["CRNNTextFocus", "GlyphLoss", "GlyphSRLoss", "HOGLoss", "LossConfig", "STTTextFocus", "class_targets",
           "glyph_targets", "hog", "load_wce_table", "wce_table_from_confusion", "weighted_cross_entropy"]


@dataclass(frozen=True)
class LossConfig:
    w_pix: float = 1.0
    w_tf: float = 1.0
    w_hog: float = 0.1
    w_glyph: float = 1.0
    text_focus: str = "crnn"  # crnn (offline) | stt (the paper's; needs stt_checkpoint) | none
    stt_checkpoint: str | None = None
    wce_confusion: str | None = None  # the Telescope's confuse.pkl for the WCE weights (stt); None: plain CE
    crnn_weights: str | None = None
    max_chars: int = 15


class GlyphSRLoss(nn.Module):
    def __init__(self, config: LossConfig = LossConfig(), text_focus: nn.Module | None = None):
        super().__init__()
        self.config = config
        if text_focus is None and config.text_focus == "crnn":
            text_focus = CRNNTextFocus(config.crnn_weights)
        elif text_focus is None and config.text_focus == "stt":
            table = load_wce_table(config.wce_confusion) if config.wce_confusion else None
            text_focus = STTTextFocus(config.stt_checkpoint, wce_table=table)
        elif text_focus is None and config.text_focus != "none":
            raise ValueError(f"text_focus must be crnn, stt or none, got {config.text_focus!r}")
        self.text_focus = text_focus
        self.hog = HOGLoss()
        self.glyph = GlyphLoss()

    def forward(self, out: SROutput, hr: torch.Tensor, labels: list[str], line_t: torch.Tensor | None = None,
                char_t: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        c = self.config
        terms = {"pix": c.w_pix * F.mse_loss(out.sr, hr)}
        if self.text_focus is not None and c.w_tf:
            terms.update({k: c.w_tf * v for k, v in self.text_focus(out.sr, hr, labels).items()})
        if c.w_hog:
            terms["hog"] = c.w_hog * self.hog(out.sr, hr)
        if c.w_glyph:
            glyph = self.glyph(out.line, out.char, out.cls,
                               glyph_targets(line_t) if out.line is not None else None,
                               glyph_targets(char_t) if out.char is not None else None,
                               class_targets(labels, c.max_chars) if out.cls is not None else None)
            terms.update({k: c.w_glyph * v for k, v in glyph.items()})
        terms["total"] = sum(terms.values())
        return terms
