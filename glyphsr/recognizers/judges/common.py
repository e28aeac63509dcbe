"""What the standard STISR judges share: the interface, strict loading of an official file with clear errors, and
the input preprocessing of the STISR evaluation code (TextZoom's and TPGSR's ``interfaces/base.py``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from glyphsr.recognizers.checkpoints import read_state, strip_prefix
from glyphsr.recognizers.images import luma  # noqa: F401 - the judges' grey conversion (ITU-R 601), re-exported


@runtime_checkable
class Judge(Protocol):
    """A recognizer that judges super-resolved images.

    ``recognize_tensor(images)``: RGB float (B, 3, H, W) in [0, 1] on the judge's device -> B strings, lowercase
    alphanumeric (the form accuracy is computed on)."""

    name: str

    def recognize_tensor(self, images: torch.Tensor) -> list[str]: ...


class OfficialJudge:
    """Base of the judges rebuilt with an official file's parameter names. A subclass sets ``name`` (the registry
    name), ``title``, ``weights_file`` (the file a user gives), ``architecture`` (builds the network with the
    official configuration) and, where the file is not a bare state dict, ``transform``; and implements
    ``recognize_tensor``."""

    name: ClassVar[str]
    title: ClassVar[str]
    weights_file: ClassVar[str]
    architecture: ClassVar[Callable[[], nn.Module]]
    transform: ClassVar[Callable[[dict], dict]] = staticmethod(strip_prefix)

    def __init__(self, model: nn.Module):
        self.model = model

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str | torch.device = "cpu", **options: Any) -> Self:
        """The judge with the official file ``path`` loaded strictly, in eval mode on ``device``; ``options`` go
        to the constructor. Errors as :func:`load_official`."""
        model = load_official(cls.architecture(), path, what=f"{cls.title} ({cls.weights_file})", option=cls.name,
                              transform=cls.transform)
        return cls(model.to(device).eval(), **options)

    def recognize_tensor(self, images: torch.Tensor) -> list[str]:
        raise NotImplementedError


def load_official(model: nn.Module, checkpoint: str | os.PathLike, *, what: str, option: str,
                  transform: Callable[[dict], dict] = strip_prefix) -> nn.Module:
    """Load the official file ``checkpoint`` into ``model`` strictly (names and shapes must all match).

    ``transform`` maps the file's dict to a state dict (by default: DataParallel's ``module.`` prefix stripped).
    BatchNorm step counters (``num_batches_tracked``) are not weights and did not exist before PyTorch 0.4.1, when
    crnn.pth and MORAN's demo.pth were saved: where the file lacks them, the model keeps its own.

    Raises FileNotFoundError naming the path and ``--recognizer {option}:PATH`` for a missing file; ValueError for
    an unreadable one and for one that does not fit, naming missing and unexpected keys and shape mismatches."""
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"{what} checkpoint not found: {path} (give the file with --recognizer {option}:PATH;"
                                " it cannot be downloaded here)")
    state = read_state(path, what)
    try:
        state = dict(transform(state))
    except Exception as exc:
        raise ValueError(f"{path} does not hold a state dict of {what}: {exc}") from None
    own = model.state_dict()
    for key, value in own.items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = value.clone()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state)
                   if not isinstance(state[k], torch.Tensor) or state[k].shape != own[k].shape)
    if missing or unexpected or wrong:
        def shape(v) -> str:
            return str(tuple(v.shape)) if isinstance(v, torch.Tensor) else type(v).__name__
        wrong = [f"{k}: file {shape(state[k])}, model {shape(own[k])}" for k in wrong]
        parts = [f"{len(keys)} {kind} ({_examples(keys)})" for kind, keys in
                 (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", wrong)) if keys]
        raise ValueError(f"{path} does not fit {what}: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)
    return model


def _examples(keys: list[str], most: int = 4) -> str:
    return ", ".join(keys[:most]) + (", ..." if len(keys) > most else "")


def check_images(images: torch.Tensor) -> None:
    """Raise ValueError unless ``images`` is a float (B, 3, H, W) tensor."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3 \
            or not images.is_floating_point():
        desc = f"{tuple(images.shape)} {images.dtype}" if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"expected RGB float images (B, 3, H, W) in [0, 1], got {desc}")


def resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic resize to ``size`` (H, W) as the STISR evaluation code does it (``F.interpolate``,
    ``align_corners=False``, no clamping); the identity when the size already fits."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return F.interpolate(images, size=size, mode="bicubic", align_corners=False)

