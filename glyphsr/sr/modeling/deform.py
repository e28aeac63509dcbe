"""Modulated deformable convolution block (``torchvision.ops.DeformConv2d``), after C3-STISR's and GlyphSR's DSTA.

``DeformBlock(channels)``: x (B, C, H, W) -> (B, C, H, W). The channels are reduced to f = C / 4, a 3x3 depthwise
deformable convolution samples them at offsets (and with sigmoid masks) predicted from the features and a pooled
context branch (max-pool k7 s3, conv, upsampled back), an SE-style channel gate weighs the result, and a 1x1
convolution restores C channels; with ``residual`` the input is added back.

The deformable convolution keeps ``torchvision.ops.DeformConv2d``'s parameters (weight (f, 1, 3, 3), bias (f)),
so state dicts are the same on every device and with either kernel. It runs :func:`deform_conv_depthwise`, the same
computation as one ``grid_sample`` over the nine kernel taps, which agrees with torchvision's kernel to float32
rounding on the CPU (tests/sr/test_modeling.py; tests/sr/test_gpu.py compares the two on CUDA, and passed on an
H200 on 2026-11-28) and is faster on both devices: on the CPU 2.6 times (64 images of 16 x 16 x 64: 56 ms against
146 ms, 2 threads); on CUDA, where torchvision issues one small product per group and chunk of images (a depthwise
convolution: hundreds of matrix-vector products a pass; its backward cost 19 ms of CPU time a call at batch 256), a
training step at batch 512 ran at 2,652 samples/s against 2,442 (one H200, bf16, 2026-11-28, `bench_train
--kernels`; 2,617 against 2,285 in a later session). Inference read 10,435 images/s against 5,215, but that was the
order of measurement: with the grid form measured first it read 6,029 against 10,244, so `bench_infer` now warms
each configuration up with a whole pass (not yet measured so). ``GLYPHSR_DEFORM`` chooses for a process: ``auto``
(the default) and ``grid`` take ``deform_conv_depthwise``, ``torchvision`` torchvision's kernel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import DeformConv2d, deform_conv2d

from glyphsr.sr.modeling._env import env_choice
from glyphsr.sr.modeling.resize import resize

DEFORM_ENV = "GLYPHSR_DEFORM"
DEFORM_IMPLS = ("auto", "grid", "torchvision")


def deform_impl(device: torch.device) -> str:
    """``grid`` or ``torchvision``: what ``GLYPHSR_DEFORM`` (unset or empty: ``auto``) picks on ``device``."""
    impl = env_choice(DEFORM_ENV, DEFORM_IMPLS)
    return "grid" if impl == "auto" else impl


def deform_conv_depthwise(x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor,
                          bias: torch.Tensor | None) -> torch.Tensor:
    """``torchvision.ops.deform_conv2d`` for a depthwise 3x3 kernel, stride 1, padding 1, dilation 1.

    x (B, C, H, W); offset (B, 18, H, W) as torchvision lays it out ((dy, dx) per tap, taps row by row); mask
    (B, 9, H, W); weight (C, 1, 3, 3); bias (C,) or None. Tap k of output pixel (i, j) samples x bilinearly at
    (i + k // 3 - 1 + dy_k, j + k % 3 - 1 + dx_k), zero outside the image, as torchvision does.
    """
    b, c, h, w = x.shape
    if weight.shape != (c, 1, 3, 3) or offset.shape[1] != 18 or mask.shape[1] != 9:
        raise ValueError(f"deform_conv_depthwise needs a depthwise 3x3 kernel: x {tuple(x.shape)}, "
                         f"weight {tuple(weight.shape)}, offset {tuple(offset.shape)}, mask {tuple(mask.shape)}")
    if h < 2 or w < 2:  # grid_sample's normalized coordinates need two pixels per axis
        return deform_conv2d(x, offset, weight, bias, padding=1, mask=mask)
    taps = torch.arange(-1, 2, device=x.device, dtype=x.dtype)
    ys = torch.arange(h, device=x.device, dtype=x.dtype)[:, None] + taps.repeat_interleave(3)[:, None, None]
    xs = torch.arange(w, device=x.device, dtype=x.dtype)[None, :] + taps.repeat(3)[:, None, None]  # (9, 1, W)
    ys = ys + offset[:, 0::2]  # (B, 9, H, W)
    xs = xs + offset[:, 1::2]
    # grid_sample's align_corners=True puts -1 and 1 on the centres of the first and last pixels
    grid = torch.stack([xs * (2 / (w - 1)) - 1, ys * (2 / (h - 1)) - 1], dim=-1)
    s = F.grid_sample(x, grid.reshape(b, 9 * h, w, 2), mode="bilinear", padding_mode="zeros", align_corners=True)
    s = s.reshape(b, c, 9, h, w) * mask[:, None]
    y = torch.einsum("bckhw,ck->bchw", s, weight.reshape(c, 9))
    return y if bias is None else y + bias[None, :, None, None]


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
        ctx = resize(self.context(y), y.shape[-2:], "bilinear")
        om = self.offset_mask(torch.cat([y, ctx], dim=1))
        offset, mask = om[:, :18].float(), torch.sigmoid(om[:, 18:]).float()
        if deform_impl(y.device) == "grid":
            with torch.autocast(y.device.type, enabled=False):  # float32, as torchvision's kernel computes
                y = deform_conv_depthwise(y.float(), offset, mask, self.dcn.weight.float(),
                                          None if self.dcn.bias is None else self.dcn.bias.float()).to(x.dtype)
        else:
            y = self.dcn(y.float(), offset, mask).to(x.dtype)
        y = self.expand(y * self.gate(y))
        return x + y if self.residual else y
