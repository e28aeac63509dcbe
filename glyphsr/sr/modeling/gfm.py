"""Glyph Fusion Module (paper, equation 5), applied to the features of every SR block n >= N_gly.

``GlyphFusion(c_sr=64, max_chars=15)``: F (B, c_sr, H, W), M_char (B, L, H, W) -> F_gly (B, c_sr, H, W):
    F_hid0 = Conv1(Conv0(F))                          1x1 c_sr -> L, then 3x3 L -> L (each BN + ReLU)
    M'     = ChannelWiseAttention(M_char)             SE gate over the L character channels, so padding
                                                      positions (empty channels) can be turned down
    F_hid1 = DeformConv(Conv2(F_hid0 * M'))           1x1 L -> c_sr + BN, modulated deformable conv block
    F_gly  = ReLU(F_hid1 + F)
"""

from __future__ import annotations

import torch
from torch import nn

from glyphsr.data.labels import MAX_CHARS
from glyphsr.sr.modeling.deform import DeformBlock


class GlyphFusion(nn.Module):
    def __init__(self, c_sr: int = 64, max_chars: int = MAX_CHARS):
        super().__init__()
        L = max_chars
        self.conv0 = nn.Sequential(nn.Conv2d(c_sr, L, 1, bias=False), nn.BatchNorm2d(L), nn.ReLU(True))
        self.conv1 = nn.Sequential(nn.Conv2d(L, L, 3, padding=1, bias=False), nn.BatchNorm2d(L), nn.ReLU(True))
        hidden = max(L // 2, 4)
        self.attention = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(L, hidden, 1), nn.ReLU(True),
                                       nn.Conv2d(hidden, L, 1), nn.Sigmoid())
        self.conv2 = nn.Sequential(nn.Conv2d(L, c_sr, 1, bias=False), nn.BatchNorm2d(c_sr))
        self.deform = DeformBlock(c_sr, residual=False)

    def forward(self, f: torch.Tensor, m_char: torch.Tensor) -> torch.Tensor:
        hid0 = self.conv1(self.conv0(f))
        m = m_char * self.attention(m_char)
        hid1 = self.deform(self.conv2(hid0 * m))
        return torch.relu(hid1 + f)
