"""Image conversions shared by the recognizers and the stages built on them (GEM's attention, the SR network's TP
generator and text-focus loss), on torch tensors with channels first."""

from __future__ import annotations

import torch

from glyphsr.data.textzoom import LUMA_601


def luma(images: torch.Tensor) -> torch.Tensor:
    """ITU-R BT.601 luma of RGB(M) (B, C, H, W) -> (B, 1, H, W), in the input's range; a 1-channel input is
    returned as it is. NumPy arrays with channels last: :func:`glyphsr.data.textzoom.luma`."""
    if images.shape[1] == 1:
        return images
    r, g, b = LUMA_601
    return images[:, 0:1] * r + images[:, 1:2] * g + images[:, 2:3] * b
