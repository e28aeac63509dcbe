"""The SR blocks' GRUs as two Triton kernels (forward and backward), for CUDA.

cuDNN's GRU backward took 49% of a GlyphSR training step's GPU time on an H200 (its ``GRU_elementWise_bp2`` kernel:
5.5 ms a call at batch 256; docs/profile-gpu-2026-11-27.md). The SR blocks' GRUs are small (hidden size 32, 16 or
64 steps), so one program can keep a block of sequences' state and the recurrent weights in registers and walk all
the steps in one launch:

- ``gru_triton(gru, seq)`` equals ``gru(seq)[0]`` for a one-layer, batch-first ``nn.GRU`` with biases
  (bidirectional or not) up to rounding, gradients included. The input projections of all steps are one product
  (``F.linear``, under autocast in its 16-bit type); the recurrence runs in float32 (the state, the gates and the
  accumulated weight gradients), its products in TF32 under autocast or when PyTorch's may be.
- Forward: a program per block of ``BLOCK`` sequences and direction; per step it loads the step's input
  projections, multiplies the state by the three gate blocks of ``W_hh``, and stores the new state (kept for the
  backward; nothing else is).
- Backward: the same programs walk the steps in reverse, recompute the gates from the stored states, write the
  input projections' gradients and accumulate ``W_hh``'s and ``b_hh``'s per program; the programs' partial sums
  are added by PyTorch.

``available()`` says whether Triton can run here (CUDA and an importable Triton, or Triton's interpreter:
``TRITON_INTERPRET=1``, which runs the same kernels with NumPy on the CPU; the tests use it).
"""

from __future__ import annotations

import os
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

#: Hidden sizes the kernels take (a power of two, at least 16 for Triton's matrix products; the recurrent weights
#: of a program live in registers, so not much more than 64).
HIDDEN_SIZES = (16, 32, 64)


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "") == "1"


@lru_cache(maxsize=1)
def _triton_importable() -> bool:
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except Exception:  # ImportError, or a broken installation
        return False
    return True


def available(device: torch.device | str) -> bool:
    """Whether ``gru_triton`` can run on ``device``."""
    kind = torch.device(device).type
    if not _triton_importable():
        return False
    return kind == "cuda" or (kind == "cpu" and interpreting())


def supports(gru: nn.GRU) -> bool:
    return (gru.num_layers == 1 and gru.batch_first and gru.bias and not getattr(gru, "proj_size", 0)
            and gru.hidden_size in HIDDEN_SIZES)


def _kernels():
    from glyphsr.sr.modeling import _gru_kernels

    return _gru_kernels.gru_fwd, _gru_kernels.gru_bwd


def _block(n: int) -> int:
    """Sequences per program: 32, or 64 when there are many (fewer programs, each as busy)."""
    return 64 if n >= 64 * 132 * 2 else 32


def _precision(device: torch.device) -> str:
    """The products' precision: TF32 on CUDA under autocast (whose products are 16-bit anyway) or when PyTorch's
    float32 products may use it (``torch.backends.cuda.matmul.allow_tf32``), else full float32."""
    cuda = device.type == "cuda"
    return "tf32" if cuda and (torch.is_autocast_enabled("cuda") or torch.backends.cuda.matmul.allow_tf32) else "ieee"


class _GRURecurrence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xi: torch.Tensor, whh: torch.Tensor, bhh: torch.Tensor) -> torch.Tensor:
        """xi (N, T, D * 3H) input projections (any float type); whh (D, 3H, H), bhh (D, 3H) float32 ->
        states (N, T, D * H) float32."""
        n, t, _ = xi.shape
        d, h3, hid = whh.shape
        fwd, _ = _kernels()
        hs = torch.empty(n, t, d * hid, dtype=torch.float32, device=xi.device)
        block = _block(n)
        grid = (-(-n // block), d)
        ctx.prec = _precision(xi.device)
        fwd[grid](xi, whh, bhh, hs, n, t, D=d, H=hid, BLOCK=block, PREC=ctx.prec, num_warps=8 if hid > 32 else 4)
        ctx.save_for_backward(xi, whh, bhh, hs)
        return hs

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        xi, whh, bhh, hs = ctx.saved_tensors
        n, t, _ = xi.shape
        d, h3, hid = whh.shape
        _, bwd = _kernels()
        block = _block(n)
        grid = (-(-n // block), d)
        dxi = torch.empty(n, t, d * h3, dtype=torch.float32, device=xi.device)
        dw = torch.empty(d, grid[0], h3, hid, dtype=torch.float32, device=xi.device)
        db = torch.empty(d, grid[0], h3, dtype=torch.float32, device=xi.device)
        bwd[grid](xi, whh, bhh, hs, dy.contiguous(), dxi, dw, db, n, t, D=d, H=hid, BLOCK=block,
                  PREC=ctx.prec, num_warps=8 if hid > 32 else 4)
        return dxi.to(xi.dtype), dw.sum(1), db.sum(1)


def directions(gru: nn.GRU) -> list[str]:
    """The suffixes of ``gru``'s parameter names, one per direction."""
    return ["", "_reverse"] if gru.bidirectional else [""]


def input_projections(gru: nn.GRU, seq: torch.Tensor) -> torch.Tensor:
    """``W_ih x + b_ih`` of every step and direction in one product: (N, T, I) -> (N, T, D * 3H)."""
    sfx = directions(gru)
    w_ih = torch.cat([getattr(gru, f"weight_ih_l0{s}") for s in sfx])
    b_ih = torch.cat([getattr(gru, f"bias_ih_l0{s}") for s in sfx])
    return F.linear(seq, w_ih, b_ih)


def gru_triton(gru: nn.GRU, seq: torch.Tensor) -> torch.Tensor:
    """``gru(seq)[0]`` by the Triton kernels: (N, T, I) -> (N, T, D * H), in ``seq``'s type (under autocast, its
    16-bit type)."""
    if not supports(gru):
        raise ValueError(f"gru_triton takes a one-layer batch-first GRU with biases and a hidden size in "
                         f"{HIDDEN_SIZES}, got {gru}")
    sfx = directions(gru)
    xi = input_projections(gru, seq).contiguous()
    whh = torch.stack([getattr(gru, f"weight_hh_l0{s}") for s in sfx]).float().contiguous()
    bhh = torch.stack([getattr(gru, f"bias_hh_l0{s}") for s in sfx]).float().contiguous()
    return _GRURecurrence.apply(xi, whh, bhh).to(xi.dtype)
