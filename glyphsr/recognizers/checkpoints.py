"""Loading a user's checkpoint into a model: one place for the checks and the error messages."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn


def strip_prefix(state: dict[str, torch.Tensor], prefix: str = "module.") -> dict[str, torch.Tensor]:
    """Remove DataParallel's ``module.`` prefix where present."""
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state.items()}


def load_weights(model: nn.Module, checkpoint: str | os.PathLike, what: str,
                 transform: Callable[[dict], dict] = strip_prefix) -> nn.Module:
    """Load ``checkpoint`` (on the CPU, tensors only, keys mapped by ``transform``: by default the ``module.``
    prefix stripped) into ``model`` strictly.

    Raises FileNotFoundError for a missing file, ValueError naming the file for an unreadable one or one whose
    keys or shapes do not fit ``what`` (e.g. "SAM vit_b")."""
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"{what} checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"cannot read {what} checkpoint {path}: {exc}") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict of {what}")
    try:
        model.load_state_dict(transform(state), strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path} does not fit {what}: {str(exc).splitlines()[0]}") from None
    return model
