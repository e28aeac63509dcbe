"""The SR branch's parts (TPGSR's TSRN with text-prior guided blocks).

- ``GruBlock(cin, cout)``: 1x1 convolution cin -> cout, then a bidirectional GRU (hidden cout / 2) along the width
  of every row; (B, cin, H, W) -> (B, cout, H, W).
- ``SRBlock(c_sr=64, c_tp=32)`` (TPGSR's RecurrentResidualBlockTL): conv3-BN-Mish-conv3-BN, the TP concatenated
  (c_sr + c_tp channels), a GruBlock along the height back to c_sr, and a GruBlock along the width on the input
  plus that residual; (B, c_sr, H, W), TP (B, c_tp, H, W) -> (B, c_sr, H, W).
- ``Upsampler(c, scale)``: conv3 c -> c * scale^2, PixelShuffle, Mish; the convolution starts ICNR-initialized
  (Aitken et al. 2017: the scale^2 sub-pixel filters of each output channel start equal, so the untrained
  upsampler is a nearest-neighbour upsampling of a convolution, free of the checkerboard a random PixelShuffle
  draws; the paper does not say how it initializes).
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from glyphsr.sr.modeling import gru_triton
from glyphsr.sr.modeling._env import env_choice

#: Device types whose GRUs run in float32 under autocast. The CPU's: under bfloat16 autocast its GRU is slower
#: (an SR block's, 1,024 rows of 64 steps: 69 against 59 ms in float32; the GPM's, 32 rows of 16 steps of 1,024
#: features: 50 against 15 ms, most of it copying the input weights once per step for a batched product; 2 threads).
#: CUDA's are not measured yet: ``bench_train --gru-fp32``. The environment variable ``GLYPHSR_FP32_GRU`` replaces
#: the set for a process and its children: device types separated by commas (``cpu,cuda``), or ``none``.
FLOAT32_GRU_DEVICES = {"cpu"}
FP32_GRU_ENV = "GLYPHSR_FP32_GRU"


def float32_gru_devices() -> set[str]:
    """The device types whose GRUs run in float32 under autocast: ``GLYPHSR_FP32_GRU`` when set, else
    ``FLOAT32_GRU_DEVICES``."""
    env = os.environ.get(FP32_GRU_ENV, "").strip()
    if not env:  # unset or empty: the default
        return FLOAT32_GRU_DEVICES
    kinds = {k.strip() for k in env.split(",") if k.strip()}
    if kinds == {"none"}:
        return set()
    unknown = kinds - {"cpu", "cuda", "mps", "xpu"}
    if unknown:
        raise ValueError(f"{FP32_GRU_ENV}={env!r}: expected device types separated by commas (cpu,cuda) or none")
    return kinds


#: How the GRUs run: ``native`` (``nn.GRU``: cuDNN on CUDA, oneDNN on the CPU), ``scan`` (:func:`gru_scan`, the
#: same arithmetic as a loop of ordinary operations over the time steps), ``triton`` (:func:`gru_triton`: the
#: recurrence as one Triton kernel forward and one backward) or ``auto`` (the default: ``triton`` on CUDA for the GRUs
#: it takes, the SR blocks' of hidden size 32, when Triton imports; ``native`` otherwise). On CUDA the cuDNN GRU's
#: backward took 49% of a training step's GPU time (docs/profile-gpu-2026-11-27.md). On the CPU ``scan`` is about 3
#: times slower than ``native`` (an SR block's GRU, 256 rows of 64 steps, forward and backward, 1 thread, while a
#: training run shared the 2 cores: 217 against 68 ms). Set by the environment variable ``GLYPHSR_GRU`` for a process
#: and its children.
GRU_IMPL_ENV = "GLYPHSR_GRU"
GRU_IMPLS = ("auto", "native", "scan", "triton")


def gru_impl() -> str:
    """``GLYPHSR_GRU`` (unset or empty: ``auto``)."""
    return env_choice(GRU_IMPL_ENV, GRU_IMPLS)


def gru_impl_for(gru: nn.GRU, device: torch.device) -> str:
    """The implementation ``run_gru`` uses for ``gru`` on ``device``: ``native``, ``scan`` or ``triton``."""
    impl = gru_impl()
    if impl == "auto":
        return "triton" if device.type == "cuda" and gru_triton.supports(gru) and gru_triton.available(device) \
            else "native"
    if impl == "triton" and not (gru_triton.supports(gru) and gru_triton.available(device)):
        return "native"  # the GPM's GRU (hidden size 256), or no Triton here
    return impl


def gru_scan(gru: nn.GRU, seq: torch.Tensor) -> torch.Tensor:
    """``gru(seq)[0]`` for a one-layer, batch-first ``nn.GRU`` (bidirectional or not) with its own parameters, as
    ordinary operations: the input projections of every step in one product, then per step one batched product
    (both directions at once, the reverse one walking its time-reversed input) and the gates (PyTorch's order r, z,
    n: r = s(W_ir x + b_ir + W_hr h + b_hr), z likewise, n = tanh(W_in x + b_in + r (W_hn h + b_hn)),
    h' = (1 - z) n + z h). Equal to the native GRU up to rounding, gradients included (a test), so weights move
    freely between the two; ``torch.compile``'s inductor can fuse its steps' pointwise work, which cuDNN's GRU keeps
    to itself."""
    if gru.num_layers != 1 or not gru.batch_first or gru.bias is False or getattr(gru, "proj_size", 0):
        raise ValueError("gru_scan takes a one-layer batch-first GRU with biases")
    n, steps, _ = seq.shape
    hid = gru.hidden_size
    sfx = gru_triton.directions(gru)
    d = len(sfx)
    xi = gru_triton.input_projections(gru, seq).view(n, steps, d, 3 * hid)
    xi = torch.stack([xi[:, :, 0]] + ([xi[:, :, 1].flip(1)] if d == 2 else []))  # (D, N, T, 3H)
    w_hh = torch.stack([getattr(gru, f"weight_hh_l0{s}").t() for s in sfx])  # (D, H, 3H)
    b_hh = torch.stack([getattr(gru, f"bias_hh_l0{s}") for s in sfx]).unsqueeze(1)  # (D, 1, 3H)
    kind = seq.device.type
    wdt = torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else w_hh.dtype
    w_hh, b_hh = w_hh.to(wdt), b_hh.to(wdt)  # cast once, not at every step (autocast caches only leaf weights)
    # the state and the gates in float32 when the products run in 16 bits (autocast): a 16-bit state would round
    # at every one of the steps
    acc = torch.float32 if xi.dtype in (torch.float16, torch.bfloat16) else xi.dtype
    h = torch.zeros(d, n, hid, dtype=acc, device=seq.device)
    out = []
    for t in range(steps):
        gh = torch.baddbmm(b_hh, h.to(wdt), w_hh).to(acc)
        x = xi[:, :, t]
        r, z = torch.sigmoid(gh[..., :2 * hid] + x[..., :2 * hid]).chunk(2, -1)
        c = torch.tanh(x[..., 2 * hid:] + r * gh[..., 2 * hid:])
        h = c + z * (h - c)
        out.append(h)
    y = torch.stack(out, 2).to(xi.dtype)  # (D, N, T, H)
    return torch.cat([y[0], y[1].flip(1)], -1) if d == 2 else y[0]


def run_gru(gru: nn.GRU, seq: torch.Tensor) -> torch.Tensor:
    """``gru(seq)``'s output sequence by the implementation ``gru_impl_for`` names, in float32 under autocast on
    the devices of ``float32_gru_devices()`` (for the Triton kernels, whose recurrence is float32 anyway: the input
    projections too, and full float32 products instead of TF32)."""
    impl = gru_impl_for(gru, seq.device)
    if impl == "native":
        gru.flatten_parameters()
    run = {"triton": gru_triton.gru_triton, "scan": gru_scan}.get(impl, lambda g, x: g(x)[0])
    kind = seq.device.type
    if torch.is_autocast_enabled(kind) and kind in float32_gru_devices():
        with torch.autocast(kind, enabled=False):
            out = run(gru, seq.float())
        return out.to(seq.dtype)
    return run(gru, seq)


class GruBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        if cout % 2:
            raise ValueError(f"GruBlock needs an even output width, got {cout}")
        self.conv = nn.Conv2d(cin, cout, 1)
        self.gru = nn.GRU(cout, cout // 2, bidirectional=True, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        b, c, h, w = x.shape
        seq = x.permute(0, 2, 3, 1).reshape(b * h, w, c)  # one sequence per row, along the width
        out = run_gru(self.gru, seq)
        return out.reshape(b, h, w, c).permute(0, 3, 1, 2)


class SRBlock(nn.Module):
    def __init__(self, c_sr: int = 64, c_tp: int = 32):
        super().__init__()
        self.conv1 = nn.Conv2d(c_sr, c_sr, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(c_sr)
        self.conv2 = nn.Conv2d(c_sr, c_sr, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(c_sr)
        self.gru_h = GruBlock(c_sr + c_tp, c_sr)
        self.gru_w = GruBlock(c_sr, c_sr)

    def forward(self, x: torch.Tensor, tp: torch.Tensor) -> torch.Tensor:
        r = self.bn2(self.conv2(F.mish(self.bn1(self.conv1(x)))))
        r = torch.cat([r, tp], dim=1)
        r = self.gru_h(r.transpose(-1, -2)).transpose(-1, -2)  # sequences along the height
        return self.gru_w(x + r)


class Upsampler(nn.Module):
    def __init__(self, c: int, scale: int = 2):
        super().__init__()
        self.conv = nn.Conv2d(c, c * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)
        icnr_(self.conv, scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.mish(self.shuffle(self.conv(x)))


@torch.no_grad()
def icnr_(conv: nn.Conv2d, scale: int) -> None:
    """ICNR: draw ``conv``'s filters for ``out_channels / scale^2`` channels (PyTorch's default initialization)
    and repeat each ``scale^2`` times, so that after ``PixelShuffle(scale)`` every output channel's sub-pixels
    start from the same filter."""
    r2 = scale * scale
    if conv.out_channels % r2:
        raise ValueError(f"ICNR needs out_channels divisible by scale^2 = {r2}, got {conv.out_channels}")
    base = nn.Conv2d(conv.in_channels, conv.out_channels // r2, conv.kernel_size, bias=conv.bias is not None)
    conv.weight.copy_(base.weight.repeat_interleave(r2, dim=0))
    if conv.bias is not None:
        conv.bias.copy_(base.bias.repeat_interleave(r2, dim=0))
