"""The driver of ``gem-extract``: plan the shards not marked done, map :func:`~glyphsr.pipelines.gem_task.run_shard`
over them on a Dask client, and record each as it finishes (:func:`~glyphsr.pipelines.gem_store.record_shard`).

A shard whose task fails stays pending (a rerun retries it); the job goes on with the rest.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from glyphsr.data.mask_store import STATUS_FAILED, MaskStore, n_shards
from glyphsr.pipelines.gem_store import record_shard
from glyphsr.pipelines.gem_task import ShardJob, run_shard


@dataclass
class JobResult:
    """This run's statistics (earlier runs of a resumed store are not counted)."""

    n: int
    shards_run: int
    ok: int = 0
    failed: int = 0
    no_glyph: int = 0
    score_sum: float = 0.0
    score_n: int = 0
    seconds: float = 0.0
    task_seconds: dict[str, float] = field(default_factory=lambda: {"read": 0.0, "extract": 0.0, "write": 0.0})
    shard_errors: dict[int, str] = field(default_factory=dict)
    failed_records: dict[int, str] = field(default_factory=dict)
    #: per worker process (pid): tasks finished and extractors built (one per process is the design: a model
    #: load per task would show here)
    processes: dict[int, dict[str, int]] = field(default_factory=dict)

    @property
    def images_per_s(self) -> float:
        done = self.ok + self.failed + self.no_glyph
        return done / self.seconds if self.seconds > 0 else 0.0

    def add(self, stats: dict) -> None:
        """Count a finished task's statistics (the dict :func:`run_shard` returns)."""
        for k in ("ok", "failed", "no_glyph", "score_sum", "score_n"):
            setattr(self, k, getattr(self, k) + stats[k])
        for k, v in stats["seconds"].items():
            self.task_seconds[k] += v
        proc = self.processes.setdefault(stats["pid"], {"tasks": 0, "extractor_builds": 0})
        proc["tasks"] += 1
        proc["extractor_builds"] += int(stats["built_extractor"])

    def as_dict(self) -> dict:
        return {"images": self.n, "shards_run": self.shards_run, "ok": self.ok, "failed": self.failed,
                "no_glyph": self.no_glyph,
                "mean_char_score": self.score_sum / self.score_n if self.score_n else None,
                "seconds": round(self.seconds, 2), "images_per_s": round(self.images_per_s, 1),
                "task_seconds": {k: round(v, 2) for k, v in self.task_seconds.items()},
                "worker_processes": len(self.processes),
                "extractor_builds": sum(p["extractor_builds"] for p in self.processes.values()),
                "shard_errors": {str(k): v for k, v in self.shard_errors.items()}}


def run_job(client, store: MaskStore, lmdb: str, config: dict, *, native: bool = True, threads: int = 1,
            resources: dict | None = None, retries: int = 2, task: Callable[[ShardJob], dict] = run_shard,
            on_progress: Callable[[int], None] | None = None) -> JobResult:
    """Submit every shard not marked done, record each as it finishes. Returns the statistics of this run."""
    from distributed import as_completed

    n, s = len(store), store.shard_size
    done = store.done()
    pending = [k for k in range(n_shards(n, s)) if not done[k]]
    tag = store.meta["source"]["fingerprint"][:8]
    jobs = [ShardJob(lmdb, str(store.path), k, k * s, min(n, (k + 1) * s), config, native, threads) for k in pending]
    result = JobResult(n=n, shards_run=len(jobs))
    reasons = {str(k): v for k, v in store.meta.get("reasons", {}).items()}
    t0 = time.perf_counter()
    futures = [client.submit(task, j, key=f"gem-shard-{tag}-{j.shard}", retries=retries, resources=resources,
                             pure=False) for j in jobs]
    by_key = {f.key: j for f, j in zip(futures, jobs)}
    for fut in as_completed(futures):
        job = by_key[fut.key]
        try:
            stats = fut.result()
        except Exception as exc:  # the shard stays pending; a rerun retries it
            result.shard_errors[job.shard] = f"{type(exc).__name__}: {exc}"
            if on_progress:
                on_progress(job.stop - job.start)
            continue
        record_shard(store, stats, reasons)
        result.add(stats)
        if on_progress:
            on_progress(stats["n"])
    result.seconds = time.perf_counter() - t0
    status = store.status()
    result.failed_records = {int(k): v for k, v in reasons.items() if status[int(k)] == STATUS_FAILED}
    return result
