"""``sr-train``: train GlyphSR from a TextZoom LMDB and the mask store ``gem-extract`` made from it.

    sr-train --masks masks.zarr                                   # the paper's recipe, validation on DIR/val
    sr-train --masks masks.zarr --recipe short --minutes 8        # a run of minutes (global skip, larger batch)
    sr-train --masks masks.zarr --variant baseline1               # a row of the paper's Table 2
    sr-train --out runs/NAME --resume                             # continue a run exactly where it stopped
    torchrun --nproc-per-node 4 -m glyphsr.pipelines.sr_train --masks masks.zarr   # 4 GPUs, batch 48 per GPU

The run folder holds config.yaml (the resolved configuration), metrics.jsonl, TensorBoard events (tb/),
checkpoints/last and checkpoints/best (safetensors weights + resume state), curves.png and summary.json.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path

import click
import numpy as np
from rich.markup import escape

from glyphsr._version import code_version
from glyphsr.data.decode import TIER_NAMES, decode_lmdb, find_sets
from glyphsr.data.mask_store import STATUS_FAILED, STATUS_OK, MaskStore, StoreError, check_store_source
from glyphsr.data.textzoom import TextZoomError
from glyphsr.pipelines._cli import check_output_path, console, fail, report

EXIT_BAD_INPUT = 2


def _log(msg: str, rank: int = 0) -> None:
    if rank == 0:
        console.print(msg, soft_wrap=True)


def memory_budget(device, memory_gb: float | None) -> float:
    """Bytes ``train.data=auto`` may hold: ``memory_gb``, else half the GPU's memory (CUDA) or half the RAM."""
    if memory_gb is not None:
        return memory_gb * 1e9
    import torch

    if device is not None and torch.device(device).type == "cuda":
        return torch.cuda.get_device_properties(torch.device(device)).total_memory / 2
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2


def training_lmdb(store: MaskStore, lmdb: str | None) -> str:
    """The training LMDB: ``lmdb``, else the one the mask store names as its source."""
    source = lmdb or store.meta.get("source", {}).get("path")
    if not source:
        raise StoreError(f"{store.path} does not name its LMDB: give --lmdb")
    return source


def load_training_data(store_path: str, lmdb: str | None, limit: int | None, workers: int | None,
                       glyph_records: str, kmeans_line: bool = False, mode: str = "memory",
                       budget: float | None = None):
    """Check the store against its LMDB, then hold the set in memory (decoded once) or stream it (``mode``
    "stream", or "auto" when it would pass ``budget`` bytes); returns (TrainTensors or StreamingData, info)."""
    from glyphsr.sr.train.data import SAMPLE_BYTES, StreamingData, build_tensors, quarters

    store = MaskStore.open(store_path)
    meta = store.meta
    if not meta.get("complete"):
        done = int(store.done().sum())
        raise StoreError(f"{store.path} is incomplete ({done} of {len(store.done())} shards done): finish it by "
                         f"rerunning the same gem-extract command")
    lmdb = training_lmdb(store, lmdb)
    check_store_source(store, lmdb, count=len(store))
    n = len(store) if limit is None else min(limit, len(store))
    status = store.status()[:n]
    if mode == "auto":
        mode = "stream" if budget is not None and n * SAMPLE_BYTES > budget else "memory"
    if mode == "stream":
        if kmeans_line:
            raise StoreError("Baseline2's K-means line labels are computed from the decoded set: use train.data=memory")
        from glyphsr.data.textzoom import TextZoomLMDB

        with TextZoomLMDB(lmdb) as ds:
            labels_all = ds.labels(n)
        keep = np.flatnonzero((status != STATUS_FAILED) & np.array([bool(x) for x in labels_all]))
        glyph_ok = status == STATUS_OK if glyph_records == "ok" else np.ones(n, bool)
        data = StreamingData(lmdb, str(store.path), keep, [labels_all[i] for i in keep], glyph_ok[keep],
                             workers=min(workers or os.cpu_count() or 1, 8))
        info = {"lmdb": str(lmdb), "store": str(store.path), "records": n, "used": int(len(keep)), "mode": "stream",
                "left_out_bad": int(n - len(keep)), "bad_reasons": {}, "glyph_loss_records": int(glyph_ok[keep].sum()),
                "no_glyph": int((status[keep] != STATUS_OK).sum())}
        return data, info
    decoded = decode_lmdb(lmdb, limit=n, workers=workers)
    line = np.zeros((n, 1, 16, 64), np.uint8)
    char = np.zeros((n, store.root["char"].shape[1], 16, 64), np.uint8)
    step = store.shard_size
    for s in range(0, n, step):
        part = store.read(s, min(s + step, n))
        line[s:s + len(part["status"])] = quarters(part["line"])
        char[s:s + len(part["status"])] = quarters(part["char"])
    if kmeans_line:  # Baseline2: the paper's GPM learns a K-means text map, not GEM's glyphs
        from glyphsr.gem.foreground import kmeans_foreground

        for s in range(0, n, 1024):
            fg, _ = kmeans_foreground(decoded.hr[s:s + 1024].transpose(0, 2, 3, 1))
            line[s:s + len(fg)] = quarters(fg[:, None].astype(np.uint8))
    usable = decoded.good & (status != STATUS_FAILED)
    glyph_ok = status == STATUS_OK if glyph_records == "ok" else np.ones(n, bool)
    keep = np.flatnonzero(usable)
    labels = [decoded.labels[i] for i in keep]
    data = build_tensors(decoded.lr[keep], decoded.hr[keep], labels, line[keep], char[keep], glyph_ok[keep])
    info = {"lmdb": str(lmdb), "store": str(store.path), "records": n, "used": int(len(keep)), "mode": "memory",
            "left_out_bad": int((~usable).sum()), "bad_reasons": {int(k): v for k, v in decoded.bad.items()},
            "glyph_loss_records": int(glyph_ok[keep].sum()),
            "no_glyph": int((status[keep] != STATUS_OK).sum())}
    return data, info


def default_val(lmdb: str) -> tuple[list[str], str | None]:
    """The validation tiers beside a textzoom-synth training set (DIR/train -> DIR/val/*), else its test tiers
    (DIR/test/*: TextZoom has no validation split, and the STISR repositories validate on its test tiers); and
    which of the two, or ([], None) when there are neither."""
    root = Path(lmdb).resolve().parent
    val = root / "val"
    if val.is_dir() and any(val.iterdir()):
        missing = [t for t in TIER_NAMES if not (val / t / "data.mdb").is_file()]
        if missing:
            raise FileNotFoundError(
                f"{val} lacks the validation tier(s) {', '.join(missing)} (an interrupted textzoom-synth leaves "
                f"NAME.partial): make them again with textzoom-synth --val N --overwrite, or name the validation "
                f"sets with --val")
        return [str(val / t) for t in TIER_NAMES], "val"
    try:
        sets = find_sets(root)
    except FileNotFoundError:
        return [], None
    return (list(sets.values()), "test") if len(sets) == 3 else ([], None)


def load_val_sets(paths: list[str], limit: int | None, workers: int | None):
    from glyphsr.sr.evaluation import load_sets

    return load_sets(paths, limit, workers)[0]


class Display:
    """Renders the trainer's events: a rich progress bar, TensorBoard scalars."""

    def __init__(self, out: Path, total: int | None = None):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[unit]}"),
                                 TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                                 console=console, transient=False)
        self.task = None
        self.prep = None
        self.tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out / "tb"))
        except ImportError:
            console.print("[yellow]TensorBoard not installed: no event files (metrics.jsonl has everything)[/]")

    def __enter__(self) -> Display:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)
        if self.tb is not None:
            self.tb.close()

    def __call__(self, e: dict) -> None:
        kind = e["kind"]
        if kind == "prepare":  # work before the first step, e.g. the text-focus targets of every HR image
            if self.prep is None:
                self.prep = self.progress.add_task(e["what"], total=e["total"], unit="images", info="")
            self.progress.update(self.prep, completed=e["done"], total=e["total"])
            if e["done"] >= e["total"]:
                self.progress.remove_task(self.prep)
                self.prep = None
                console.print(f"{e['what']}: {e['total']:,} images")
        elif kind == "start":
            self.task = self.progress.add_task("train", total=e["total_steps"], completed=e["step"], unit="steps",
                                               info="")
            console.print(f"{e['samples']:,} training samples on {e['device']} ({e['precision']}), global batch "
                          f"{e['global_batch']} over {e['world']} process(es), {e['steps_per_epoch']} steps per "
                          f"epoch, {e['total_steps']:,} steps; data in memory {e['data_bytes'] / 1e9:.2f} GB")
        elif kind == "train":
            loss = e["loss"]
            info = (f"loss {loss.get('total', float('nan')):.4f}  lr {loss.get('lr', 0):.2e}  "
                    f"{e['samples_per_s']:.0f} samples/s  epoch {e['epoch']:.2f}")
            if self.task is not None:
                self.progress.update(self.task, completed=e["step"], info=info)
            if self.tb is not None:
                for k, v in loss.items():
                    self.tb.add_scalar(f"train/{k}", v, e["samples"])
                self.tb.add_scalar("train/samples_per_s", e["samples_per_s"], e["samples"])
        elif kind == "val":
            res = e["results"]
            parts = []
            for name, rows in res["sets"].items():
                vs = res.get("versus_bicubic", {}).get(name, {}).get("sr")  # image by image: fixed / broken
                parts.append(f"{name} {rows['sr']['accuracy'] * 100:.1f}% (bicubic "
                             f"{rows['bicubic']['accuracy'] * 100:.1f}%"
                             + (f", +{vs['fixed']}/-{vs['broken']} images" if vs else "") + ")")
            ema = res.get("ema") or {}
            if ema.get("sets"):
                ema_parts = []
                for name, row in ema["sets"].items():
                    vs = ema.get("versus_bicubic", {}).get(name)
                    ema_parts.append(f"{name} {row['accuracy'] * 100:.1f}%"
                                     + (f" (+{vs['fixed']}/-{vs['broken']} images)" if vs else ""))
                parts.append("EMA: " + ", ".join(ema_parts))
            console.print(f"[cyan]validation[/] step {e['step']:,}: " + ", ".join(parts)
                          + f"; average {e['accuracy'] * 100:.2f}% (best {e['best'] * 100:.2f}%)", soft_wrap=True)
            if self.tb is not None:
                for name, rows in res["sets"].items():
                    for row, v in rows.items():
                        for k in ("accuracy", "psnr", "ssim"):
                            self.tb.add_scalar(f"val/{name}/{row}/{k}", v[k], e["samples"])
                self.tb.add_scalar("val/average_accuracy", e["accuracy"], e["samples"])
        elif kind == "skip":
            console.print(f"[yellow]step {e['step']}: non-finite loss, step skipped ({e['skipped']} so far)[/]")
        elif kind == "calibrating":
            console.print(f"residual gain: judging the gains {', '.join(f'{g:g}' for g in e['gains'])} on "
                          f"{e['n']:,} training pairs ...")
        elif kind == "calibrate" and "error" in e:
            console.print(f"[bold red]residual gain not judged:[/] {escape(e['error'])} (the run's checkpoints are "
                          "written; sr-export --residual-gain auto can judge it later)", soft_wrap=True)
        elif kind == "calibrate":
            cal = e["calibration"]
            rows = "; ".join(f"{name} ({cal['from'][name]['weights']} weights, step {cal['from'][name]['step']}): "
                             + ", ".join(f"{g} {a * 100:.1f}%" for g, a in row.items())
                             for name, row in cal["table"].items())
            val = e.get("validation")
            chose = f"chose {e['residual_gain']:g} on the {e['calibrated_from']['checkpoint']} weights"
            console.print(f"[cyan]residual gain[/] on {cal['n']:,} training pairs (bicubic "
                          f"{cal['bicubic'] * 100:.1f}%): {rows}; {chose} -> checkpoints/calibrated"
                          + (f", validation {val * 100:.2f}%" if val is not None else ""), soft_wrap=True)
            if self.tb is not None and val is not None:
                self.tb.add_scalar("val/calibrated_average_accuracy", val, e["samples"])


def plot_curves(history: list[dict], path: Path) -> Path | None:
    """Loss terms and validation accuracy against samples seen, as a PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    train = [e for e in history if e["kind"] == "train"]
    val = [e for e in history if e["kind"] == "val"]
    fig, axes = plt.subplots(1, 2, figsize=(15, 4.2))
    ax = axes[0]
    if train:
        keys = [k for k in train[-1]["loss"] if k != "lr"]
        for k in keys:
            ax.plot([e["samples"] for e in train], [e["loss"].get(k, np.nan) for e in train], label=k,
                    lw=2 if k == "total" else 1)
        ax.set_yscale("log")
    ax.set_xlabel("samples seen")
    ax.set_title("training loss (weighted terms)")
    if train:
        ax.legend(fontsize=7, ncol=2)
    ax = axes[1]
    if val:
        names = list(val[-1]["results"]["sets"])
        during = [e for e in val if not e.get("final")]
        final = [e for e in val if e.get("final")]
        for i, name in enumerate(names):
            c = f"C{i}"
            if during:
                n = during[-1]["results"]["sets"][name]["sr"]["n"]
                ax.plot([e["samples"] for e in during],
                        [e["results"]["sets"][name]["sr"]["accuracy"] * 100 for e in during], color=c, marker="o",
                        label=f"{name}: SR (n={n})")
                ax.axhline(during[-1]["results"]["sets"][name]["bicubic"]["accuracy"] * 100, color=c, ls="--", lw=1,
                           label=f"{name}: bicubic (n={n})")
                ema = [(e["samples"], e["results"]["ema"]["sets"][name]["accuracy"] * 100) for e in during
                       if (e["results"].get("ema") or {}).get("sets", {}).get(name)]
                if ema:  # the EMA of the weights: what sr-export --ema ships, often far from the raw weights
                    ax.plot(*zip(*ema), color=c, marker="x", ls=":", label=f"{name}: EMA of the weights")
            for e in final:
                r = e["results"]["sets"][name]
                ax.plot([e["samples"]], [r["sr"]["accuracy"] * 100], color=c, marker="*", ms=12, ls="none",
                        label=f"{name}: SR, final (n={r['sr']['n']}; bicubic {r['bicubic']['accuracy'] * 100:.1f}%)")
                er = (e["results"].get("ema") or {}).get("sets", {}).get(name)
                if er:
                    ax.plot([e["samples"]], [er["accuracy"] * 100], color=c, marker="*", ms=12, ls="none",
                            mfc="none", label=f"{name}: EMA, final")
    ax.set_xlabel("samples seen")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("validation accuracy (judge: RapidOCR)")
    if val:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))  # beside the curves, not over them
    else:
        ax.text(0.5, 0.5, "no validation in this run", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def dist_plan(local_rank: int, local_world: int, n_gpus: int) -> tuple[str, int | None]:
    """(backend, CUDA device index or None for the CPU) for one torchrun process.

    One process per GPU (or fewer processes than GPUs): NCCL, process i on GPU i. More processes than GPUs: they
    share the GPUs round-robin (process i on GPU i mod n), and every process takes gloo, because NCCL refuses two
    ranks on one GPU ("Duplicate GPU detected") and all ranks must agree on the backend; gloo all-reduces CUDA
    tensors through the host, slower but correct. No GPU: gloo on the CPU.
    """
    if n_gpus <= 0:
        return "gloo", None
    if local_world > n_gpus:
        return "gloo", local_rank % n_gpus
    return "nccl", local_rank


def _setup_distributed():
    import torch
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    local = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    n_gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    backend, index = dist_plan(local, local_world, n_gpus)
    if index is None:
        dist.init_process_group(backend)
        return torch.device("cpu")
    if backend == "gloo" and local == 0:
        console.print(f"[yellow]{local_world} processes share {n_gpus} GPU(s): gradients go through gloo (NCCL "
                      "takes one process per GPU)[/]")
    torch.cuda.set_device(index)
    dist.init_process_group(backend)
    return torch.device("cuda", index)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--masks", "store", type=click.Path(), help="Mask store made by gem-extract (needed unless --resume).")
@click.option("--lmdb", default=None, type=click.Path(), help="The training LMDB (default: the store's source).")
@click.option("--val", "val", multiple=True, type=click.Path(),
              help="Validation LMDBs or folders (default: the validation tiers beside a textzoom-synth training "
                   "set, DIR/val, else its test tiers).")
@click.option("--out", default=None, type=click.Path(), help="Run folder (default runs/VARIANT-TIME).")
@click.option("--recipe", type=click.Choice(["paper", "short"]), default="paper", show_default=True)
@click.option("--config", "config_file", default=None, type=click.Path(), help="YAML with model/loss/train sections.")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE", help="Override one setting.")
@click.option("--variant", type=click.Choice(["glyphsr", "baseline1", "baseline2", "no-gfm"]), default=None)
@click.option("--epochs", type=click.IntRange(min=1), default=None)
@click.option("--steps", type=click.IntRange(min=1), default=None)
@click.option("--minutes", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Train for this much time (the schedule follows the clock).")
@click.option("--batch", type=click.IntRange(min=1), default=None, help="Batch per process.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Use the first N training samples.")
@click.option("--val-limit", type=click.IntRange(min=1), default=None, help="Samples per validation set in memory.")
@click.option("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when there is one).")
@click.option("--judge", type=click.Choice(["rapidocr", "none"]), default="rapidocr", show_default=True,
              help="Validation judge; none skips validation.")
@click.option("--judge-threads", type=click.IntRange(min=1), default=None,
              help="Threads of the validation judge (default: every core).")
@click.option("--init", "init_weights", default=None, type=click.Path(),
              help="Start from these weights (a checkpoint folder or shipped weights' name).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from checkpoints/last.")
@click.option("--stop-after", type=click.IntRange(min=1), default=None,
              help="Stop (checkpointed) after this many steps; --resume continues.")
@click.option("--overwrite", is_flag=True, help="Replace an existing run folder.")
def main(store, lmdb, val, out, recipe, config_file, overrides, variant, epochs, steps, minutes, batch, limit,
         val_limit, device, judge, judge_threads, init_weights, resume, stop_after, overwrite) -> None:
    """Train GlyphSR (or a Table 2 variant) from a TextZoom LMDB and its mask store."""
    from glyphsr.sr.checkpoint import CheckpointError
    from glyphsr.sr.train.config import resolve, save_yaml
    from glyphsr.sr.train.loop import Trainer, TrainingDiverged

    code_version()  # pinned now (it is cached): the checkpoints name the code this process loaded, not a later commit
    dist_device = _setup_distributed()
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    # -- configuration and every input, checked before anything is removed or written ---------------------------
    try:
        if resume:
            if not out:
                fail("--resume needs --out (the run folder to continue)")
            run_cfg = Path(out) / "config.yaml"
            if not run_cfg.is_file():
                fail(f"{out}: no config.yaml: not a run folder sr-train made")
            if config_file or overrides or variant or recipe != "paper" or epochs or steps or minutes or batch:
                fail("--resume continues with the run's own configuration (config.yaml in the run folder); "
                     "configuration options cannot be given with it")
            if init_weights:
                fail("--resume continues the run's own weights (checkpoints/last); --init starts a new run from "
                     "other weights: give it another --out")
            cfg = resolve("paper", run_cfg)
            saved = _read_run_json(Path(out))
            ctx = click.get_current_context()

            def given(*names: str) -> bool:  # on the command line, not a default
                return any(ctx.get_parameter_source(n) is click.core.ParameterSource.COMMANDLINE for n in names)

            # a finished run ends here, unless data options were given: those validate it again on that data
            if not given("store", "lmdb", "val", "limit", "val_limit", "judge"):
                _exit_if_finished(Path(out), rank)
            store = store or saved["store"]
            lmdb = lmdb or saved["lmdb"]
            val = val or tuple(saved["val"])
            limit = limit or saved.get("limit")
            # the run's own judge and validation size unless given (run.json has them since 2026-11-28)
            val_limit = val_limit or (saved.get("val_limit") if type(saved.get("val_limit")) is int else None)
            if not given("judge") and saved.get("judge") in ("rapidocr", "none"):
                judge = saved["judge"]
                if judge == "none" and given("val", "val_limit"):
                    fail("the run was made with --judge none, so it has no judge to validate with: add --judge "
                         "rapidocr to validate it on --val / --val-limit")
        else:
            shortcuts = [f"train.{k}={v}" for k, v in (("epochs", epochs), ("steps", steps), ("batch", batch))
                         if v is not None]
            if minutes is not None:
                shortcuts.append(f"train.time_budget_s={minutes * 60}")
            cfg = resolve(recipe, config_file, list(shortcuts) + list(overrides), variant)
    except ValueError as exc:
        fail(str(exc))
    if not store:
        fail("--masks is required: the mask store gem-extract made from the training LMDB")
    from glyphsr.sr.runtime import check_environment, resolve_device

    try:
        if dist_device:
            check_environment()  # resolve_device checks it otherwise
        dev = dist_device or resolve_device(device)
    except ValueError as exc:
        fail(str(exc))
    name = f"{cfg.model.variant}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    out_dir = Path(out) if out else Path("runs") / name
    try:
        check_output_path(out_dir, "--out", folder=True)
    except ValueError as exc:
        fail(str(exc))
    replace = not resume and (out_dir / "checkpoints").exists()
    if replace and not overwrite:
        fail(f"{out_dir} already holds a run: --resume to continue it, --overwrite to replace it, or another "
             "--out")
    _check_files(cfg)
    init_state, init_record = _check_init(init_weights, cfg.model) if init_weights else (None, None)
    # -- data ------------------------------------------------------------------------------------------------------
    try:  # the validation tiers are found (or refused) before the training set is decoded
        val_paths, val_kind = (list(val), "given") if val else default_val(training_lmdb(MaskStore.open(store), lmdb))
    except (FileNotFoundError, StoreError) as exc:
        fail(str(exc))
    t0 = time.perf_counter()
    try:
        data, info = load_training_data(store, lmdb, limit, cfg.train.workers, cfg.train.glyph_records,
                                        kmeans_line=cfg.model.variant == "baseline2", mode=cfg.train.data,
                                        budget=memory_budget(dev, cfg.train.memory_gb))
    except (StoreError, TextZoomError) as exc:
        fail(str(exc))
    if info["used"] < cfg.train.batch * world:
        fail(f"{info['used']} training samples cannot fill one batch of {cfg.train.batch} x {world} process(es): "
             "lower --batch")
    if judge != "none":
        if val_kind == "test":
            _log(f"[yellow]validating on the test tiers beside {escape(str(info['lmdb']))} (no validation tiers "
                 "in its val/ folder): the best checkpoint is then chosen on the pairs it is reported on; "
                 "textzoom-synth --val N writes held-out validation tiers, --val names others[/]", rank)
        for v in val_paths if val_kind == "given" else []:
            if (Path(v) / "synth.json").is_file() and (Path(v) / "test").is_dir():
                _log(f"[yellow]--val {escape(v)}: a textzoom-synth folder stands for its test tiers, so the best "
                     f"checkpoint is chosen on the pairs it is reported on"
                     + (f"; its held-out validation tiers are --val {escape(str(Path(v) / 'val'))}"
                        if (Path(v) / "val").is_dir() else "") + "[/]", rank)
    try:
        val_sets = load_val_sets(val_paths, val_limit, cfg.train.workers) if judge != "none" and rank == 0 else []
    except (FileNotFoundError, TextZoomError) as exc:
        fail(f"--val: {exc}")
    cal_sets = []
    if cfg.train.calibrate_n and val_sets:  # the residual gain is judged on training pairs, never on the tiers
        n_cal = min(cfg.train.calibrate_n, limit) if limit else cfg.train.calibrate_n  # pairs the run trains on
        try:
            cal_sets = [s for s in load_val_sets([info["lmdb"]], n_cal, cfg.train.workers) if len(s)]
        except (FileNotFoundError, TextZoomError) as exc:
            fail(f"train.calibrate_n: the training LMDB {info['lmdb']}: {exc}")
        if not cal_sets:
            _log(f"[yellow]the first {n_cal} records of {info['lmdb']} are all unreadable: the residual gain will "
                 "not be judged[/]", rank)
    elif cfg.train.calibrate_n and rank == 0:
        _log("no judge (--judge none): the residual gain (train.calibrate_n) will not be judged", rank)
    _log(f"data ({info['mode']}): {info['used']:,} of {info['records']:,} records used "
         f"({info['left_out_bad']} bad or failed left out; the glyph loss sees {info['glyph_loss_records']:,}, "
         f"{info['no_glyph']} without usable glyphs), "
         f"validation on {', '.join(f'{s.name} ({len(s)})' for s in val_sets) or 'nothing'}"
         + (f" of {Path(val_paths[0]).parent}" if val_sets and val_kind in ("val", "test") else "")
         + (f", the residual gain on the first {sum(len(s) for s in cal_sets):,} training pairs" if cal_sets else "")
         + "; "
         f"ready in {time.perf_counter() - t0:.1f} s", rank)
    judge_obj = None
    if val_sets:
        from glyphsr.recognizers.rapidocr import RapidOCRRecognizer

        judge_obj = RapidOCRRecognizer(threads=judge_threads)
    # --overwrite: the old run is set aside, and comes back if the new one fails to start (a weight file that does
    # not load, no memory on the device, an interruption); it is deleted once the trainer stands
    aside = _set_aside(out_dir) if rank == 0 and replace else None
    try:
        if rank == 0:
            out_dir.mkdir(parents=True, exist_ok=True)
            save_yaml(cfg, out_dir / "config.yaml")
            (out_dir / "run.json").write_text(json.dumps({"store": str(Path(store).resolve()), "lmdb": info["lmdb"],
                                                          "val": [str(Path(p).resolve()) for p in val_paths],
                                                          "limit": limit, "val_limit": val_limit, "judge": judge,
                                                          "data": info}, indent=1))
        # -- train -------------------------------------------------------------------------------------------------
        code = 0
        with Display(out_dir) if rank == 0 else _Null() as display:
            try:  # the display first: the trainer reports its preparation (the text-focus targets) to it
                trainer = Trainer(cfg, data, out_dir, dev, val_sets=val_sets, judge=judge_obj, cal_sets=cal_sets,
                                  resume=resume, init_weights=init_state, init_record=init_record,
                                  callback=display if rank == 0 else None)
            except (ValueError, OSError, CheckpointError) as exc:
                fail(str(exc))
            if aside is not None:
                shutil.rmtree(aside, ignore_errors=True)
                aside = None
            try:
                result = trainer.run(stop_after=stop_after)
            except TrainingDiverged as exc:
                console.print(f"[bold red]error:[/] {escape(str(exc))}")
                result, code = {"finished": False, "diverged": True}, 1
            except KeyboardInterrupt:
                trainer.save("last")
                console.print(f"[yellow]interrupted at step {trainer.step}: checkpoint written; continue with[/] "
                              f"sr-train --out {out_dir} --resume")
                sys.exit(130)
    finally:
        if aside is not None:
            _put_back(out_dir, aside)
    if rank == 0:
        _finish(trainer, out_dir, result, info)
    if dist_device is not None:
        import torch.distributed as dist

        dist.destroy_process_group()
    sys.exit(code)


class _Null:
    def __enter__(self):
        return None

    def __exit__(self, *exc) -> None:
        return None


def _weights_path(name: str) -> str:
    p = Path(name)
    if p.exists():
        return str(p)
    from glyphsr.weights import shipped_path

    return str(shipped_path(name))


#: What a run writes into its folder; --overwrite replaces these and leaves anything else there alone.
RUN_FILES = ("checkpoints", "tb", "metrics.jsonl", "summary.json", "curves.png", "config.yaml", "run.json")


def _set_aside(out_dir: Path) -> Path:
    """Move the old run's files into ``out_dir/.replaced-XXXXXXXX`` (same folder: renames only)."""
    aside = out_dir / f".replaced-{uuid.uuid4().hex[:8]}"
    aside.mkdir()
    for name in RUN_FILES:
        if (out_dir / name).exists():
            (out_dir / name).rename(aside / name)
    return aside


def _put_back(out_dir: Path, aside: Path) -> None:
    """Undo :func:`_set_aside`: the new run's files go, the old run's come back."""
    for name in RUN_FILES:
        new = out_dir / name
        if new.is_dir():
            shutil.rmtree(new, ignore_errors=True)
        elif new.exists():
            new.unlink()
        if (aside / name).exists():
            (aside / name).rename(new)
    shutil.rmtree(aside, ignore_errors=True)
    console.print(f"{escape(str(out_dir))}: the new run did not start; the run that was there is back as it was")


def _read_run_json(out: Path) -> dict:
    """What the run in ``out`` trained on (its run.json), for --resume; a missing or damaged file is refused."""
    p = out / "run.json"
    redo = (f"the run folder is damaged: restore {p}, or start a new run from its weights with --masks ... "
            f"--init {out / 'checkpoints' / 'last'} --out ANOTHER")
    if not p.is_file():
        fail(f"{p} is missing (it records the mask store, LMDB and validation sets the run trained on): {redo}")
    try:
        saved = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        fail(f"{p} is not readable JSON ({exc}): {redo}")
    if not isinstance(saved, dict):
        fail(f"{p} holds {type(saved).__name__}, not the run's record (an object with store, lmdb, val): {redo}")
    bad = [k for k in ("store", "lmdb") if not isinstance(saved.get(k), str)]
    if not isinstance(saved.get("val"), list) or not all(isinstance(x, str) for x in saved["val"]):
        bad.append("val")
    if not isinstance(saved.get("limit"), (int, type(None))) or isinstance(saved.get("limit"), bool):
        bad.append("limit")
    if bad:
        fail(f"{p} lacks a usable {', '.join(bad)} (store and lmdb: paths, val: a list of paths, limit: a number "
             f"or null): {redo}")
    return saved


def _exit_if_finished(out: Path, rank: int = 0) -> None:
    """--resume of a run that ended (its summary.json says finished, at the step of checkpoints/last, with no
    calibration error to retry) has nothing to do: say so and exit 0, rather than validate and calibrate again.
    Anything else (no summary, an odd one, an older checkpoint) resumes as before."""
    import math

    from glyphsr.sr.checkpoint import CheckpointError, read_meta

    try:
        summary = json.loads((out / "summary.json").read_text())
        step = read_meta(out / "checkpoints" / "last").get("step")
    except (OSError, ValueError, CheckpointError):
        return  # no readable record of an end: resume as usual (what is missing is named there)
    result = summary.get("result") if isinstance(summary, dict) else None
    if not isinstance(result, dict) or type(step) is not int or summary.get("steps") != step:
        return
    if result.get("finished") is not True or "calibration_error" in result:
        return
    best = result.get("best")
    shown = type(best) is float and math.isfinite(best)
    if rank == 0:
        console.print(f"{escape(str(out))}: the run finished at step {step:,}"
                      + (f" (best average accuracy {best * 100:.2f}%)" if shown else "")
                      + ": nothing to resume. sr-eval judges its checkpoints (--val or --val-limit with --resume "
                        "validates it again); to train on from them, start a new run with --masks ... --init "
                        f"{escape(str(out / 'checkpoints' / 'last'))} --out ANOTHER", soft_wrap=True)
    raise SystemExit(0)


def _check_files(cfg) -> None:
    """The weights the configuration names must exist before the data is loaded (the network and the loss read
    them only after)."""
    m, lo = cfg.model, cfg.loss
    named = [("model.tpg_weights", m.tpg_weights if m.tpg_pretrained else None)]
    if lo.text_focus == "crnn":
        named.append(("loss.crnn_weights", lo.crnn_weights))
    if lo.text_focus == "stt":
        if not lo.stt_checkpoint:
            fail("loss.text_focus=stt needs loss.stt_checkpoint (the Scene Text Telescope's "
                 "pretrain_transformer.pth): --set loss.stt_checkpoint=PATH, or another loss.text_focus")
        named += [("loss.stt_checkpoint", lo.stt_checkpoint), ("loss.wce_confusion", lo.wce_confusion)]
    for key, path in named:
        if path and not Path(path).exists():
            fail(f"{key}={path}: no such file")


def _check_init(name: str, model_cfg) -> tuple[dict, dict]:
    """``--init``'s weights, read and fitted to this run's network before the data is loaded; returns them (the
    trainer loads them as they are, without reading the file again) and what they are (the run's checkpoints carry
    it as ``init``: the name given, the path, their step, samples, training time and code, and their own ``init``)."""
    import dataclasses

    from glyphsr.sr.checkpoint import CheckpointError, load_state, read_weights
    from glyphsr.sr.modeling import build_model

    try:
        path = _weights_path(name)
        state, meta = read_weights(path)
    except (FileNotFoundError, CheckpointError) as exc:
        fail(f"--init {name}: {exc}")
    # the shapes alone: the TPG's pretrained weights would be replaced by the checkpoint's anyway
    model = build_model(dataclasses.replace(model_cfg, tpg_pretrained=False, tpg_weights=None))
    where = f"--init {name}"
    try:
        load_state(model, state, where)
    except CheckpointError as exc:
        detail = str(exc).removeprefix(f"{where} does not fit the network its configuration describes: ")
        try:
            theirs = dict(meta["config"]["model"])
        except (KeyError, TypeError, ValueError):
            theirs = {}
        ours = json.loads(json.dumps(model_cfg.to_dict()))
        diff = [f"{k}={theirs[k]} (this run: {ours[k]})" for k in ours
                if k in theirs and theirs[k] != ours[k] and k not in ("tpg_pretrained", "tpg_weights")]
        hint = (f"; they were trained with {', '.join(diff)}: give those settings (--set model.KEY=VALUE) or other "
                "weights" if diff else "")
        fail(f"--init {name} does not fit this run's configuration: {detail}{hint}")
    record = {"name": name, "path": str(Path(path).resolve()),
              **{k: meta.get(k) for k in ("step", "samples", "train_time_s", "code_version", "residual_gain", "init")
                 if meta.get(k) is not None}}
    return state, record


def _finish(trainer, out_dir: Path, result: dict, info: dict) -> None:
    from rich.table import Table

    history = trainer.history
    curves = plot_curves(history, out_dir / "curves.png")
    vals = [e for e in history if e["kind"] == "val"]
    trains = [e for e in history if e["kind"] == "train"]
    summary = {"result": result, "steps": trainer.step, "samples_seen": trainer.step * trainer.global_batch,
               "train_time_s": round(trainer.train_time, 1),
               "samples_per_s": round(trainer.step * trainer.global_batch / max(trainer.train_time, 1e-9), 1),
               "data": {k: v for k, v in info.items() if k != "bad_reasons"},
               "final_validation": vals[-1]["results"] if vals else None,
               "last_loss": trains[-1]["loss"] if trains else None}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    table = Table(title=f"sr-train: {out_dir}")
    table.add_column("steps", justify="right")
    table.add_column("samples seen", justify="right")
    table.add_column("train time", justify="right")
    table.add_column("samples/s", justify="right")
    table.add_column("best avg. accuracy", justify="right")
    best = result.get("best")
    table.add_row(f"{trainer.step:,}", f"{summary['samples_seen']:,}", f"{summary['train_time_s']:.0f} s",
                  f"{summary['samples_per_s']:.0f}", "-" if best is None else f"{best * 100:.2f}%")
    report.print(table)
    if vals:
        v = vals[-1]["results"]
        t = Table(title="last validation (judge: RapidOCR)")
        for c in ("set", "bicubic", "SR", "HR", "PSNR SR", "SSIM SR"):
            t.add_column(c, justify="right")
        for name, rows in v["sets"].items():
            t.add_row(name, *(f"{rows[r]['accuracy'] * 100:.1f}%" for r in ("bicubic", "sr", "hr")),
                      f"{rows['sr']['psnr']:.2f}", f"{rows['sr']['ssim']:.4f}")
        report.print(t)
    made = [f for f in ("checkpoints/last", "checkpoints/best", "checkpoints/calibrated", "metrics.jsonl", "tb/")
            if (out_dir / f).exists()]
    report.print(f"run folder: {out_dir} ({', '.join(made + (['curves.png'] if curves else []))})")


if __name__ == "__main__":
    main()
