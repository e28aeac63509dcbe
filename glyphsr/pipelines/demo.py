"""``glyphsr-demo``: the toolkit end to end on built-in synthetic data.

Steps that exist so far: synthesize a small TextZoom (``textzoom-synth``), then validate and describe every
LMDB of it (``textzoom-info``) and save a contact sheet of HR / LR / glyph ground truth to look at.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import numpy as np
from PIL import Image

from glyphsr.data.textzoom import TextZoomLMDB
from glyphsr.pipelines._cli import console, report
from glyphsr.pipelines.textzoom_info import _print, summarize
from glyphsr.pipelines.textzoom_synth import run_synth

_PALETTE = np.array([[0, 0, 0]] + [[int(255 * c) for c in col] for col in (
    (0.90, 0.10, 0.29), (0.24, 0.71, 0.29), (1.0, 0.88, 0.10), (0.26, 0.39, 0.85), (0.96, 0.51, 0.19),
    (0.57, 0.12, 0.71), (0.27, 0.94, 0.94), (0.94, 0.20, 0.90), (0.74, 0.96, 0.05), (0.98, 0.75, 0.83),
    (0.0, 0.50, 0.50), (0.86, 0.75, 1.0), (0.60, 0.39, 0.14), (1.0, 0.98, 0.78), (0.50, 0.0, 0.0))]
    * 2, np.uint8)


def contact_sheet(lmdb_path: Path, out_png: Path, n: int = 12) -> Path:
    """Rows of HR (32x128) | bicubic LR | glyph ground truth (one colour per character), 3x enlarged."""
    ds = TextZoomLMDB(lmdb_path)
    rows = []
    for i in range(1, min(n, len(ds)) + 1):
        rec = ds.read_raw(i)
        hr = np.asarray(rec.hr.resize((128, 32), Image.BICUBIC))
        lr = np.asarray(rec.lr.resize((64, 16), Image.BICUBIC).resize((128, 32), Image.BICUBIC))
        glyph = np.zeros_like(hr)
        if rec.glyph is not None:
            g = np.asarray(Image.fromarray(rec.glyph).resize((128, 32), Image.NEAREST))
            glyph = _PALETTE[np.minimum(g, len(_PALETTE) - 1)]
        rows.append(np.concatenate([hr, lr, glyph], axis=1))
    sheet = Image.fromarray(np.concatenate(rows, axis=0)).resize((3 * 384, 3 * 32 * len(rows)), Image.NEAREST)
    sheet.save(out_png)
    return out_png


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--out", default="glyphsr-demo", show_default=True, type=click.Path(file_okay=False),
              help="Working folder for everything the demo writes.")
@click.option("--train", "n_train", default=2000, show_default=True, type=click.IntRange(min=1))
@click.option("--test", "n_test", default=200, show_default=True, type=click.IntRange(min=1),
              help="Test pairs per tier.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--workers", default=None, type=click.IntRange(min=1))
@click.option("--overwrite", is_flag=True, help="Replace an earlier demo's data in OUT.")
def main(out: str, n_train: int, n_test: int, seed: int, workers: int | None, overwrite: bool) -> None:
    """Run the toolkit on built-in synthetic data: synthesize a small TextZoom with glyph ground truth, validate
    it, and save a picture of it."""
    root = Path(out)
    data = root / "data"
    console.rule("[bold]1. textzoom-synth")
    if (data / "synth.json").exists() and not overwrite:
        console.print(f"reusing {data} (pass --overwrite to synthesize again)")
    else:
        run_synth(str(data), n_train, n_test, seed, workers, overwrite=True)
    console.rule("[bold]2. textzoom-info")
    bad = 0
    for path in [data / "train"] + [data / "test" / t for t in ("easy", "medium", "hard")]:
        ds = TextZoomLMDB(path)
        s = summarize(str(path), [ds.inspect(i) for i in range(1, len(ds) + 1)], len(ds))
        _print(s)
        bad += s["bad"]
    sheet = contact_sheet(data / "test" / "hard", root / "samples-hard.png")
    report.print(f"\ncontact sheet (HR | bicubic LR | glyph truth): {sheet}", soft_wrap=True)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
