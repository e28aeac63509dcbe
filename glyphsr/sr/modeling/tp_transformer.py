"""TP transformer (C3-STISR's and GlyphSR's InfoGen): per-step class probabilities -> a spatial text prior.

``TPTransformer(classes, c_tp=32)``: probabilities (B, D, 1, T) -> TP (B, c_tp, 16, 64). Four transposed
convolutions (D -> 512 -> 128 -> 64 -> c_tp, kernel 3, strides 2, 2, 2, (2, 1), each with BN and ReLU) grow the
1 x T sequence into a map ((B, 32, 25, 213) for T = 26), which is resized bilinearly to the LR size and refined by
a deformable convolution block, so any T gives the same TP size.
"""

from __future__ import annotations

import torch
from torch import nn

from glyphsr.data.textzoom import LR_SIZE
from glyphsr.sr.modeling.deform import DeformBlock
from glyphsr.sr.modeling.resize import resize


class TPTransformer(nn.Module):
    def __init__(self, classes: int, c_tp: int = 32, size: tuple[int, int] = LR_SIZE):
        super().__init__()
        self.size = size

        def up(cin: int, cout: int, stride, padding) -> list[nn.Module]:
            return [nn.ConvTranspose2d(cin, cout, 3, stride, padding, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]

        self.deconv = nn.Sequential(*up(classes, 512, 2, 0), *up(512, 128, 2, 0), *up(128, 64, 2, 1),
                                    *up(64, c_tp, (2, 1), 1))
        self.deform = DeformBlock(c_tp)

    def forward(self, probs: torch.Tensor) -> torch.Tensor:
        x = self.deconv(probs)
        x = resize(x, self.size, "bilinear")
        return self.deform(x)
