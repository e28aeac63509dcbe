"""Resizing as two small matrix products, for CUDA.

PyTorch's CUDA kernels for bilinear and bicubic resizing of NCHW tensors give one thread to each *output* pixel and
loop over batch and channels inside it: a 16x64 output gets 1,024 threads however large the batch. In a GlyphSR
training step at batch 256 on an H200 that kernel took 13% of the GPU time, 7.2 ms a call
(docs/profile-gpu-2026-11-27.md). Resizing is linear and separable, so ``resize`` computes it as ``Rh @ x @ Rw``,
with ``Rh`` (Ho, Hi) and ``Rw`` (Wi, Wo) the resize matrices, which are built by resizing identity matrices with
``F.interpolate`` itself (same mode, corners, antialiasing: the same weights, whatever PyTorch's rules for borders
and scales are) and cached. The products use the tensor cores, and their backward is two more products instead of
atomic additions.

``GLYPHSR_RESIZE``: ``auto`` (the default: matrices on CUDA, ``F.interpolate`` elsewhere), ``matmul`` (everywhere)
or ``native`` (``F.interpolate`` everywhere).
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

from glyphsr.sr.modeling._env import env_choice

RESIZE_ENV = "GLYPHSR_RESIZE"
RESIZE_IMPLS = ("auto", "matmul", "native")


def resize_impl() -> str:
    """``GLYPHSR_RESIZE`` (unset or empty: ``auto``)."""
    return env_choice(RESIZE_ENV, RESIZE_IMPLS)


@lru_cache(maxsize=256)
def _matrix(n_in: int, n_out: int, mode: str, align_corners: bool | None, antialias: bool,
            device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(n_in, n_out) in ``dtype``: column o holds the weights of the inputs in output o, along one axis. Made
    outside inference mode and without autograd, so one cached matrix serves every later call."""
    with torch.inference_mode(False), torch.no_grad():
        eye = torch.eye(n_in, dtype=torch.float64).view(1, n_in, 1, n_in)  # channel c: the unit vector e_c along W
        m = F.interpolate(eye, size=(1, n_out), mode=mode, align_corners=align_corners, antialias=antialias)
        return m.view(n_in, n_out).to(device=device, dtype=dtype)


def resize(x: torch.Tensor, size: tuple[int, int], mode: str = "bilinear", align_corners: bool | None = False,
           antialias: bool = False, keep_dtype: bool = False) -> torch.Tensor:
    """``F.interpolate(x, size=size, mode=mode, align_corners=align_corners, antialias=antialias)`` for a 4-D
    tensor and a linear mode (bilinear, bicubic), as two matrix products on CUDA (``GLYPHSR_RESIZE``). Under
    autocast the products run in its 16-bit type (``F.interpolate`` runs in the input's) unless ``keep_dtype``:
    for images added to the output, such as the global skip's bicubic upsampling."""
    impl = resize_impl()
    if impl == "native" or (impl == "auto" and x.device.type != "cuda") or mode not in ("bilinear", "bicubic") \
            or torch.compiler.is_compiling():  # torch.compile: inductor lowers the resize itself (and skips caches)
        return F.interpolate(x, size=size, mode=mode, align_corners=align_corners, antialias=antialias)
    (hi, wi), (ho, wo) = x.shape[-2:], tuple(int(s) for s in size)
    if (hi, wi) == (ho, wo) and not antialias:
        return x  # same size: both modes are the identity
    if not x.dtype.is_floating_point:
        raise TypeError(f"resize takes floating-point images, got {x.dtype}")
    kind = x.device.type
    autocast = torch.is_autocast_enabled(kind)
    dt = torch.get_autocast_dtype(kind) if autocast and not keep_dtype else x.dtype
    mh = _matrix(hi, ho, mode, align_corners, antialias, x.device, dt)
    mw = _matrix(wi, wo, mode, align_corners, antialias, x.device, dt)
    if autocast:
        with torch.autocast(kind, enabled=False):
            return _products(x.to(dt), mh, mw)
    return _products(x, mh, mw)


def _products(x: torch.Tensor, mh: torch.Tensor, mw: torch.Tensor) -> torch.Tensor:
    """``Rh^T @ x @ Rw``, the smaller intermediate first. A channels-last input (the network's layout on CUDA) is
    resized as its (B, H, W, C) view and stays channels-last, as ``F.interpolate`` keeps it."""
    (hi, ho), (wi, wo) = mh.shape, mw.shape
    if x.dim() == 4 and x.shape[1] > 1 and x.is_contiguous(memory_format=torch.channels_last):
        b, c = x.shape[:2]
        y = x.permute(0, 2, 3, 1)  # (B, H, W, C), contiguous

        def along_w(t: torch.Tensor) -> torch.Tensor:  # (B, H, Wi, C) -> (B, H, Wo, C)
            return torch.matmul(mw.t(), t)

        def along_h(t: torch.Tensor) -> torch.Tensor:  # (B, Hi, W, C) -> (B, Ho, W, C)
            n, _, w, _ = t.shape
            return torch.matmul(mh.t(), t.reshape(n, hi, w * c)).view(n, ho, w, c)

        y = along_h(along_w(y)) if hi * wo <= ho * wi else along_w(along_h(y))
        return y.permute(0, 3, 1, 2)  # logically (B, C, H, W), channels-last in memory
    if hi * wo <= ho * wi:
        return torch.matmul(mh.t(), torch.matmul(x, mw))
    return torch.matmul(torch.matmul(mh.t(), x), mw)
