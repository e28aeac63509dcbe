"""Modulated deformable convolution block (``torchvision.ops.DeformConv2d``), after C3-STISR's and GlyphSR's DSTA.

``DeformBlock(channels)``: x (B, C, H, W) -> (B, C, H, W). The channels are reduced to f = C / 4, a 3x3 depthwise
deformable convolution samples them at offsets (and with sigmoid masks) predicted from the features and a pooled
context branch (max-pool k7 s3, conv, upsampled back), an SE-style channel gate weighs the result, and a 1x1
convolution restores C channels; with ``residual`` the input is added back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import DeformConv2d


class DeformBlock(nn.Module):
    def __init__(self, channels: int, residual: bool = True):
        super().__init__()
        f = max(channels // 4, 1)
        self.residual = residual
        self.reduce = nn.Conv2d(channels, f, 1)
        self.context = nn.Sequential(nn.MaxPool2d(7, 3, padding=3), nn.Conv2d(f, f, 3, padding=1), nn.ReLU(True))
        self.offset_mask = nn.Conv2d(2 * f, 27, 3, padding=1)  # 2 x 9 offsets + 9 masks of the 3x3 kernel
        nn.init.normal_(self.offset_mask.weight, std=1e-3)  # start near a plain convolution
        nn.init.zeros_(self.offset_mask.bias)
        self.dcn = DeformConv2d(f, f, 3, padding=1, groups=f)
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(f, f, 1), nn.Sigmoid())
        self.expand = nn.Conv2d(f, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.reduce(x)
        ctx = F.interpolate(self.context(y), size=y.shape[-2:], mode="bilinear", align_corners=False)
        om = self.offset_mask(torch.cat([y, ctx], dim=1))
        y = self.dcn(y.float(), om[:, :18].float(), torch.sigmoid(om[:, 18:]).float()).to(x.dtype)
        y = self.expand(y * self.gate(y))
        return x + y if self.residual else y
