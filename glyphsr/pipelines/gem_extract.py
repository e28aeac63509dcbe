"""``gem-extract --lmdb DIR --out STORE.zarr``: GEM over a TextZoom LMDB as a Dask job, into a mask store.

How the job is cut and run:
- one task per shard of the store (``--shard-size`` samples): it reads its records from the LMDB, runs
  :class:`~glyphsr.gem.extractor.GlyphExtractor`, writes whole shards of every array itself and returns only
  small statistics and the reasons of unusual records;
- the extractor (CRNN, SAM) is built once per worker process, inside the first task that needs it (a worker
  plugin would load it on the event-loop thread and stall heartbeats), and reused; it never crosses the graph;
- only this client writes the store's attributes and its ``done`` record: the reasons of a shard first, then
  ``done[s] = 1``, so a shard marked done is complete. Rerunning the command processes only shards not marked
  done; a different LMDB (fingerprint), sample count, shard size or GEM configuration refuses to resume;
- tasks are idempotent (same shard, same bytes), so Dask's retries, a worker killed mid-task and an orphaned
  task of an interrupted run are all harmless.

The store's layout is documented in :mod:`glyphsr.data.mask_store`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import click
import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from glyphsr._version import code_version
from glyphsr.data.mask_store import (
    MASK_SIZE,
    NAMESPACE,
    SCHEMA_VERSION,
    STATUS_FAILED,
    STATUS_NO_GLYPH,
    STATUS_OK,
    MaskStore,
    StoreError,
    create_store,
    identity,
    identity_mismatch,
    is_mask_store,
    n_shards,
    write_shard,
)
from glyphsr.data.textzoom import NotTextZoomError, TextZoomError, TextZoomLMDB
from glyphsr.pipelines._cli import console, fail, report

#: Default samples per task and per store shard; chosen from bench/bench_gem_extract.py (docs/benchmarks.md).
DEFAULT_SHARD = 256


# -- the task ----------------------------------------------------------------------------------------------------
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
_BUILDS = [0]  # extractors built in this process (a worker builds one per configuration, tasks reuse it)


def worker_extractor(config: dict, threads: int):
    """The process's extractor for ``config``, built on first use (one per process, reused by every task)."""
    key = json.dumps(config, sort_keys=True)
    ex = _EXTRACTOR.get(key)
    if ex is None:
        import torch

        from glyphsr.gem.extractor import GEMConfig, GlyphExtractor

        torch.set_num_threads(max(1, threads))
        cfg = dict(config)
        if cfg.get("device", "auto") == "auto":
            cfg["device"] = "cuda" if torch.cuda.is_available() else "cpu"
        _EXTRACTOR.clear()
        ex = _EXTRACTOR[key] = GlyphExtractor(GEMConfig.from_dict(cfg))
        _BUILDS[0] += 1
    return ex


def run_shard(job: ShardJob) -> dict:
    """Extract and write one shard; returns its statistics (a small dict)."""
    import zarr
    from PIL import Image

    t0 = time.perf_counter()
    n = job.stop - job.start
    L = int(job.config.get("max_chars", 15))
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
            except TextZoomError as exc:
                reasons[str(job.start + j)] = exc.reason
                continue
            hr[j] = np.asarray(rec.hr.resize((w, h), Image.BICUBIC))
            rows.append(j)
            labels.append(rec.label)
            natives.append(np.asarray(rec.hr))
    finally:
        ds.close()
    t_read = time.perf_counter() - t0
    if rows:
        ex = worker_extractor(job.config, job.threads)
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
        "pid": os.getpid(),
    }


# -- the store on the client -------------------------------------------------------------------------------------
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
    create_store(out, n, shard_size, meta, max_chars=int(meta["config"].get("max_chars", 15)))
    return MaskStore.open(out, mode="r+")


def _record(store: MaskStore, stats: dict, reasons: dict[str, str]) -> None:
    """Client side of a finished shard: its reasons into the attributes, then mark it done."""
    if stats["reasons"]:
        reasons.update(stats["reasons"])
        meta = store.meta
        meta["reasons"] = reasons
        store.root.attrs[NAMESPACE] = meta
    store.root["done"][stats["shard"]] = 1


# -- the cluster -------------------------------------------------------------------------------------------------
def visible_gpus() -> list[str]:
    """Ids to put in each GPU worker's CUDA_VISIBLE_DEVICES: the ones this process sees."""
    try:
        import torch

        count = torch.cuda.device_count()
    except Exception:
        return []
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [x.strip() for x in env.split(",") if x.strip()] if env else [str(i) for i in range(count)]
    return ids[:count]


def local_cluster(workers: int | None, gpus: list[str], dashboard: str, memory_limit: str = "auto"):
    """GPUs: one worker process per GPU pinned with CUDA_VISIBLE_DEVICES, resources GPU=1, one thread.
    Otherwise ``workers`` (default: one per core) single-threaded CPU worker processes."""
    from distributed import LocalCluster, Nanny, Scheduler, SpecCluster

    if gpus:
        specs = {f"gpu-{g}": {"cls": Nanny, "options": {
            "nthreads": 1, "env": {"CUDA_VISIBLE_DEVICES": g}, "resources": {"GPU": 1},
            "memory_limit": memory_limit, "silence_logs": logging.ERROR}} for g in gpus}
        return SpecCluster(workers=specs, scheduler={"cls": Scheduler, "options": {"dashboard_address": dashboard}},
                           silence_logs=logging.ERROR)
    n = workers or os.cpu_count() or 1
    return LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=dashboard,
                        memory_limit=memory_limit, silence_logs=logging.ERROR)


# -- the job -----------------------------------------------------------------------------------------------------
@dataclass
class JobResult:
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

    @property
    def images_per_s(self) -> float:
        done = self.ok + self.failed + self.no_glyph
        return done / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return {"images": self.n, "shards_run": self.shards_run, "ok": self.ok, "failed": self.failed,
                "no_glyph": self.no_glyph,
                "mean_char_score": self.score_sum / self.score_n if self.score_n else None,
                "seconds": round(self.seconds, 2), "images_per_s": round(self.images_per_s, 1),
                "task_seconds": {k: round(v, 2) for k, v in self.task_seconds.items()},
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
        _record(store, stats, reasons)
        result.ok += stats["ok"]
        result.failed += stats["failed"]
        result.no_glyph += stats["no_glyph"]
        result.score_sum += stats["score_sum"]
        result.score_n += stats["score_n"]
        for k, v in stats["seconds"].items():
            result.task_seconds[k] += v
        if on_progress:
            on_progress(stats["n"])
    result.seconds = time.perf_counter() - t0
    status = store.status()
    result.failed_records = {int(k): v for k, v in reasons.items() if status[int(k)] == STATUS_FAILED}
    return result


def finish_store(store: MaskStore, result: JobResult) -> dict:
    """Totals over the whole store (earlier runs included) into its attributes; returns them."""
    status = store.status()
    complete = bool(store.done().all())
    summary = {"images": int(len(status)), "ok": int((status == STATUS_OK).sum()),
               "failed": int((status == STATUS_FAILED).sum()), "no_glyph": int((status == STATUS_NO_GLYPH).sum()),
               "pending": int((status == 0).sum()) if not complete else 0, "last_run": result.as_dict()}
    meta = store.meta
    if result.shards_run == 0 and "summary" in meta:  # nothing ran: keep the figures of the run that did
        summary["last_run"] = meta["summary"].get("last_run")
    meta["complete"] = complete
    meta["summary"] = summary
    store.root.attrs[NAMESPACE] = meta
    return summary


# -- checks before any cluster starts ------------------------------------------------------------------------------
class BadInput(click.ClickException):
    """A usage problem found before any work starts (exit status 2)."""

    exit_code = 2


def check_checkpoint(path: str, what: str, build) -> None:
    """Fail before any cluster starts when a checkpoint is missing, unreadable or made for another model."""
    from glyphsr.recognizers.checkpoints import verify_weights

    try:
        verify_weights(path, what, build)
    except (FileNotFoundError, ValueError) as exc:
        raise BadInput(str(exc)) from None


def resolve_segmenter(segmenter: str, sam_checkpoint: str | None) -> str:
    if segmenter == "auto":
        return "sam" if sam_checkpoint else "classical"
    if segmenter == "sam" and not sam_checkpoint:
        raise BadInput("--segmenter sam needs --sam-checkpoint PATH (or GLYPHSR_SAM_CHECKPOINT)")
    return segmenter


# -- command line ------------------------------------------------------------------------------------------------
def _summary_table(result: JobResult, total: dict) -> Table:
    t = Table(title="gem-extract", show_edge=False)
    for c in ("", "images", "ok", "failed", "no glyph", "mean char score", "wall time", "images/s"):
        t.add_column(c, justify="right")
    score = f"{result.score_sum / result.score_n:.3f}" if result.score_n else "-"
    done = result.ok + result.failed + result.no_glyph
    t.add_row("this run", f"{done:,}", f"{result.ok:,}", f"{result.failed:,}", f"{result.no_glyph:,}", score,
              f"{result.seconds:.1f} s", f"{result.images_per_s:.1f}")
    t.add_row("store", f"{total['images']:,}", f"{total['ok']:,}", f"{total['failed']:,}", f"{total['no_glyph']:,}",
              "", "", "")
    return t


def _run_on_cluster(store: MaskStore, lmdb: str, cfg: dict, native: bool, scheduler: str | None,
                    workers: int | None, gpu_list: list[str] | None, dashboard: str, retries: int) -> JobResult:
    """Start (or connect to) the cluster, run the pending shards under a progress bar, shut down."""
    from distributed import Client

    cluster = None
    if scheduler:
        import dask

        try:
            client = Client(scheduler, timeout=dask.config.get("distributed.comm.timeouts.connect"))
        except (OSError, TimeoutError) as exc:
            raise BadInput(f"cannot connect to the Dask scheduler at {scheduler}: {exc}") from None
        info = client.scheduler_info()["workers"]
        if not info:
            client.close()
            raise BadInput(f"the Dask scheduler at {scheduler} has no workers")
        resources = {"GPU": 1} if any(w.get("resources", {}).get("GPU") for w in info.values()) else None
        where, threads = f"{len(info)} workers at {scheduler}", 1
    else:
        if gpu_list is None:
            gpu_list = visible_gpus()
        cluster = local_cluster(workers, gpu_list, dashboard)
        client = Client(cluster)
        resources = {"GPU": 1} if gpu_list else None
        n_procs = len(gpu_list) if gpu_list else (workers or os.cpu_count() or 1)
        threads = 1 if gpu_list else max(1, (os.cpu_count() or 1) // n_procs)
        where = f"{n_procs} {'GPU' if gpu_list else 'CPU'} workers"
    console.print(f"cluster: {where}, dashboard {client.dashboard_link}", soft_wrap=True)
    columns = (TextColumn("[bold]GEM[/]"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]} img/s"), TimeElapsedColumn(), TextColumn("ETA"),
               TimeRemainingColumn())
    n, s = len(store), store.shard_size
    todo = sum(min(n, (k + 1) * s) - k * s for k in np.flatnonzero(~store.done()))
    t_start = time.perf_counter()
    try:
        with Progress(*columns, console=console) as bar:
            tid = bar.add_task("images", total=todo, rate="-")

            def advance(k: int) -> None:
                bar.advance(tid, k)
                rate = bar.tasks[0].completed / max(time.perf_counter() - t_start, 1e-9)
                bar.update(tid, rate=f"{rate:.1f}")

            return run_job(client, store, lmdb, cfg, native=native, threads=threads, resources=resources,
                           retries=retries, on_progress=advance)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--lmdb", "lmdb_path", required=True, type=click.Path(), help="TextZoom-format LMDB (HR images).")
@click.option("--out", required=True, type=click.Path(), help="Mask store to write (a .zarr folder).")
@click.option("--shard-size", default=DEFAULT_SHARD, show_default=True, type=click.IntRange(min=1),
              help="Samples per task and per store shard.")
@click.option("--limit", default=None, type=click.IntRange(min=1), help="Only the first N records.")
@click.option("--workers", default=None, type=click.IntRange(min=1),
              help="CPU worker processes of the local cluster [default: one per core].")
@click.option("--gpus", default=None,
              help="Comma-separated GPU ids, one worker each [default: every visible GPU]; 'none' for CPU workers.")
@click.option("--scheduler", default=None, help="Use an existing Dask cluster (tcp://HOST:PORT); its workers "
              "need glyphsr installed.")
@click.option("--dashboard", default=":8787", show_default=True, help="Dashboard address of the local cluster.")
@click.option("--segmenter", type=click.Choice(["auto", "classical", "sam"]), default="auto", show_default=True,
              help="auto: SAM when a checkpoint is given, the classical segmenter otherwise.")
@click.option("--sam-checkpoint", default=None, envvar="GLYPHSR_SAM_CHECKPOINT", type=click.Path(),
              help="Segment Anything checkpoint [env GLYPHSR_SAM_CHECKPOINT].")
@click.option("--sam-model", type=click.Choice(["vit_b", "vit_l", "vit_h"]), default="vit_h", show_default=True)
@click.option("--attention", type=click.Choice(["ctc", "stt"]), default="ctc", show_default=True,
              help="ctc: EasyOCR's CRNN (offline); stt: the Scene Text Telescope transformer (the paper's).")
@click.option("--stt-checkpoint", default=None, type=click.Path(), help="pretrain_transformer.pth for --attention stt.")
@click.option("--dtype", type=click.Choice(["auto", "float32", "bfloat16"]), default="auto", show_default=True)
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1))
@click.option("--coverage", type=click.Choice(["native", "resized"]), default="native", show_default=True,
              help="Measure text coverage on the native-size HR image (the better masks) or on the 128x32 one.")
@click.option("--retries", default=2, show_default=True, type=click.IntRange(min=0), help="Retries per task.")
@click.option("--overwrite", is_flag=True, help="Replace an existing mask store at --out instead of resuming it.")
@click.option("--skip-bad", is_flag=True, help="Exit 0 even when some records could not be read.")
def main(lmdb_path: str, out: str, shard_size: int, limit: int | None, workers: int | None, gpus: str | None,
         scheduler: str | None, dashboard: str, segmenter: str, sam_checkpoint: str | None, sam_model: str,
         attention: str, stt_checkpoint: str | None, dtype: str, batch_size: int, coverage: str, retries: int,
         overwrite: bool, skip_bad: bool) -> None:
    """Extract glyph masks (GEM) for every HR image of a TextZoom LMDB into an OME-Zarr mask store, on Dask.

    Rerun the same command after an interruption to finish only what is missing. Exit status: 0 done, 1 some
    records failed (unless --skip-bad) or some tasks did not finish (rerun to retry them), 2 bad arguments."""
    from glyphsr.gem.extractor import GEMConfig

    try:
        ds = TextZoomLMDB(lmdb_path)
    except NotTextZoomError as exc:
        fail(str(exc))
    n = len(ds) if limit is None else min(limit, len(ds))
    seg = resolve_segmenter(segmenter, sam_checkpoint)
    if seg == "sam":
        from segment_anything import sam_model_registry

        check_checkpoint(sam_checkpoint, f"SAM {sam_model}", lambda: sam_model_registry[sam_model](checkpoint=None))
    if attention == "stt":
        if not stt_checkpoint:
            fail("--attention stt needs --stt-checkpoint PATH (pretrain_transformer.pth)")
        from glyphsr.gem.stt import STTTransformer

        check_checkpoint(stt_checkpoint, "the Scene Text Telescope transformer", STTTransformer)
    cfg = GEMConfig(attention=attention, stt_checkpoint=_abs(stt_checkpoint), segmenter=seg,
                    sam_checkpoint=_abs(sam_checkpoint) if seg == "sam" else None, sam_model=sam_model,
                    device="auto", dtype=dtype, batch_size=batch_size)
    console.print(f"fingerprinting {lmdb_path} ...", end=" ")
    meta = build_meta(ds, n, cfg, native=coverage == "native")
    console.print("done")
    ds.close()
    try:
        store = prepare_store(Path(out), meta, n, shard_size, overwrite)
    except StoreError as exc:
        fail(str(exc))
    cfg = meta["config"]
    pending = int((~store.done()).sum())
    total_shards = n_shards(n, shard_size)
    if 0 < pending < total_shards:
        console.print(f"resuming {out}: {total_shards - pending} of {total_shards} shards already done",
                      soft_wrap=True)

    gpu_list = [] if gpus == "none" else ([g.strip() for g in gpus.split(",") if g.strip()] if gpus else None)
    if n == 0:
        console.print(f"{lmdb_path} has no records: {out} is an empty store", soft_wrap=True)
        result = JobResult(n=0, shards_run=0)
    elif pending == 0:
        console.print(f"{out} is complete: nothing to run (--overwrite to extract again)", soft_wrap=True)
        result = JobResult(n=n, shards_run=0)
    else:
        console.print(f"GEM: attention {attention}, segmenter {seg}; {n:,} images in {total_shards} shards of "
                      f"{shard_size}; {pending} to run", soft_wrap=True)
        try:
            result = _run_on_cluster(store, str(Path(lmdb_path).resolve()), cfg, coverage == "native", scheduler,
                                     workers, gpu_list, dashboard, retries)
        except KeyboardInterrupt:
            done = int(store.done().sum())
            console.print(f"\n[yellow]interrupted[/]: {done} of {total_shards} shards are complete in {out}; rerun "
                          "the same command to finish the rest", soft_wrap=True)
            sys.exit(130)
    total = finish_store(store, result)
    report.print(_summary_table(result, total))
    if result.failed_records:
        shown = sorted(result.failed_records.items())[:20]
        report.print(f"[red]{len(result.failed_records)} record(s) failed[/] (status 2 in the store, reasons in its "
                     f"'{NAMESPACE}.reasons' attribute):", soft_wrap=True)
        for k, why in shown:
            report.print(f"  LMDB index {k + 1}: {why}", soft_wrap=True)
        if len(result.failed_records) > len(shown):
            report.print(f"  ... and {len(result.failed_records) - len(shown)} more")
    if result.shard_errors:
        for k, why in sorted(result.shard_errors.items()):
            console.print(f"[red]shard {k} did not finish[/]: {why}", soft_wrap=True)
        console.print("rerun the same command to retry the unfinished shards")
    report.print(f"wrote {out}" + ("" if total["pending"] == 0 else f" ({total['pending']:,} images pending)"),
                 soft_wrap=True)
    sys.exit(1 if result.shard_errors or (result.failed_records and not skip_bad) else 0)


def _abs(p: str | None) -> str | None:
    return str(Path(p).resolve()) if p else None


if __name__ == "__main__":
    main()
