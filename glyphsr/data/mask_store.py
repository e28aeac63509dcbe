"""The mask store: ``gem-extract`` writes it, ``sr-train`` reads it. A Zarr v3 group that is also an OME-NGFF 0.5
image, so napari (napari-ome-zarr), vizarr and neuroglancer show the masks over the HR images.

Sample i (0-based) is LMDB index i + 1; N samples; L = 15 characters (those of the label after the ``all``
filter, in order, spaces excluded; characters past the 15th get no channel).

=====================  ==========================  ===========================================================
path                   dtype, shape                meaning
=====================  ==========================  ===========================================================
``char``               uint8 (N, 15, 32, 128)      1 where character k's glyph is; all zero past the label
``line``               uint8 (N, 1, 32, 128)       1 on the line-level glyph mask
``status``             uint8 (N,)                  0 pending, 1 ok, 2 failed (bad record), 3 no usable glyph
``scores``             float32 (N, 15)             confidence of each chosen character mask, 0 where none
``done``               uint8 (n_shards,)           1 once every array of shard s is written (resume record)
``0``, ``1``           uint8 (N, 3, 32, 128),      the HR images by the TextZoom protocol (bicubic to 128x32),
                       (N, 3, 16, 64)              and area-halved: the OME multiscale image, axes t, c, y, x
``labels/glyphs/0,1``  uint8 (N, 1, 32|16, ...)    label image: 0 background, k = character k (1-based)
``labels/line/0,1``    uint8 (N, 1, 32|16, ...)    label image: the line mask
=====================  ==========================  ===========================================================

Level 1 of the labels follows the glyph ground truth's rule at 16x64 (what the GPM learns from): a pixel is text
when the masks cover at least half of it and belongs to the character covering most of it.

Root attributes: ``ome`` (OME-NGFF 0.5 multiscales and omero rendering; ``labels`` group metadata below) and
``glyphsr``: ``schema_version``, ``source`` (LMDB path, its ``num_samples``, ``count`` = N, ``fingerprint``),
``config`` (the resolved GEM configuration), ``segmenter``, ``attention``, ``shard_size``, ``code_version``,
``created``, ``reasons`` ({sample index: why a record failed or what was unusual}), ``complete`` and, once
complete, ``summary``.

Writing rules (zarr-python cannot write parts of one shard from two processes safely): every array is sharded
along the sample axis with ``shard_size`` samples, a task owns whole shards of every array, and only the client
writes ``done`` and the attributes (reasons first, then ``done[s] = 1``), so a shard marked done is complete.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from glyphsr.data.labels import MAX_CHARS
from glyphsr.data.textzoom import HR_SIZE, LR_SIZE, TextZoomLMDB

MASK_SIZE = HR_SIZE  # masks are at the HR image's size (TextZoom protocol)
LEVEL1_SIZE = LR_SIZE  # the GPM's, half of it
STATUS_PENDING, STATUS_OK, STATUS_FAILED, STATUS_NO_GLYPH = 0, 1, 2, 3
STATUS_NAMES = {STATUS_PENDING: "pending", STATUS_OK: "ok", STATUS_FAILED: "failed", STATUS_NO_GLYPH: "no glyph"}
SCHEMA_VERSION = 1
NAMESPACE = "glyphsr"
AXES = ("t", "c", "y", "x")

#: GEM configuration keys that change where and how fast the masks are computed, not the masks: no part of a
#: store's identity, so a job may resume, and a trainer read the store, on another machine or device.
RUNTIME_KEYS = ("device", "batch_size")

__all__ = ["MASK_SIZE", "MAX_CHARS", "RUNTIME_KEYS", "STATUS_FAILED", "STATUS_NAMES", "STATUS_NO_GLYPH", "STATUS_OK",
           "STATUS_PENDING", "MaskStore", "StoreError", "check_store_source", "create_store", "identity",
           "identity_mismatch", "is_mask_store", "label_levels", "n_shards", "write_shard"]


class StoreError(Exception):
    """A mask store that cannot be used as asked (wrong kind, mismatching provenance, incomplete)."""


# -- OME-NGFF 0.5 metadata ---------------------------------------------------------------------------------------
def _multiscales(name: str) -> list[dict]:
    axes = [{"name": "t", "type": "time"}, {"name": "c", "type": "channel"},
            {"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
    datasets = [
        {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.0, 1.0, 1.0]}]},
        {"path": "1", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.0, 2.0, 2.0]},
                                                    {"type": "translation", "translation": [0.0, 0.0, 0.5, 0.5]}]},
    ]
    return [{"name": name, "axes": axes, "datasets": datasets}]


def _ome_image() -> dict:
    channels = [{"label": lab, "color": col, "active": True, "coefficient": 1.0, "family": "linear",
                 "inverted": False, "window": {"min": 0.0, "max": 255.0, "start": 0.0, "end": 255.0}}
                for lab, col in (("R", "FF0000"), ("G", "00FF00"), ("B", "0000FF"))]
    return {"version": "0.5", "multiscales": _multiscales("hr"),
            "omero": {"channels": channels, "rdefs": {"model": "color", "defaultT": 0, "defaultZ": 0}}}


def _palette(k: int) -> list[int]:
    """A distinct, stable colour per character index (golden-angle hues)."""
    h = (k * 0.618033988749895) % 1.0
    rgb = np.array([abs(h * 6 - 3) - 1, 2 - abs(h * 6 - 2), 2 - abs(h * 6 - 4)]).clip(0, 1)
    return [int(v) for v in (rgb * 200 + 55).round()] + [255]


def _ome_label(name: str, values: list[int], what: str) -> dict:
    return {"version": "0.5", "multiscales": _multiscales(name),
            "image-label": {"colors": [{"label-value": v, "rgba": _palette(v)} for v in values],
                            "properties": [{"label-value": v, "meaning": what.format(v)} for v in values],
                            "source": {"image": "../../"}}}


# -- layout ------------------------------------------------------------------------------------------------------
def n_shards(n: int, shard_size: int) -> int:
    return -(-n // shard_size)


#: Samples per inner chunk of the sharded arrays: 16 writes a shard 2.7x faster than 1 (256 chunk encodes per
#: array are Python overhead) and reads one sample in about 2 ms; it must divide the shard, so gcd(16, shard).
INNER_CHUNK = 16


def _arrays(n: int, s: int, L: int) -> dict[str, dict]:
    """name -> (shape, dtype, inner chunk): every array sharded by ``s`` samples along axis 0."""
    h, w = MASK_SIZE
    h1, w1 = LEVEL1_SIZE
    c = math.gcd(INNER_CHUNK, s)
    return {
        "char": dict(shape=(n, L, h, w), dtype="uint8", chunks=(c, L, h, w)),
        "line": dict(shape=(n, 1, h, w), dtype="uint8", chunks=(c, 1, h, w)),
        "status": dict(shape=(n,), dtype="uint8", chunks=(s,)),
        "scores": dict(shape=(n, L), dtype="float32", chunks=(s, L)),
        "0": dict(shape=(n, 3, h, w), dtype="uint8", chunks=(c, 3, h, w)),
        "1": dict(shape=(n, 3, h1, w1), dtype="uint8", chunks=(c, 3, h1, w1)),
        "labels/glyphs/0": dict(shape=(n, 1, h, w), dtype="uint8", chunks=(c, 1, h, w)),
        "labels/glyphs/1": dict(shape=(n, 1, h1, w1), dtype="uint8", chunks=(c, 1, h1, w1)),
        "labels/line/0": dict(shape=(n, 1, h, w), dtype="uint8", chunks=(c, 1, h, w)),
        "labels/line/1": dict(shape=(n, 1, h1, w1), dtype="uint8", chunks=(c, 1, h1, w1)),
    }


def is_mask_store(path: str | os.PathLike) -> bool:
    """True when ``path`` is a Zarr group carrying this schema's attributes."""
    import zarr

    p = Path(path)
    if not (p / "zarr.json").is_file():
        return False
    try:
        return NAMESPACE in zarr.open_group(p, mode="r").attrs
    except Exception:
        return False


def create_store(path: str | os.PathLike, n: int, shard_size: int, provenance: dict,
                 max_chars: int = MAX_CHARS) -> None:
    """Create an empty store (every sample pending) at ``path``, atomically: built beside it and renamed, so an
    interrupted creation leaves no half-made store. ``provenance`` goes into the ``glyphsr`` attributes."""
    import zarr
    from zarr.codecs import ZstdCodec

    if shard_size < 1:
        raise ValueError(f"shard size must be >= 1, got {shard_size}")
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists")
    tmp = path.with_name(f".{path.name}.creating-{uuid.uuid4().hex[:8]}")
    try:
        root = zarr.open_group(tmp, mode="w", zarr_format=3)
        root.require_group("labels")
        root.require_group("labels/glyphs")
        root.require_group("labels/line")
        for name, spec in _arrays(n, shard_size, max_chars).items():
            chunks = spec["chunks"]
            shards = None if name in ("status", "scores") else (shard_size, *spec["shape"][1:])
            if n == 0:
                chunks, shards = (1, *spec["shape"][1:]), None
            compressors = ZstdCodec(level=3) if spec["dtype"] == "uint8" else "auto"
            root.create_array(name, shape=spec["shape"], dtype=spec["dtype"], chunks=chunks, shards=shards,
                              compressors=compressors, fill_value=0,
                              dimension_names=AXES if name[-1] in "01" else None)
        root.create_array("done", shape=(n_shards(n, shard_size),), dtype="uint8", chunks=(1,), fill_value=0)
        root["labels"].attrs["ome"] = {"version": "0.5", "labels": ["glyphs", "line"]}
        root["labels/glyphs"].attrs["ome"] = _ome_label("glyphs", list(range(1, max_chars + 1)), "character {}")
        root["labels/line"].attrs["ome"] = _ome_label("line", [1], "line mask")
        meta = {"schema_version": SCHEMA_VERSION, "shard_size": shard_size, "max_chars": max_chars,
                "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                "reasons": {}, "complete": False, **provenance}
        root.attrs.update({"ome": _ome_image(), NAMESPACE: meta})
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# -- writing -----------------------------------------------------------------------------------------------------
def label_levels(char: np.ndarray, line: np.ndarray) -> dict[str, np.ndarray]:
    """Label images of both levels from char uint8 (B, L, 32, 128) and line (B, 1, 32, 128)."""
    b, L, h, w = char.shape
    c = char.astype(bool)
    lab0 = np.where(c.any(1), c.argmax(1) + 1, 0).astype(np.uint8)[:, None]
    cov = char.reshape(b, L, h // 2, 2, w // 2, 2).mean(axis=(3, 5), dtype=np.float32)
    lab1 = np.where(cov.sum(1) >= 0.5, cov.argmax(1) + 1, 0).astype(np.uint8)[:, None]
    line1 = (line.reshape(b, 1, h // 2, 2, w // 2, 2).mean(axis=(3, 5), dtype=np.float32) >= 0.5).astype(np.uint8)
    return {"labels/glyphs/0": lab0, "labels/glyphs/1": lab1, "labels/line/0": line.astype(np.uint8),
            "labels/line/1": line1}


def halve_images(hr: np.ndarray) -> np.ndarray:
    """uint8 (B, 3, 32, 128) -> (B, 3, 16, 64) by 2x2 area averaging (rounded)."""
    b, c, h, w = hr.shape
    x = hr.reshape(b, c, h // 2, 2, w // 2, 2).astype(np.uint16).sum(axis=(3, 5))
    return ((x + 2) // 4).astype(np.uint8)


def write_shard(root, start: int, hr: np.ndarray, char: np.ndarray, line: np.ndarray, status: np.ndarray,
                scores: np.ndarray) -> None:
    """Write samples ``start .. start + B`` (a whole shard) of every array. ``root``: the store's zarr group
    opened for writing; hr uint8 (B, 32, 128, 3) (TextZoom protocol), the rest as in the table above."""
    stop = start + len(status)
    hr_t = np.ascontiguousarray(hr.transpose(0, 3, 1, 2))
    data = {"0": hr_t, "1": halve_images(hr_t), "char": char, "line": line, "status": status, "scores": scores,
            **label_levels(char, line)}
    for name, value in data.items():
        root[name][start:stop] = value


# -- reading -----------------------------------------------------------------------------------------------------
def _damaged(path: Path, what: str, overwrite: bool = True) -> StoreError:
    """``overwrite``: whether gem-extract's --overwrite replaces the store (it needs the root metadata readable)."""
    where = "another --out, or --overwrite" if overwrite else "another --out"
    return StoreError(f"{path} is damaged: {what}; run gem-extract again into a new store ({where})")


def _check_arrays(path: Path, root) -> None:
    """Raise StoreError naming the first array that is missing, whose metadata cannot be read, or whose sample
    count disagrees with ``status``'s: a partial copy or a hand-edited store, found before any read fails."""
    import zarr
    from zarr.errors import BaseZarrError

    meta = root.attrs[NAMESPACE]
    shard_size = meta.get("shard_size") if isinstance(meta, dict) else None
    if not isinstance(shard_size, int) or shard_size < 1:
        raise _damaged(path, f"the '{NAMESPACE}' attributes have no valid shard_size ({shard_size!r})")
    n = None
    for name in ("status", *(k for k in _arrays(0, 1, 1) if k != "status"), "done"):
        try:
            arr = root[name]
        except KeyError:
            raise _damaged(path, f"array '{name}' is missing") from None
        except (OSError, ValueError, TypeError, BaseZarrError) as exc:  # JSONDecodeError is a ValueError
            raise _damaged(path, f"{name}/zarr.json cannot be read ({type(exc).__name__}: {exc})") from None
        if not isinstance(arr, zarr.Array) or arr.ndim < 1:
            raise _damaged(path, f"'{name}' is not an array of samples")
        if n is None:
            n = arr.shape[0]
        want = n_shards(n, shard_size) if name == "done" else n
        if arr.shape[0] != want:
            raise _damaged(path, f"array '{name}' has {arr.shape[0]:,} rows, expected {want:,} "
                                 f"({n:,} samples in 'status', shards of {shard_size})")


@dataclass
class MaskStore:
    """Read a mask store (what ``sr-train`` uses): ``MaskStore.open(path)``; arrays are zarr arrays."""

    path: Path
    root: object

    @classmethod
    def open(cls, path: str | os.PathLike, mode: str = "r") -> MaskStore:
        """Open the store at ``path``. Raises StoreError when it is missing, not a mask store, of another schema, or
        damaged (an array missing, its metadata unreadable, or its length not the store's)."""
        import zarr

        p = Path(path)
        if not p.exists():
            raise StoreError(f"{p}: no such mask store")
        if not is_mask_store(p):
            if (p / "zarr.json").is_file():
                try:
                    json.loads((p / "zarr.json").read_bytes())
                except (OSError, ValueError) as exc:
                    raise _damaged(p, f"zarr.json cannot be read ({type(exc).__name__}: {exc})",
                                   overwrite=False) from None
            raise StoreError(f"{p} is not a glyphsr mask store (no Zarr group with '{NAMESPACE}' attributes)")
        root = zarr.open_group(p, mode=mode)
        version = root.attrs[NAMESPACE].get("schema_version")
        if version != SCHEMA_VERSION:
            raise StoreError(f"{p}: mask store schema {version}, this code reads {SCHEMA_VERSION}")
        _check_arrays(p, root)
        return cls(p, root)

    @property
    def meta(self) -> dict:
        return dict(self.root.attrs[NAMESPACE])

    def __len__(self) -> int:
        return int(self.root["status"].shape[0])

    @property
    def shard_size(self) -> int:
        return int(self.meta["shard_size"])

    def done(self) -> np.ndarray:
        return self.root["done"][:].astype(bool)

    def status(self) -> np.ndarray:
        return self.root["status"][:]

    def reasons(self) -> dict[int, str]:
        return {int(k): v for k, v in self.meta.get("reasons", {}).items()}

    def read(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """Samples ``start:stop`` of char, line, status and scores."""
        return {k: self.root[k][start:stop] for k in ("char", "line", "status", "scores")}


# -- provenance ----------------------------------------------------------------------------------------------------
def identity(meta: dict) -> dict:
    """What makes two stores the same from the ``glyphsr`` attributes ``meta``: schema, the source LMDB's
    fingerprint, the sample count, shard size, GEM configuration (less :data:`RUNTIME_KEYS`) and coverage mode."""
    src = meta.get("source", {})
    cfg = meta.get("config")
    return {"schema_version": meta.get("schema_version"), "fingerprint": src.get("fingerprint"),
            "count": src.get("count"), "shard_size": meta.get("shard_size"),
            "config": None if cfg is None else {k: v for k, v in cfg.items() if k not in RUNTIME_KEYS},
            "native_coverage": meta.get("native_coverage")}


_WHAT = {"fingerprint": "the LMDB's contents", "count": "the sample count", "shard_size": "the shard size",
         "config": "the GEM configuration", "schema_version": "the schema", "native_coverage": "the coverage mode"}


def identity_mismatch(store: dict, expected: dict) -> str:
    """Which parts of two identities differ, in words, the store's values named (empty when none differ).
    Only the keys of ``expected`` are compared."""
    parts = []
    for k in expected:
        old, new = store.get(k), expected[k]
        if old == new:
            continue
        if k == "config":
            keys = sorted(c for c in set(old or {}) | set(new or {}) if (old or {}).get(c) != (new or {}).get(c))
            parts.append(f"{_WHAT[k]} (keys: {', '.join(keys)})")
        elif k == "shard_size":
            parts.append(f"{_WHAT[k]} (store: --shard-size {old})")
        elif k == "fingerprint":
            parts.append(f"{_WHAT[k]} (fingerprints: store {str(old)[:12]}, LMDB {str(new)[:12]})")
        else:
            parts.append(f"{_WHAT[k]} (store: {old}, expected: {new})")
    return ", ".join(parts)


def check_store_source(store: MaskStore, lmdb: str | os.PathLike | TextZoomLMDB, *, count: int | None = None,
                       config: dict | None = None, fingerprint: str | None = None) -> None:
    """Raise :class:`StoreError` unless ``store`` holds the masks of ``lmdb``: made from the same contents
    (fingerprint), over ``count`` samples (default: every record of ``lmdb``) and, when ``config`` is given, with
    that GEM configuration (``GEMConfig.to_dict()``; :data:`RUNTIME_KEYS` ignored). The message names what
    differs and what to do. ``fingerprint``: the LMDB's, when the caller has it already (hashing reads it all)."""
    ds = lmdb if isinstance(lmdb, TextZoomLMDB) else TextZoomLMDB(lmdb)
    try:
        expected = {"fingerprint": fingerprint or ds.fingerprint(), "count": len(ds) if count is None else count}
    finally:
        if ds is not lmdb:
            ds.close()
    if config is not None:
        expected["config"] = identity({"config": json.loads(json.dumps(config))})["config"]
    diff = identity_mismatch(identity(store.meta), expected)
    if diff:
        made_from = store.meta.get("source", {}).get("path", "another LMDB")
        raise StoreError(f"{store.path} does not belong to {ds.path}: {diff} differ (the store was made from "
                         f"{made_from}). Give the mask store gem-extract made from this LMDB, or make one: "
                         f"gem-extract --lmdb {ds.path} --out STORE.zarr")
