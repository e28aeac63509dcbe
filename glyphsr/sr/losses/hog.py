"""A differentiable HOG and the HOG loss L_hog = ||HOG(SR) - HOG(HR)||_1 (paper, equation 6).

Known HOG layers run under no_grad; this one is smooth everywhere it matters:
- gray image (ITU-R 601 luma of the RGB channels), Sobel gradients gx, gy, magnitude sqrt(gx^2 + gy^2 + eps);
- unsigned orientation without atan2: cos 2θ = (gx^2 - gy^2) / m^2 and sin 2θ = 2 gx gy / m^2, and each of the
  ``bins`` orientation bins (centres c_b spread over 180 degrees) gets the weight
  exp(κ (cos 2(θ - c_b) - 1)), normalized over the bins (a soft, von-Mises binning instead of hard votes);
- magnitude x weight averaged over ``cell`` x ``cell`` cells, then 2x2 cell blocks L2-normalized (eps).
``hog(images (B, C, H, W) in [0, 1], cell=8, bins=9)`` -> (B, bins * 4, H / cell - 1, W / cell - 1).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from glyphsr.recognizers.images import luma


def hog(images: torch.Tensor, cell: int = 8, bins: int = 9, kappa: float = 4.0, eps: float = 1e-6) -> torch.Tensor:
    g = luma(images)
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=g.dtype, device=g.device)
    k = torch.stack([sobel, sobel.T])[:, None]  # (2, 1, 3, 3): d/dx, d/dy
    grad = F.conv2d(F.pad(g, (1, 1, 1, 1), mode="replicate"), k)
    gx, gy = grad[:, 0:1], grad[:, 1:2]
    m2 = gx * gx + gy * gy + eps
    mag = torch.sqrt(m2)
    cos2, sin2 = (gx * gx - gy * gy) / m2, 2 * gx * gy / m2  # (B, 1, H, W)
    centres = torch.arange(bins, dtype=g.dtype, device=g.device) * (math.pi / bins)
    c2, s2 = torch.cos(2 * centres)[None, :, None, None], torch.sin(2 * centres)[None, :, None, None]
    w = torch.softmax(kappa * (cos2 * c2 + sin2 * s2), dim=1)  # (B, bins, H, W)
    cells = F.avg_pool2d(mag * w, cell)  # (B, bins, H / cell, W / cell)
    blocks = torch.cat([cells[:, :, :-1, :-1], cells[:, :, 1:, :-1], cells[:, :, :-1, 1:], cells[:, :, 1:, 1:]], 1)
    return blocks / torch.sqrt((blocks * blocks).sum(dim=1, keepdim=True) + eps)


class HOGLoss(nn.Module):
    def __init__(self, cell: int = 8, bins: int = 9):
        super().__init__()
        self.cell, self.bins = cell, bins

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(hog(sr[:, :3], self.cell, self.bins), hog(hr[:, :3], self.cell, self.bins))
