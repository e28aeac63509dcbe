"""How a trained network runs for inference (``sr-infer``, ``sr-eval``, the benchmarks): precision and memory layout.

- ``--precision auto`` (the default) is bfloat16 autocast where the device computes bfloat16 natively: CUDA, and
  CPUs with AVX512-BF16 or AMX (AMD Zen 4 and later, Intel Cooper Lake, Sapphire Rapids and later). Elsewhere it
  is float32, where oneDNN would emulate bfloat16 (not measured here: this project's CPU has AVX512-BF16).
- The network and its inputs go channels-last. On the CPU it is oneDNN's own layout: no reordering around each
  convolution, and the GRUs' row sequences need no copy. On one H200 (bench_infer, bfloat16, batch 512, 20,000
  16x64 images, commit f014315, 2026-11-28) it ran 3,630 images/s against 2,824 in the contiguous layout.

Measured on the 2-core AMD EPYC (AVX512-BF16) here, the full network with random weights, 16x64 images
(bench_infer, docs/benchmarks.md): float32 contiguous 16.6 images/s and bfloat16 25.3 at batch 64 (commit
94203d4); bfloat16 channels-last 32 (a one-off measurement); with the later CPU changes (deformable convolutions
via grid_sample, 26 TP steps, float32 GRUs) bfloat16 37.9 and float32 24.3 at batch 32 (commit 3f5395e).
bfloat16 moved SR pixels by at most 0.003 (under one 8-bit level) on random weights.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where it is used: the command lines import this module before torch
    import torch

PRECISIONS = ("auto", "fp32", "bf16")
#: Windows per forward pass on the CPU: bench_infer, bfloat16, 2 cores: batch 8 33.6 images/s, 32 38.5, 64 35.6,
#: 128 30.8 (float32: 22.6, 26.8, 23.8, 20.6). Larger batches leave the caches.
CPU_BATCH = 32


def check_environment() -> None:
    """Raise ValueError naming the variable when ``GLYPHSR_GRU``, ``GLYPHSR_FP32_GRU``, ``GLYPHSR_RESIZE`` or
    ``GLYPHSR_DEFORM`` (how the network's kernels run) holds a value they do not take: checked before any work, not
    at the first forward pass."""
    import torch

    from glyphsr.sr.modeling.deform import deform_impl
    from glyphsr.sr.modeling.resize import resize_impl
    from glyphsr.sr.modeling.sr_branch import float32_gru_devices, gru_impl

    float32_gru_devices()
    gru_impl()
    resize_impl()
    deform_impl(torch.device("cpu"))


def resolve_device(spec: str | None, option: str = "--device") -> torch.device:
    """``--device`` (cpu, cuda or cuda:N; None: cuda when there is one) -> ``torch.device``. Raises ValueError
    naming ``option`` for a string torch does not read, another kind of device, an index on the CPU, and a CUDA
    device this machine does not have; and, first, for the environment :func:`check_environment` checks (every
    program that runs the network resolves its device before its work)."""
    import torch

    check_environment()
    if spec is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(spec)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"{option} {spec!r}: not a device: give cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"{option} {spec}: {dev.type} devices are not supported here: give cpu, cuda or cuda:N")
    if dev.type == "cpu" and dev.index is not None:
        raise ValueError(f"{option} {spec}: the CPU takes no index: give cpu")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{option} {spec}: CUDA is not available here (torch {torch.__version__}); use "
                             f"{option} cpu")
        n = torch.cuda.device_count()
        if dev.index is not None and dev.index >= n:
            raise ValueError(f"{option} {spec}: this machine has {n} CUDA device(s), cuda:0 to cuda:{n - 1}")
    return dev


def native_bf16(device: str | torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively (CUDA from Ampere on; CPUs with AVX512-BF16 or AMX)."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        try:  # private, but the only way torch exposes it; a torch without them gets float32
            return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
        except AttributeError:
            return False
    return False


def use_bf16(precision: str, device: str | torch.device) -> bool:
    """``--precision`` (auto, fp32, bf16) on ``device`` -> whether to run under bfloat16 autocast."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return native_bf16(device) if precision == "auto" else precision == "bf16"


#: ``GLYPHSR_CUDNN_BENCHMARK=0`` turns cuDNN's autotuner off (on by default on CUDA: the network's shapes are fixed, so
#: each convolution's fastest algorithm is picked once; results may then differ in the last bits between runs).
CUDNN_BENCHMARK_ENV = "GLYPHSR_CUDNN_BENCHMARK"


def cuda_setup(device: str | torch.device) -> None:
    """Process-wide settings for work on a CUDA ``device`` (nothing elsewhere): cuDNN's autotuner, unless
    ``GLYPHSR_CUDNN_BENCHMARK=0``."""
    import os

    import torch

    if torch.device(device).type == "cuda":
        torch.backends.cudnn.benchmark = os.environ.get(CUDNN_BENCHMARK_ENV, "1") != "0"


def sr_function(model: torch.nn.Module, device: str | torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """The SR function of an evaluation-mode ``model`` for :func:`glyphsr.sr.infer.super_resolve_images` and
    :func:`glyphsr.sr.evaluation.super_resolve`: RGBM (B, 4, 16, 64) -> SR (B, 4, 32, 128). It turns ``model``
    channels-last (in place) and feeds it channels-last inputs, on the CPU and on CUDA alike."""
    import torch

    model.eval()
    kind = torch.device(device).type
    if kind == "cuda":
        cuda_setup(device)
    if kind not in ("cpu", "cuda"):  # measured on the CPU and CUDA only
        return lambda x: model(x).sr
    model.to(memory_format=torch.channels_last)
    return lambda x: model(x.contiguous(memory_format=torch.channels_last)).sr
