"""``gem-extract --lmdb DIR --out STORE.zarr``: GEM over a TextZoom LMDB as a Dask job, into a mask store.

This module is the command line: it checks the arguments and checkpoints before any cluster starts, wires the
parts together and reports. The parts, each in its own module:

- :mod:`glyphsr.pipelines.gem_task`: the per-shard task a worker runs (also without a cluster);
- :mod:`glyphsr.pipelines.gem_job`: the driver that maps the task over the pending shards and records them;
- :mod:`glyphsr.pipelines.gem_store`: the store's provenance, creation or resume, and final totals;
- :mod:`glyphsr.pipelines.cluster`: the local cluster (CPU or GPU workers) or an existing scheduler.

The store's layout is documented in :mod:`glyphsr.data.mask_store`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from glyphsr.data.mask_store import NAMESPACE, STATUS_FAILED, MaskStore, StoreError, n_shards
from glyphsr.data.textzoom import NotTextZoomError, TextZoomLMDB
from glyphsr.pipelines._cli import BadInput, console, fail, report
from glyphsr.pipelines.cluster import ClusterError, check_gpus, open_cluster
from glyphsr.pipelines.gem_job import JobResult, run_job
from glyphsr.pipelines.gem_store import build_meta, finish_store, prepare_store

#: Default samples per task and per store shard; chosen from bench/bench_gem_extract.py (docs/benchmarks.md).
DEFAULT_SHARD = 256


# -- checks before any cluster starts ------------------------------------------------------------------------------
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
    columns = (TextColumn("[bold]GEM[/]"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]} img/s"), TimeElapsedColumn(), TextColumn("ETA"),
               TimeRemainingColumn())
    n, s = len(store), store.shard_size
    todo = sum(min(n, (k + 1) * s) - k * s for k in np.flatnonzero(~store.done()))
    try:
        with open_cluster(scheduler=scheduler, workers=workers, gpus=gpu_list, dashboard=dashboard) as c:
            console.print(f"cluster: {c.where}, dashboard {c.client.dashboard_link}", soft_wrap=True)
            if c.gpu:  # a GPU worker that finds no CUDA device fails its tasks rather than run on the CPU
                cfg = {**cfg, "device": "cuda"}
            t_start = time.perf_counter()
            with Progress(*columns, console=console) as bar:
                tid = bar.add_task("images", total=todo, rate="-")

                def advance(k: int) -> None:
                    bar.advance(tid, k)
                    rate = bar.tasks[0].completed / max(time.perf_counter() - t_start, 1e-9)
                    bar.update(tid, rate=f"{rate:.1f}")

                return run_job(c.client, store, lmdb, cfg, native=native, threads=c.threads, resources=c.resources,
                               retries=retries, on_progress=advance)
    except ClusterError as exc:
        raise BadInput(str(exc)) from None


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

    gpu_list = [] if gpus == "none" else ([g.strip() for g in gpus.split(",") if g.strip()] if gpus else None)
    if gpu_list and not scheduler:
        try:
            check_gpus(gpu_list)
        except ClusterError as exc:
            fail(str(exc))
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
        from glyphsr.recognizers.stt import STTTransformer

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
    total = finish_store(store, result.as_dict(), ran=result.shards_run > 0)
    report.print(_summary_table(result, total))
    if result.failed_records:
        shown = sorted(result.failed_records.items())[:20]
        report.print(f"[red]{len(result.failed_records)} record(s) failed[/] (status {STATUS_FAILED} in the store, "
                     f"reasons in its '{NAMESPACE}.reasons' attribute):", soft_wrap=True)
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
