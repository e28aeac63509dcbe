"""The task of ``gem-extract``: one shard of the mask store, extracted and written by a worker process.

:func:`run_shard` is a plain function of a :class:`ShardJob`: a Dask worker runs it, and so does a plain loop or a
test, without any cluster. It reads its records from the LMDB, runs
:class:`~glyphsr.gem.extractor.GlyphExtractor`, writes whole shards of every store array itself and returns only
small statistics and the reasons of unusual records.

The extractor (CRNN, SAM) is built once per worker process, inside the first task that needs it (a worker plugin
would load it on the event-loop thread and stall heartbeats), and reused; it never crosses the graph. A task is
idempotent (same shard, same bytes), so retries, a worker killed mid-task and an orphaned task of an interrupted
run are all harmless.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

import numpy as np

from glyphsr.data.mask_store import MASK_SIZE, MAX_CHARS, STATUS_FAILED, STATUS_NO_GLYPH, STATUS_OK, write_shard
from glyphsr.data.textzoom import NotTextZoomError, TextZoomError, TextZoomLMDB, textzoom_resize


@dataclass(frozen=True)
class ShardJob:
    """One task: samples ``start:stop`` (0-based; LMDB indices start + 1 ..) of shard ``shard``."""

    lmdb: str
    store: str
    shard: int
    start: int
    stop: int
    config: dict  # GEMConfig.to_dict(); device "auto" = CUDA when the worker sees a GPU
    native: bool = True  # measure text coverage on the native-size HR image
    threads: int = 1  # torch intra-op threads in the worker


_EXTRACTOR: dict[str, object] = {}  # per worker process: config key -> GlyphExtractor


def worker_extractor(config: dict, threads: int) -> tuple[object, bool]:
    """The process's extractor for ``config``, built on first use and reused by every later task; and whether
    this call built it (the job's statistics count builds per process)."""
    key = json.dumps(config, sort_keys=True)
    ex = _EXTRACTOR.get(key)
    if ex is not None:
        return ex, False
    import torch

    from glyphsr.gem.extractor import GEMConfig, GlyphExtractor

    torch.set_num_threads(max(1, threads))
    cfg = dict(config)
    if cfg.get("device", "auto") == "auto":
        cfg["device"] = "cuda" if torch.cuda.is_available() else "cpu"
    _EXTRACTOR.clear()  # one configuration per process: a new one replaces the old model
    ex = _EXTRACTOR[key] = GlyphExtractor(GEMConfig.from_dict(cfg))
    return ex, True


def run_shard(job: ShardJob) -> dict:
    """Extract and write one shard; returns its statistics (a small dict)."""
    import zarr

    t0 = time.perf_counter()
    n = job.stop - job.start
    L = int(job.config.get("max_chars", MAX_CHARS))
    h, w = MASK_SIZE
    hr = np.zeros((n, h, w, 3), np.uint8)
    char = np.zeros((n, L, h, w), np.uint8)
    line = np.zeros((n, 1, h, w), np.uint8)
    scores = np.zeros((n, L), np.float32)
    status = np.full(n, STATUS_FAILED, np.uint8)
    reasons: dict[str, str] = {}
    rows, labels, natives = [], [], []
    ds = TextZoomLMDB(job.lmdb)
    try:
        for j in range(n):
            try:
                rec = ds.read_raw(job.start + j + 1)
            except NotTextZoomError:  # the file itself is damaged: the shard fails, with the message, and is retried
                raise
            except TextZoomError as exc:
                reasons[str(job.start + j)] = exc.reason
                continue
            hr[j] = textzoom_resize(rec.hr)
            rows.append(j)
            labels.append(rec.label)
            natives.append(np.asarray(rec.hr))
    finally:
        ds.close()
    t_read = time.perf_counter() - t0
    built = False
    if rows:
        ex, built = worker_extractor(job.config, job.threads)
        bs = ex.config.batch_size
        for a in range(0, len(rows), bs):
            sel = np.array(rows[a:a + bs])
            res = ex.extract(hr[sel], labels[a:a + bs], native=natives[a:a + bs] if job.native else None)
            char[sel], line[sel], scores[sel], status[sel] = res.char, res.line, res.scores, res.status
            for k, r in zip(sel, res.reasons):
                if r:
                    reasons[str(job.start + int(k))] = r
    t_extract = time.perf_counter() - t0 - t_read
    root = zarr.open_group(job.store, mode="r+")
    write_shard(root, job.start, hr, char, line, status, scores)
    chosen = char.reshape(n, L, -1).any(axis=2)
    return {
        "shard": job.shard, "n": n, "ok": int((status == STATUS_OK).sum()),
        "failed": int((status == STATUS_FAILED).sum()), "no_glyph": int((status == STATUS_NO_GLYPH).sum()),
        "score_sum": float(scores[chosen].sum()), "score_n": int(chosen.sum()), "reasons": reasons,
        "seconds": {"read": t_read, "extract": t_extract, "write": time.perf_counter() - t0 - t_read - t_extract},
        "pid": os.getpid(), "built_extractor": built,
    }
