"""``sr-export``: a checkpoint's weights as a compact folder to ship or share (what ``glyphsr/weights/`` holds).

    sr-export runs/NAME/checkpoints/best OUT [--ema] [--dtype fp16] [--max-mb 16] [--overwrite]

Writes ``OUT/model.safetensors`` (and ``OUT/model-tpg.safetensors``: the fine-tuned text-prior generator in its
own file, so no file passes ``--max-mb``) with the checkpoint's metadata; no resume state. ``load_model(OUT)``,
``sr-eval --checkpoint OUT`` and ``sr-infer --checkpoint OUT`` read it like any checkpoint.

The weights are checked against the checkpoint's configuration first, and written into a temporary folder inside
OUT; only once every file is within ``--max-mb`` are they moved over the old export's files, one by one (OUT itself
stays, so ``.`` and mount points work): a refused export leaves OUT as it was. Other files in OUT (a model card)
are kept. An earlier export in OUT is replaced only with ``--overwrite``; the
checkpoint's own folder and training checkpoints (``state.pt``) are never written to.
"""

from __future__ import annotations

import math
import os
import shutil
import uuid
from pathlib import Path

import click

from glyphsr.pipelines._cli import check_output_path, fail, report

DTYPES = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}
EXPORT_FILES = "model*.safetensors"  # what an export writes into OUT (and replaces)


def check_out(checkpoint: Path, out: Path, overwrite: bool) -> Path:
    """Refuse an OUT that exporting would damage; returns OUT with symbolic links resolved."""
    check_output_path(out, "OUT", folder=True)
    src, dst = checkpoint.resolve(), out.resolve()
    home = src if src.is_dir() else src.parent
    if dst == home or (src.is_dir() and home in dst.parents):
        raise ValueError(f"OUT {out} is {'' if dst == home else 'inside '}the checkpoint's own folder ({home}); "
                         "exporting there would replace or mix with the training run's weights: give another folder")
    if dst in src.parents:
        raise ValueError(f"OUT {out} holds the checkpoint ({checkpoint}); give a folder of its own to export into")
    if dst.is_dir():
        if (dst / "state.pt").exists() or any(dst.glob("ema*.safetensors")):
            raise ValueError(f"OUT {out} is a training checkpoint (it holds resume state or EMA weights), not an "
                             "export; give another folder")
        found = sorted(p.name for p in dst.glob(EXPORT_FILES))
        if found and not overwrite:
            raise ValueError(f"OUT {out} already holds an export ({', '.join(found)}); pass --overwrite to replace "
                             "it, or give a new folder")
    return dst


def export(checkpoint: str | Path, out: str | Path, ema: bool = False, dtype: str = "fp16",
           max_mb: float = 16.0, overwrite: bool = False) -> list[Path]:
    """Write the checkpoint's weights (raw or ``ema``) cast to ``dtype`` into ``out``; no file may pass ``max_mb``
    MiB. Raises ValueError for an unusable OUT or size, CheckpointError for weights that do not fit their
    configuration; OUT is left as it was in either case."""
    import torch

    from glyphsr.sr.checkpoint import PARTS, load_state, model_config, read_weights, save_weights
    from glyphsr.sr.modeling import build_model

    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r}: choose one of {', '.join(sorted(DTYPES))}")
    if not (math.isfinite(max_mb) and max_mb > 0):
        raise ValueError(f"max_mb {max_mb}: give a positive number of MiB (e.g. 16)")
    checkpoint, out = Path(checkpoint), Path(out)
    dst = check_out(checkpoint, out, overwrite)
    stem = "ema" if ema else "model"
    state, meta = read_weights(checkpoint, stem)
    # the loading path sr-infer takes: weights that do not fit their own configuration are refused here, not there
    load_state(build_model(model_config(meta)), state, f"{checkpoint} ({stem} weights)")
    meta = {k: v for k, v in meta.items() if k != "read_best"}  # about the checkpoint's two sets, not this one
    meta = {**meta, "exported_from": str(checkpoint), "weights": "ema" if ema else "raw", "dtype": dtype}

    # written into a temporary folder inside OUT (same file system; OUT keeps its inode, owner and mount), checked,
    # then moved over the old export's files one by one; a refused export leaves OUT as it was
    made = not dst.exists()
    dst.mkdir(parents=True, exist_ok=True)
    tmp = dst / f".export-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        paths = save_weights(tmp, "model", state, meta, split=PARTS, dtype=getattr(torch, DTYPES[dtype]))
        too_big = [p for p in paths if p.stat().st_size > max_mb * 2**20]
        if too_big:
            sizes = ", ".join(f"{p.name} {p.stat().st_size / 2**20:.1f} MiB" for p in too_big)
            fix = "export with --dtype fp16 or raise --max-mb" if dtype == "fp32" else "raise --max-mb"
            raise ValueError(f"{sizes}: over --max-mb {max_mb:g}; {out} is left as it was: {fix}")
        names = {p.name for p in paths}
        for p in paths:
            os.replace(p, dst / p.name)
        for stale in dst.glob(EXPORT_FILES):  # the old export's parts this one does not have
            if stale.name not in names:
                stale.unlink()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if made:
            shutil.rmtree(dst, ignore_errors=True)
        raise
    shutil.rmtree(tmp, ignore_errors=True)
    return [dst / p.name for p in paths]


def _max_mb(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if not (math.isfinite(value) and value > 0):
        raise click.BadParameter(f"{value} is not a file size: give a positive number of MiB (e.g. 16)")
    return value


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("checkpoint", type=click.Path(exists=True))
@click.argument("out", type=click.Path())
@click.option("--ema", is_flag=True, help="Export the EMA weights.")
@click.option("--dtype", type=click.Choice(sorted(DTYPES)), default="fp16", show_default=True)
@click.option("--max-mb", type=float, default=16.0, show_default=True, callback=_max_mb,
              help="Largest file allowed (MiB); a larger one refuses the export and leaves OUT as it was.")
@click.option("--overwrite", is_flag=True, help="Replace an earlier export in OUT.")
def main(checkpoint, out, ema, dtype, max_mb, overwrite) -> None:
    """Export a checkpoint's weights (raw or EMA) as compact safetensors files."""
    from glyphsr.sr.checkpoint import CheckpointError

    try:
        paths = export(checkpoint, out, ema, dtype, max_mb, overwrite)
    except (CheckpointError, ValueError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write the export to {out} ({exc})")
    for p in paths:
        report.print(f"{p} ({p.stat().st_size / 2**20:.1f} MiB)")
    from glyphsr.sr.checkpoint import read_meta

    if not ema and read_meta(checkpoint).get("read_best") == "ema":
        report.print("note: this checkpoint's EMA weights read best at its validation (export them with --ema)")


if __name__ == "__main__":
    main()
