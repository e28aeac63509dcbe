"""Loading a user's checkpoint into a model: one place for the checks and the error messages."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn


def strip_prefix(state: dict[str, torch.Tensor], prefix: str = "module.") -> dict[str, torch.Tensor]:
    """Remove DataParallel's ``module.`` prefix where present."""
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state.items()}


def _why_unreadable(path: Path, exc: Exception) -> str:
    """What to tell a user whose file ``torch.load(weights_only=True)`` refused with ``exc``."""
    with open(path, "rb") as f:
        head = f.read(4)
    if not (zipfile.is_zipfile(path) or head[:1] == b"\x80"):  # torch.save's zip format, or a legacy pickle
        return f"not a PyTorch checkpoint (the file starts with {head!r})"
    first = str(exc).splitlines()[0]
    if "Weights only load failed" in first:  # torch's advice to load untrusted pickles is not ours to give
        return ("it holds Python objects besides tensors, which glyphsr does not unpickle; save the model's "
                "state_dict() alone (torch.save(model.state_dict(), path)) and pass that file")
    return first


def read_state(checkpoint: str | os.PathLike, what: str, mmap: bool = False) -> dict:
    """The state dict in ``checkpoint`` (CPU, tensors only). ``mmap`` maps the tensors instead of reading them
    (legacy non-zip files cannot be mapped and are read). Raises FileNotFoundError for a missing file and
    ValueError naming the file for an unreadable one or one that holds no dict."""
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"{what} checkpoint not found: {path}")
    state = None
    for mapped in ((True, False) if mmap else (False,)):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=mapped)
            break
        except Exception as exc:
            if not (mapped and "mmap" in str(exc)):
                raise ValueError(f"cannot read {what} checkpoint {path}: {_why_unreadable(path, exc)}") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict of {what}")
    return state


def load_weights(model: nn.Module, checkpoint: str | os.PathLike, what: str,
                 transform: Callable[[dict], dict] = strip_prefix) -> nn.Module:
    """Load ``checkpoint`` (keys mapped by ``transform``: by default the ``module.`` prefix stripped) into
    ``model`` strictly. Errors as :func:`read_state`, and ValueError when keys or shapes do not fit ``what``."""
    state = read_state(checkpoint, what)
    try:
        model.load_state_dict(transform(state), strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{checkpoint} does not fit {what}: {str(exc).splitlines()[0]}") from None
    return model


def verify_weights(checkpoint: str | os.PathLike, what: str, build: Callable[[], nn.Module],
                   transform: Callable[[dict], dict] = strip_prefix) -> None:
    """Check, without reading the tensors or building a real model, that ``checkpoint`` would load into
    ``build()``: the file is memory-mapped and its names and shapes compared with the model built on the meta
    device. Raises as :func:`load_weights`, naming counts and an example of each kind of mismatch."""
    state = transform(read_state(checkpoint, what, mmap=True))
    with torch.device("meta"):
        model = build()
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in state.items() if hasattr(v, "shape")}
    missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
    wrong = sorted(k for k in set(want) & set(have) if want[k] != have[k])
    if missing or extra or wrong:
        parts = [f"{len(x)} {name} (e.g. {x[0]})" for name, x in
                 (("missing keys", missing), ("unexpected keys", extra), ("shape mismatches", wrong)) if x]
        raise ValueError(f"{checkpoint} does not fit {what}: " + ", ".join(parts))
