"""``sr-export``: a checkpoint's weights as a compact folder to ship or share (what ``glyphsr/weights/`` holds).

    sr-export runs/NAME/checkpoints/best OUT [--ema] [--dtype fp16] [--max-mb 16]

Writes ``OUT/model.safetensors`` (and ``OUT/model-tpg.safetensors``: the fine-tuned text-prior generator in its
own file, so no file passes ``--max-mb``) with the checkpoint's metadata; no resume state. ``load_model(OUT)``,
``sr-eval --checkpoint OUT`` and ``sr-infer --checkpoint OUT`` read it like any checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import click

from glyphsr.pipelines._cli import fail, report

DTYPES = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}


def export(checkpoint: str | Path, out: str | Path, ema: bool = False, dtype: str = "fp16",
           max_mb: float = 16.0) -> list[Path]:
    import torch

    from glyphsr.sr.checkpoint import read_weights, save_weights

    state, meta = read_weights(checkpoint, "ema" if ema else "model")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("model*.safetensors"):
        old.unlink()
    meta = {**meta, "exported_from": str(checkpoint), "weights": "ema" if ema else "raw", "dtype": dtype}
    paths = save_weights(out, "model", state, meta, split={"tpg.": "tpg"}, dtype=getattr(torch, DTYPES[dtype]))
    too_big = [p for p in paths if p.stat().st_size > max_mb * 2**20]
    if too_big:
        raise ValueError(f"{', '.join(p.name for p in too_big)} pass {max_mb} MiB; export with --dtype fp16")
    return paths


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("checkpoint", type=click.Path(exists=True))
@click.argument("out", type=click.Path())
@click.option("--ema", is_flag=True, help="Export the EMA weights.")
@click.option("--dtype", type=click.Choice(sorted(DTYPES)), default="fp16", show_default=True)
@click.option("--max-mb", type=float, default=16.0, show_default=True, help="Largest file allowed (MiB).")
def main(checkpoint, out, ema, dtype, max_mb) -> None:
    """Export a checkpoint's weights (raw or EMA) as compact safetensors files."""
    from glyphsr.sr.checkpoint import CheckpointError

    try:
        paths = export(checkpoint, out, ema, dtype, max_mb)
    except (CheckpointError, ValueError) as exc:
        fail(str(exc))
    for p in paths:
        report.print(f"{p} ({p.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
