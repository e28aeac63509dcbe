"""Thin-plate-spline spatial transformer (TPGSR's STN, from ASTER): rectifies the LR image before the SR blocks.

``TPSSTN(in_channels, size=(16, 64), ctrl=20, margins=(0.05, 0.05))``: x (B, C, H, W) -> rectified (B, C, H, W).
``STNHead`` regresses 20 control points (two rows of 10) from the image; ``TPSGrid`` solves the thin-plate spline
that maps the canonical control points to them and samples the image there. The head's last layer starts at the
identity (bias = the canonical points, weights small), so an untrained STN leaves the image (almost) unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from glyphsr.data.textzoom import LR_SIZE


def canonical_points(n: int, margins: tuple[float, float]) -> torch.Tensor:
    """(n, 2) control points (x, y) in [0, 1]: n/2 along the top and n/2 along the bottom, inside the margins."""
    mx, my = margins
    xs = torch.linspace(mx, 1.0 - mx, n // 2)
    top = torch.stack([xs, torch.full_like(xs, my)], 1)
    bottom = torch.stack([xs, torch.full_like(xs, 1.0 - my)], 1)
    return torch.cat([top, bottom], 0)


def _u(d2: torch.Tensor) -> torch.Tensor:
    """The TPS radial basis r^2 log r^2 (0 at r = 0)."""
    return torch.where(d2 > 0, d2 * torch.log(d2.clamp_min(1e-12)), torch.zeros_like(d2))


class TPSGrid(nn.Module):
    def __init__(self, size: tuple[int, int], target: torch.Tensor):
        super().__init__()
        h, w = size
        n = target.shape[0]
        # system [[K, 1, P], [1^T, 0, 0], [P^T, 0, 0]] of the canonical points, inverted once
        k = _u(torch.cdist(target, target).pow(2))
        a = torch.zeros(n + 3, n + 3, dtype=torch.float64)
        a[:n, :n] = k
        a[:n, n] = 1
        a[n, :n] = 1
        a[:n, n + 1:] = target
        a[n + 1:, :n] = target.T
        self.register_buffer("inverse", torch.linalg.inv(a).float(), persistent=False)
        ys, xs = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
        grid = torch.stack([xs.reshape(-1), ys.reshape(-1)], 1)  # (HW, 2)
        rep = torch.cat([_u(torch.cdist(grid, target).pow(2)), torch.ones(h * w, 1), grid], 1)  # (HW, n + 3)
        self.register_buffer("rep", rep, persistent=False)
        self.size = size

    def forward(self, source: torch.Tensor) -> torch.Tensor:
        """source control points (B, n, 2) in [0, 1] -> sampling grid (B, H, W, 2) in [-1, 1]."""
        b = source.shape[0]
        y = torch.cat([source, source.new_zeros(b, 3, 2)], 1)  # (B, n + 3, 2)
        coords = self.rep @ (self.inverse @ y)  # (B, HW, 2)
        return (coords * 2 - 1).view(b, *self.size, 2)


class STNHead(nn.Module):
    def __init__(self, in_channels: int, ctrl: int, init_points: torch.Tensor):
        super().__init__()

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]

        self.convs = nn.Sequential(*block(in_channels, 32), nn.MaxPool2d(2, 2), *block(32, 64), nn.MaxPool2d(2, 2),
                                   *block(64, 128), nn.MaxPool2d(2, 2), *block(128, 256), nn.MaxPool2d(2, 2),
                                   *block(256, 256), nn.AdaptiveAvgPool2d((1, 2)))
        self.fc1 = nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(True))
        self.fc2 = nn.Linear(512, ctrl * 2)
        nn.init.normal_(self.fc2.weight, std=1e-4)
        with torch.no_grad():
            self.fc2.bias.copy_(init_points.reshape(-1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # -> (B, ctrl, 2)
        return self.fc2(self.fc1(self.convs(x).flatten(1))).view(x.shape[0], -1, 2)


class TPSSTN(nn.Module):
    def __init__(self, in_channels: int = 4, size: tuple[int, int] = LR_SIZE, ctrl: int = 20,
                 margins: tuple[float, float] = (0.05, 0.05)):
        super().__init__()
        pts = canonical_points(ctrl, margins)
        self.head = STNHead(in_channels, ctrl, pts)
        self.grid = TPSGrid(size, pts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid = self.grid(self.head(x))
        return F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="border", align_corners=True)
