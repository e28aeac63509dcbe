"""The mask store's life in ``gem-extract``, on the client: provenance, create or check and resume, record each
finished shard, and the totals once the job ends.

Only the client writes the store's attributes and its ``done`` record: the reasons of a shard first, then
``done[s] = 1``, so a shard marked done is complete. A store is resumed only when it was made from the same LMDB
contents, sample count, shard size, GEM configuration and coverage mode (:func:`glyphsr.data.mask_store.identity`,
which ``sr-train`` checks too, through :func:`glyphsr.data.mask_store.check_store_source`). The layout itself is
:mod:`glyphsr.data.mask_store`'s.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from glyphsr._version import code_version
from glyphsr.data.mask_store import (
    NAMESPACE,
    SCHEMA_VERSION,
    STATUS_FAILED,
    STATUS_NO_GLYPH,
    STATUS_OK,
    STATUS_PENDING,
    MaskStore,
    StoreError,
    create_store,
    identity,
    identity_mismatch,
    is_mask_store,
)
from glyphsr.data.textzoom import TextZoomLMDB


def build_meta(ds: TextZoomLMDB, n: int, config, native: bool = True) -> dict:
    """The store's provenance attributes for GEM ``config`` (a GEMConfig) over the first ``n`` records of ``ds``."""
    cfg = json.loads(json.dumps(config.to_dict()))  # as the attributes will hold it (tuples become lists)
    return {"source": {"path": str(Path(ds.path).resolve()), "num_samples": len(ds), "count": n,
                       "fingerprint": ds.fingerprint()},
            "config": cfg, "segmenter": cfg["segmenter"], "attention": cfg["attention"], "native_coverage": native,
            "code_version": code_version()}


def prepare_store(out: Path, meta: dict, n: int, shard_size: int, overwrite: bool) -> MaskStore:
    """Create the store, or reopen it for resuming after checking it was made from the same input and config."""
    if out.exists():
        if not is_mask_store(out):
            if out.is_dir() and not any(out.iterdir()):
                out.rmdir()
            else:
                raise StoreError(f"{out} exists and is not a glyphsr mask store; choose another --out "
                                 "(--overwrite only replaces mask stores)")
        elif overwrite:
            shutil.rmtree(out)
        else:
            store = MaskStore.open(out, mode="r+")
            new = identity({**meta, "schema_version": SCHEMA_VERSION, "shard_size": shard_size})
            diff = identity_mismatch(identity(store.meta), new)
            if diff:
                raise StoreError(f"{out} was made differently: {diff} differ. Use --overwrite to replace it, or "
                                 "another --out")
            return store
    out.parent.mkdir(parents=True, exist_ok=True)
    create_store(out, n, shard_size, meta, max_chars=int(meta["config"]["max_chars"]))
    return MaskStore.open(out, mode="r+")


def record_shard(store: MaskStore, stats: dict, reasons: dict[str, str]) -> None:
    """A finished shard: its reasons into the attributes (``reasons`` accumulates them), then mark it done."""
    if stats["reasons"]:
        reasons.update(stats["reasons"])
        meta = store.meta
        meta["reasons"] = reasons
        store.root.attrs[NAMESPACE] = meta
    store.root["done"][stats["shard"]] = 1


def finish_store(store: MaskStore, last_run: dict, ran: bool) -> dict:
    """Totals over the whole store (earlier runs included) and ``last_run``, this run's figures, into its
    attributes; returns them. ``ran``: whether this run processed any shard (when not, the figures of the run
    that did are kept)."""
    status = store.status()
    complete = bool(store.done().all())
    summary = {"images": int(len(status)), "ok": int((status == STATUS_OK).sum()),
               "failed": int((status == STATUS_FAILED).sum()), "no_glyph": int((status == STATUS_NO_GLYPH).sum()),
               "pending": int((status == STATUS_PENDING).sum()) if not complete else 0, "last_run": last_run}
    meta = store.meta
    if not ran and "summary" in meta:
        summary["last_run"] = meta["summary"].get("last_run")
    meta["complete"] = complete
    meta["summary"] = summary
    store.root.attrs[NAMESPACE] = meta
    return summary
