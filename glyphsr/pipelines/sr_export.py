"""``sr-export``: a checkpoint's weights as a compact folder to ship or share (what ``glyphsr/weights/`` holds).

    sr-export runs/NAME/checkpoints/best OUT [--ema] [--dtype fp16] [--max-mb 16] [--overwrite]
    sr-export runs/NAME/checkpoints/last OUT --ema --residual-gain auto --calibrate-lmdb DATA/train

``--residual-gain G`` scales the difference a network with the global skip adds to the bicubic image (the last
convolution's RGB rows times G, :mod:`glyphsr.sr.calibrate`); ``auto`` judges 0.25, 0.5, 0.75 and 1 on the first
``--calibrate-n`` pairs of a training LMDB with RapidOCR and takes the best, as ``sr-train`` does at the end of a
short-recipe run (``checkpoints/calibrated``): for checkpoints of runs made before it did.

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
           max_mb: float = 16.0, overwrite: bool = False, gain: float | None = None,
           calibration: dict | None = None) -> list[Path]:
    """Write the checkpoint's weights (raw or ``ema``) cast to ``dtype`` into ``out``; no file may pass ``max_mb``
    MiB. ``gain``: the learned difference scaled by it (a network with the global skip only; recorded in the
    metadata as ``residual_gain``, times any gain the checkpoint had already), ``calibration`` what chose it.
    Raises ValueError for an unusable OUT, size or gain, CheckpointError for weights that do not fit their
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
    if gain is not None:
        from glyphsr.sr.calibrate import with_gain

        if not model_config(meta).residual:
            raise ValueError(f"--residual-gain: {checkpoint} is a network without the global skip "
                             "(model.residual=false): there is no learned difference to scale")
        state = with_gain(state, gain)  # refuses a negative or non-finite gain
        before = meta.get("residual_gain")
        meta["residual_gain"] = gain * (before if before is not None else 1.0)
        meta["residual_gain_by"] = {"program": "sr-export", "gain": gain, "weights": meta["weights"],
                                    **({"calibration": calibration} if calibration else {})}

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
@click.option("--residual-gain", "gain", default=None, metavar="G|auto",
              help="Scale the difference the network adds to the bicubic image by G (>= 0; networks with the "
                   "global skip), or auto: the gain of 0.25, 0.5, 0.75 and 1 that RapidOCR reads best on "
                   "--calibrate-lmdb.")
@click.option("--calibrate-lmdb", type=click.Path(exists=True), default=None,
              help="Training LMDB the auto gain is judged on (never the test tiers).")
@click.option("--calibrate-n", type=click.IntRange(min=1), default=500, show_default=True,
              help="First N pairs of --calibrate-lmdb.")
@click.option("--device", default=None, help="Where the auto gain's network runs (default: cuda when there is one).")
def main(checkpoint, out, ema, dtype, max_mb, overwrite, gain, calibrate_lmdb, calibrate_n, device) -> None:
    """Export a checkpoint's weights (raw or EMA) as compact safetensors files."""
    from glyphsr.sr.checkpoint import CheckpointError

    calibration = None
    try:
        if gain is None:
            if calibrate_lmdb is not None:
                raise ValueError("--calibrate-lmdb is for --residual-gain auto")
        elif gain.strip().lower() == "auto":
            if calibrate_lmdb is None:
                raise ValueError("--residual-gain auto needs --calibrate-lmdb: the training LMDB to judge the gains on")
            check_out(Path(checkpoint), Path(out), overwrite)  # before minutes of judging
            calibration = _auto_gain(checkpoint, ema, calibrate_lmdb, calibrate_n, device)
            gain = calibration["gain"]
        else:
            try:
                gain = float(gain)
            except ValueError:
                raise ValueError(f"--residual-gain {gain!r}: give a number >= 0 (e.g. 0.5) or auto") from None
            if not (math.isfinite(gain) and gain >= 0):
                raise ValueError(f"--residual-gain {gain}: give a number >= 0 (e.g. 0.5) or auto")
        paths = export(checkpoint, out, ema, dtype, max_mb, overwrite, gain=gain, calibration=calibration)
    except (CheckpointError, ValueError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write the export to {out} ({exc})")
    for p in paths:
        report.print(f"{p} ({p.stat().st_size / 2**20:.1f} MiB)")
    from glyphsr.sr.checkpoint import read_meta

    if not ema and read_meta(checkpoint).get("read_best") == "ema":
        report.print("note: this checkpoint's EMA weights read best at its validation (export them with --ema)")


def _auto_gain(checkpoint: str, ema: bool, lmdb: str, n: int, device: str | None) -> dict:
    """The gain of :data:`glyphsr.sr.calibrate.GAINS` that RapidOCR reads best on the first ``n`` pairs of ``lmdb``
    (printed as a table); ValueError for an LMDB that cannot be read or a network without the skip."""
    import torch

    from glyphsr.data.textzoom import TextZoomError
    from glyphsr.recognizers.rapidocr import RapidOCRRecognizer
    from glyphsr.sr.calibrate import calibrate
    from glyphsr.sr.checkpoint import load_model, read_weights
    from glyphsr.sr.evaluation import load_sets
    from glyphsr.sr.runtime import use_bf16

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model, meta = load_model(checkpoint, dev, ema=ema)
    if not model.residual:
        raise ValueError(f"--residual-gain: {checkpoint} is a network without the global skip "
                         "(model.residual=false): there is no learned difference to scale")
    try:
        sets, _ = load_sets([lmdb], n)
    except (FileNotFoundError, TextZoomError) as exc:
        raise ValueError(f"--calibrate-lmdb {lmdb}: {exc}") from None
    if not sum(len(s) for s in sets):
        raise ValueError(f"--calibrate-lmdb {lmdb}: no readable record among its first {n}: nothing to judge on")
    state = {k: v.float() if v.is_floating_point() else v for k, v in read_weights(checkpoint, "ema" if ema
                                                                                  else "model")[0].items()}
    report.print(f"residual gain: judging 0.25, 0.5, 0.75, 1 on {sum(len(s) for s in sets):,} pairs of {lmdb} ...",
                 soft_wrap=True)
    res = calibrate(model, {"weights": state}, sets, RapidOCRRecognizer(), dev, autocast=use_bf16("auto", dev))
    report.print("residual gain: " + ", ".join(f"{g:g} {a * 100:.1f}%" for g, a in res["table"]["weights"].items())
                 + f" (bicubic {res['bicubic'] * 100:.1f}%): {res['gain']:g}", soft_wrap=True)
    return {"gain": res["gain"], "n": res["n"], "on": str(lmdb), "bicubic": res["bicubic"],
            "table": {f"{g:g}": a for g, a in res["table"]["weights"].items()}}


if __name__ == "__main__":
    main()
