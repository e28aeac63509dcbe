"""``glyphsr-demo``: the toolkit end to end on built-in synthetic data.

Steps that exist so far: synthesize a small TextZoom (``textzoom-synth``), validate and describe every LMDB of
it (``textzoom-info``) with a contact sheet of HR / LR / glyph ground truth, then extract glyph masks with GEM on
a test tier (``gem-eval``) and save them beside the ground truth, and run ``gem-extract`` (Dask) on the training
split into a mask store (OME-Zarr) with a picture of the masks over the images.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import numpy as np
from PIL import Image

from glyphsr.data.textzoom import TextZoomLMDB
from glyphsr.pipelines._cli import console, report
from glyphsr.pipelines.textzoom_info import print_summary, summarize
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
    it, measure GEM against the truth, and extract glyph masks of the training split into a mask store, with
    pictures of each step."""
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
        print_summary(s)
        bad += s["bad"]
    sheet = contact_sheet(data / "test" / "hard", root / "samples-hard.png")
    report.print(f"\ncontact sheet (HR | bicubic LR | glyph truth): {sheet}", soft_wrap=True)
    console.rule("[bold]3. GEM glyph extraction (gem-eval on test/medium)")
    gem_png = gem_sheet(data / "test" / "medium", root / "gem-medium.png")
    report.print(f"GEM masks (HR | glyph truth | GEM characters | GEM line): {gem_png}", soft_wrap=True)
    console.rule("[bold]4. gem-extract (Dask) on train into a mask store")
    store = root / "masks.zarr"
    cmd = [sys.executable, "-m", "glyphsr.pipelines.gem_extract", "--lmdb", str(data / "train"), "--out", str(store),
           "--skip-bad"] + (["--overwrite"] if overwrite else [])
    rc = subprocess.run(cmd).returncode
    if rc != 0:
        console.print(f"[red]gem-extract exited {rc}[/]")
        sys.exit(rc)
    png = store_sheet(store, root / "masks-train.png")
    report.print(f"mask store: {store}\n  picture (HR | characters over HR | line mask): {png}\n"
                 f"  look at it: napari --plugin napari-ome-zarr {store}  (napari-ome-zarr needs Python >= 3.12),\n"
                 f"  or in Python: zarr.open_group('{store}')['char'][0]  -> uint8 (15, 32, 128)", soft_wrap=True)
    sys.exit(1 if bad else 0)


def store_sheet(store: Path, out_png: Path, n: int = 12) -> Path:
    """The first ``n`` samples of a mask store: HR | character labels blended over HR | line mask, 3x enlarged."""
    from glyphsr.data.mask_store import MaskStore

    ms = MaskStore.open(store)
    k = min(n, len(ms))
    hr = ms.root["0"][:k].transpose(0, 2, 3, 1)
    lab = ms.root["labels/glyphs/0"][:k, 0]
    line = ms.root["line"][:k, 0]
    color = _PALETTE[np.minimum(lab, len(_PALETTE) - 1)]
    over = np.where(lab[..., None] > 0, (0.35 * hr + 0.65 * color).astype(np.uint8), hr // 2)
    rows = [np.concatenate([hr[i], over[i], np.repeat(line[i, :, :, None] * 255, 3, axis=2)], axis=1)
            for i in range(k)]
    Image.fromarray(np.concatenate(rows, 0)).resize((3 * 384, 3 * 32 * k), Image.NEAREST).save(out_png)
    return out_png


def gem_sheet(lmdb_path: Path, out_png: Path, n: int = 12) -> Path:
    """Run GEM on a test tier, print its quality, and save HR | truth | GEM characters | GEM line, 3x enlarged."""
    from glyphsr.gem.extractor import GEMConfig, GlyphExtractor, label_chars
    from glyphsr.gem.metrics import truth_at
    from glyphsr.pipelines.gem_eval import evaluate_split, load_split

    imgs, labels, glyphs, natives = load_split(lmdb_path, None)
    extractor = GlyphExtractor(GEMConfig())
    r = evaluate_split(extractor, imgs, labels, glyphs, natives)
    report.print(f"{r['n']} images, {r['ok']} ok: mean character IoU {r['char_iou']:.3f}, line IoU "
                 f"{r['line_iou']:.3f}, {r['images_per_s']:.0f} images/s")
    k = min(n, len(imgs))
    res = extractor.extract(imgs[:k], labels[:k], native=natives[:k])
    rows = []
    for i in range(k):
        truth = truth_at(glyphs[i], len(label_chars(labels[i])))
        lab = np.zeros((32, 128), np.uint8)
        for c in range(res.char.shape[1] - 1, -1, -1):
            lab[res.char[i, c] > 0] = c + 1
        line = np.repeat((res.line[i, 0] * 255).astype(np.uint8)[..., None], 3, axis=2)
        rows.append(np.concatenate([imgs[i], _PALETTE[np.minimum(truth, len(_PALETTE) - 1)],
                                    _PALETTE[np.minimum(lab, len(_PALETTE) - 1)], line], axis=1))
    Image.fromarray(np.concatenate(rows, 0)).resize((3 * 512, 3 * 32 * k), Image.NEAREST).save(out_png)
    return out_png


if __name__ == "__main__":
    main()
