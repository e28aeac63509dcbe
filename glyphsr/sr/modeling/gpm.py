"""Glyph Perception Module (paper, "Glyph Perception Module", equations 1-4).

``GlyphPerception(c_sr=64, max_chars=15, classes=95, tasks=("line", "char", "cls"))`` on the features of SR block
N_gly, F (B, c_sr, 16, 64):
- a three-level pyramid (16x64 -> 8x32 -> 4x16 with 64, 128, 256 channels) whose downsampling levels are added to
  the upsampling levels of the same size, with a bidirectional GRU over the 16 columns of the bottom level;
- Line head: one 3x3 convolution and a sigmoid -> M_line (B, 1, 16, 64);
- Char head: one 3x3 convolution and a sigmoid -> M_char (B, L, 16, 64);
- Class head: Attn = M_char * M_line, character features = Attn-weighted average of a 1x1 projection of F to 256
  channels (B, L, 256), P = Linear -> (B, L, D).
``tasks`` names the supervised outputs (the paper's Table 3); the others come back as None. The class head needs
both maps as attention, so with ``cls`` the Line and Char heads exist even when unsupervised; without ``cls`` only
the supervised heads are built.
"""

from __future__ import annotations

import torch
from torch import nn

from glyphsr.data.labels import MAX_CHARS
from glyphsr.sr.modeling.resize import resize
from glyphsr.sr.modeling.sr_branch import run_gru

TASKS = ("line", "char", "cls")


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True))


class GlyphPerception(nn.Module):
    def __init__(self, c_sr: int = 64, max_chars: int = MAX_CHARS, classes: int = 95, tasks: tuple[str, ...] = TASKS):
        super().__init__()
        bad = set(tasks) - set(TASKS)
        if bad or not tasks:
            raise ValueError(f"GPM tasks must be a non-empty subset of {TASKS}, got {tasks}")
        self.tasks = tuple(t for t in TASKS if t in tasks)
        self.max_chars = max_chars
        self.down1 = _conv(c_sr, 64)
        self.down2 = _conv(64, 128, 2)
        self.down3 = _conv(128, 256, 2)
        self.gru = nn.GRU(256 * 4, 256, bidirectional=True, batch_first=True)  # bottom level: 4 rows x 256 ch
        self.gru_out = nn.Linear(512, 256 * 4)
        self.up2 = _conv(256, 128)
        self.up1 = _conv(128, 64)
        cls = "cls" in self.tasks
        self.line_head = nn.Conv2d(64, 1, 3, padding=1) if cls or "line" in self.tasks else None
        self.char_head = nn.Conv2d(64, max_chars, 3, padding=1) if cls or "char" in self.tasks else None
        if "cls" in self.tasks:
            self.cls_proj = nn.Conv2d(c_sr, 256, 1)
            self.cls_head = nn.Linear(256, classes)

    def forward(self, f: torch.Tensor) -> dict[str, torch.Tensor | None]:
        d1 = self.down1(f)  # (B, 64, 16, 64)
        d2 = self.down2(d1)  # (B, 128, 8, 32)
        d3 = self.down3(d2)  # (B, 256, 4, 16)
        b, c, h, w = d3.shape
        seq = run_gru(self.gru, d3.permute(0, 3, 1, 2).reshape(b, w, c * h))  # one step per column
        # batch_first GRU output is time-major in memory: a 2-D product, not a batched one over a copied weight
        g = self.gru_out(seq.reshape(b * w, -1)).reshape(b, w, c, h).permute(0, 2, 3, 1) + d3
        u2 = self.up2(resize(g, d2.shape[-2:], "bilinear")) + d2
        u1 = self.up1(resize(u2, d1.shape[-2:], "bilinear")) + d1
        line = torch.sigmoid(self.line_head(u1)) if self.line_head is not None else None
        char = torch.sigmoid(self.char_head(u1)) if self.char_head is not None else None
        cls = None
        if "cls" in self.tasks:
            attn = char * line  # (B, L, H, W)
            feat = self.cls_proj(f)  # (B, 256, H, W)
            pooled = torch.einsum("blhw,bchw->blc", attn, feat) / (attn.sum(dim=(2, 3))[..., None] + 1e-6)
            cls = self.cls_head(pooled)  # (B, L, D)
        return {"line": line if "line" in self.tasks else None, "char": char if "char" in self.tasks else None,
                "cls": cls}
