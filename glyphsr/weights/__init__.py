"""Weights shipped with glyphsr (package data), each a checkpoint folder with a model card (README.md).

``shipped_path(name)`` finds one, from an installed copy as well as from a checkout; ``available()`` lists them.
``DEFAULT`` is what ``sr-infer`` and ``sr-eval`` use when no checkpoint is given.
"""

from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent
DEFAULT = "glyphsr-synth"


def available() -> dict[str, Path]:
    """Shipped weights by name: the folders here holding a ``model.safetensors``."""
    return {p.parent.name: p.parent for p in sorted(WEIGHTS_DIR.glob("*/model.safetensors"))}


def shipped_path(name: str = DEFAULT) -> Path:
    found = available()
    if name in found:
        return found[name]
    if not found:
        raise FileNotFoundError(f"no weights named {name!r}: this copy of glyphsr ships none yet. Train some with "
                                "sr-train (see the README's training section) and pass the run's "
                                "checkpoints/best folder")
    raise FileNotFoundError(f"no weights named {name!r}; shipped: {', '.join(found)} (or give a checkpoint folder)")
