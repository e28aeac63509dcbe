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

from glyphsr.data.labels import MAX_CHARS
from glyphsr.sr.losses.glyph import GlyphLoss, class_targets, glyph_targets
from glyphsr.sr.losses.hog import HOGLoss, hog
from glyphsr.sr.losses.text_focus import (
    CRNNTextFocus,
    STTTextFocus,
    encode_ctc,
    load_wce_table,
    wce_table_from_confusion,
    weighted_cross_entropy,
)
from glyphsr.sr.modeling.glyphsr import SROutput

__all__ = ["CRNNTextFocus", "GlyphLoss", "GlyphSRLoss", "HOGLoss", "LossConfig", "STTTextFocus", "class_targets",
           "encode_ctc", "glyph_targets", "hog", "load_wce_table", "wce_table_from_confusion", "weighted_cross_entropy"]


@dataclass(frozen=True)
class LossConfig:
    w_pix: float = 1.0
    w_tf: float = 1.0
    w_hog: float = 0.1
    w_glyph: float = 1.0
    w_cls: float = 1.0  # the class head's cross-entropy inside L_glyph (the paper: 1)
    text_focus: str = "crnn"  # crnn (offline) | stt (the paper's; needs stt_checkpoint) | none
    stt_checkpoint: str | None = None
    wce_confusion: str | None = None  # the Telescope's confuse.pkl for the WCE weights (stt); None: plain CE
    crnn_weights: str | None = None
    tf_smooth: bool = True  # crnn text focus: [1, 2, 1] filters along both axes first (no stripes; not in the paper)
    max_chars: int = MAX_CHARS


class GlyphSRLoss(nn.Module):
    def __init__(self, config: LossConfig = LossConfig(), text_focus: nn.Module | None = None):
        super().__init__()
        self.config = config
        if text_focus is None and config.text_focus == "crnn":
            text_focus = CRNNTextFocus(config.crnn_weights, smooth=config.tf_smooth)
        elif text_focus is None and config.text_focus == "stt":
            table = load_wce_table(config.wce_confusion) if config.wce_confusion else None
            text_focus = STTTextFocus(config.stt_checkpoint, wce_table=table)
        elif text_focus is None and config.text_focus != "none":
            raise ValueError(f"text_focus must be crnn, stt or none, got {config.text_focus!r}")
        self.text_focus = text_focus
        self.hog = HOGLoss()
        self.glyph = GlyphLoss(w_cls=config.w_cls)

    def forward(self, out: SROutput, hr: torch.Tensor, labels: list[str] | None, line_t: torch.Tensor | None = None,
                char_t: torch.Tensor | None = None, *, cls_t: torch.Tensor | None = None,
                glyph_valid: torch.Tensor | None = None, **text_focus: torch.Tensor) -> dict[str, torch.Tensor]:
        """``line_t``/``char_t``: pseudo-labels at 32x128 (area-averaged here) or already at 16x64. Precomputed
        targets may replace the labels: ``cls_t`` (B, L) class indices, and the text focus's own keywords
        (``target_p``, ``ctc_targets`` for the CRNN form). ``glyph_valid`` (B,) bool: the samples whose
        pseudo-labels the glyph loss may use (others, e.g. records GEM found no glyph in, are left out of it)."""
        c = self.config
        terms = {"pix": c.w_pix * F.mse_loss(out.sr, hr)}
        if self.text_focus is not None and c.w_tf:
            terms.update({k: c.w_tf * v for k, v in self.text_focus(out.sr, hr, labels, **text_focus).items()})
        if c.w_hog:
            terms["hog"] = c.w_hog * self.hog(out.sr, hr)
        if c.w_glyph:
            if cls_t is None and out.cls is not None:
                cls_t = class_targets(labels, c.max_chars)
            glyph = self.glyph(out.line, out.char, out.cls,
                               _at_lr(line_t) if out.line is not None else None,
                               _at_lr(char_t) if out.char is not None else None,
                               cls_t if out.cls is not None else None, valid=glyph_valid)
            terms.update({k: c.w_glyph * v for k, v in glyph.items()})
        terms["total"] = sum(terms.values())
        return terms


def _at_lr(t: torch.Tensor | None) -> torch.Tensor | None:
    if t is None or t.shape[-1] == 64:
        return t if t is None else t.float()
    return glyph_targets(t)
