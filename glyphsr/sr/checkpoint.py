"""SR checkpoints: weights in safetensors (loading a file never runs code) with the resolved configuration in
their metadata, so ``sr-eval`` and ``sr-infer`` rebuild the network from the checkpoint alone.

A checkpoint is a folder::

    model.safetensors    the network's weights (and buffers); metadata "glyphsr" = JSON {config, step, ...}
    ema.safetensors      the EMA weights, when the run kept an average
    state.pt             resume state (optimizer, step, epoch, random state, best metric, configuration)

Weights may be split over several files (``model.safetensors`` and the parts in :data:`PARTS`, e.g.
``model-tpg.safetensors``): each holds its own tensors and the same metadata; shipped weights are split so no file
passes 16 MiB. Only these names are read: a stray ``model-old.safetensors`` beside them is not a part, and a tensor
found in two files is refused rather than one copy silently winning. Folders are written under a temporary name and
swapped in, so a crash leaves the previous checkpoint readable.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import uuid
from pathlib import Path

import torch
from torch import nn

from glyphsr.sr.modeling import GlyphSRNet, SRConfig, build_model

META_KEY = "glyphsr"
FORMAT = 1
# The parts weights may be split into, {key prefix: file suffix}: ``stem-suffix.safetensors`` holds the tensors under
# the prefix. One table for the writer and the reader, so the reader never has to guess from file names.
PARTS = {"tpg.": "tpg"}


class CheckpointError(Exception):
    """A checkpoint that cannot be used: missing, corrupt, or of another architecture."""


def _tensors(state: dict[str, torch.Tensor], dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in state.items():
        v = v.detach().cpu()
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        out[k] = v.contiguous()
    return out


def save_weights(folder: Path, stem: str, state: dict[str, torch.Tensor], meta: dict,
                 split: dict[str, str] | None = None, dtype: torch.dtype | None = None) -> list[Path]:
    """Write ``state`` as ``folder/stem.safetensors``; ``split`` {key prefix: suffix} moves the tensors under a
    prefix to ``stem-suffix.safetensors`` (only the parts in :data:`PARTS`, the ones readers take). ``dtype`` casts
    floating tensors (e.g. float16 for shipping)."""
    from safetensors.torch import save_file

    unknown = {k: v for k, v in (split or {}).items() if PARTS.get(k) != v}
    if unknown:
        raise ValueError(f"split {unknown}: readers take only the parts {PARTS}; add a new part to PARTS first")
    tensors = _tensors(state, dtype)
    parts: dict[str, dict[str, torch.Tensor]] = {stem: {}}
    for k, v in tensors.items():
        name = next((f"{stem}-{suffix}" for prefix, suffix in (split or {}).items() if k.startswith(prefix)), stem)
        parts.setdefault(name, {})[k] = v
    meta_s = {META_KEY: json.dumps({"format": FORMAT, **meta})}
    paths = []
    for name, part in parts.items():
        p = folder / f"{name}.safetensors"
        save_file(part, str(p), metadata=meta_s)
        os.chmod(p, 0o644)  # safetensors writes 0600: shipped weights and shared runs must be readable by all
        paths.append(p)
    return paths


def write_checkpoint(path: str | os.PathLike, model_state: dict, meta: dict, ema_state: dict | None = None,
                     resume: dict | None = None) -> Path:
    """Write a checkpoint folder atomically (temporary folder, then swapped in)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        save_weights(tmp, "model", model_state, meta)
        if ema_state is not None:
            save_weights(tmp, "ema", ema_state, meta)
        if resume is not None:
            torch.save(resume, tmp / "state.pt")
        old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
        if path.exists():
            path.rename(old)
        tmp.rename(path)
        if old.exists():
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return path


def _weight_files(path: Path, stem: str) -> list[Path]:
    """``stem.safetensors`` and its parts (:data:`PARTS`) in a folder; nothing without ``stem.safetensors``."""
    if path.is_file():
        return [path]
    main = path / f"{stem}.safetensors"
    if not main.is_file():
        return []
    return [main] + [f for suffix in PARTS.values() if (f := path / f"{stem}-{suffix}.safetensors").is_file()]


def read_weights(path: str | os.PathLike, stem: str = "model") -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and metadata of a checkpoint folder's ``stem`` files (or of one .safetensors file)."""
    from safetensors import SafetensorError, safe_open

    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"checkpoint not found: {p}")
    files = _weight_files(p, stem)
    if not files:
        raise CheckpointError(f"{p}: no {stem}.safetensors in this folder (is it a glyphsr checkpoint?)")
    state: dict[str, torch.Tensor] = {}
    origin: dict[str, Path] = {}  # key -> the file that holds it
    meta: dict | None = None
    for f in files:
        try:
            with safe_open(str(f), framework="pt") as h:
                m = (h.metadata() or {}).get(META_KEY)
                keys = list(h.keys())
                twice = sorted(k for k in keys if k in origin)
                if twice:
                    others = sorted({origin[k].name for k in twice})
                    raise CheckpointError(
                        f"{p}: {f.name} holds {len(twice)} tensors that {' and '.join(others)} holds too "
                        f"({', '.join(twice[:3])}{', ...' if len(twice) > 3 else ''}); each tensor belongs in one "
                        f"file: move the one that is a stray copy out of the folder")
                for k in keys:
                    state[k] = h.get_tensor(k)
                    origin[k] = f
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{f}: not a readable safetensors file ({exc})") from None
        if m is None:
            raise CheckpointError(f"{f}: no glyphsr metadata (not written by sr-train)")
        try:
            m = json.loads(m)
        except json.JSONDecodeError:
            raise CheckpointError(f"{f}: corrupt glyphsr metadata") from None
        if meta is not None and m != meta:
            raise CheckpointError(f"{p}: {files[0].name} and {f.name} carry different metadata (parts of two "
                                  "different exports?); export the checkpoint again")
        meta = m
    return state, meta


def read_meta(path: str | os.PathLike, stem: str = "model") -> dict:
    """The metadata of a checkpoint folder's ``stem`` files without reading their tensors (the first file's: the
    parts carry the same, which :func:`read_weights` checks)."""
    from safetensors import SafetensorError, safe_open

    p = Path(path)
    files = _weight_files(p, stem) if p.exists() else []
    if not files:
        raise CheckpointError(f"checkpoint not found: {p}" if not p.exists() else
                              f"{p}: no {stem}.safetensors in this folder (is it a glyphsr checkpoint?)")
    try:
        with safe_open(str(files[0]), framework="pt") as h:
            m = (h.metadata() or {}).get(META_KEY)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{files[0]}: not a readable safetensors file ({exc})") from None
    if m is None:
        raise CheckpointError(f"{files[0]}: no glyphsr metadata (not written by sr-train)")
    try:
        return json.loads(m)
    except json.JSONDecodeError:
        raise CheckpointError(f"{files[0]}: corrupt glyphsr metadata") from None


def model_config(meta: dict) -> SRConfig:
    """The network's configuration from checkpoint metadata, with the TPG built without pretrained weights (the
    checkpoint holds the fine-tuned ones)."""
    try:
        cfg = SRConfig.from_dict(meta["config"]["model"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint metadata has no usable model configuration ({exc})") from None
    return dataclasses.replace(cfg, tpg_pretrained=False, tpg_weights=None)


def load_state(model: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or shapes:
        parts = []
        for what, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
            if keys:
                parts.append(f"{len(keys)} {what} ({', '.join(keys[:4])}{', ...' if len(keys) > 4 else ''})")
        raise CheckpointError(f"{where} does not fit the network its configuration describes: {'; '.join(parts)}")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu", ema: bool = False
               ) -> tuple[GlyphSRNet, dict]:
    """Rebuild the network from a checkpoint (folder, one .safetensors file, or a shipped name's folder) in eval
    mode on ``device``; ``ema`` loads the EMA weights. Returns (model, metadata)."""
    state, meta = read_weights(path, "ema" if ema else "model")
    model = build_model(model_config(meta))
    load_state(model, state, str(path))
    return model.to(device).eval(), meta


def has_ema(path: str | os.PathLike) -> bool:
    p = Path(path)
    return p.is_dir() and bool(_weight_files(p, "ema"))


def read_resume(path: str | os.PathLike) -> dict:
    p = Path(path) / "state.pt"
    if not p.is_file():
        raise CheckpointError(f"{path}: no resume state (state.pt); weights alone cannot continue a run exactly")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same error to a user
        raise CheckpointError(f"{p}: corrupt resume state ({type(exc).__name__}: {exc})") from None
