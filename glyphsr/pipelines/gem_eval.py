"""``gem-eval --lmdb DIR``: GEM's mask quality against synthetic ground truth, per tier.

DIR is a ``textzoom-synth`` output (its ``test/easy``, ``test/medium`` and ``test/hard`` are evaluated) or a single
LMDB with ``glyph_hr`` keys. Prints mean character IoU and line IoU per tier, images/s, and how masks were chosen.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click
import numpy as np
from rich.markup import escape
from rich.table import Table

from glyphsr.data.mask_store import STATUS_OK
from glyphsr.data.textzoom import HR_SIZE, NotTextZoomError, TextZoomError, TextZoomLMDB, textzoom_resize
from glyphsr.gem.extractor import GEMConfig, GlyphExtractor, label_chars
from glyphsr.gem.metrics import mask_ious, truth_at
from glyphsr.pipelines._cli import BadInput, console, fail, report


def load_split(path: Path, limit: int | None
               ) -> tuple[np.ndarray, list[str], list[np.ndarray], list[np.ndarray]]:
    """HR images (N, 32, 128, 3) uint8 by the TextZoom protocol, labels, native glyph maps, native HR images."""
    ds = TextZoomLMDB(path)
    n = len(ds) if limit is None else min(limit, len(ds))
    imgs, labels, glyphs, natives = [], [], [], []
    for i in range(1, n + 1):
        try:
            rec = ds.read_raw(i)
        except NotTextZoomError:  # the file itself is damaged, not one record
            raise
        except TextZoomError as exc:
            console.print(f"[yellow]skipping[/] {escape(str(exc))}", soft_wrap=True)
            continue
        if rec.glyph is None:
            raise BadInput(f"{path}, record {i}: no glyph_hr ground truth (not textzoom-synth data?)")
        imgs.append(textzoom_resize(rec.hr))
        labels.append(rec.label)
        glyphs.append(rec.glyph)
        natives.append(np.asarray(rec.hr))
    return np.stack(imgs) if imgs else np.zeros((0, *HR_SIZE, 3), np.uint8), labels, glyphs, natives


def evaluate_split(extractor: GlyphExtractor, imgs: np.ndarray, labels: list[str], glyphs: list[np.ndarray],
                   natives: list[np.ndarray] | None = None, batch: int = 64) -> dict:
    char_ious, line_ious, n_ok = [], [], 0
    t0 = time.perf_counter()
    results = []
    for a in range(0, len(imgs), batch):
        nat = natives[a:a + batch] if natives is not None else None
        results.append(extractor.extract(imgs[a:a + batch], labels[a:a + batch], native=nat))
    seconds = time.perf_counter() - t0
    i = 0
    for res in results:
        for j in range(len(res.status)):
            n = len(label_chars(labels[i]))
            truth = truth_at(glyphs[i], n)
            ci, li = mask_ious(res.char[j], res.line[j], truth, n)
            char_ious.extend(ci.tolist())
            line_ious.append(li)
            n_ok += int(res.status[j] == STATUS_OK)
            i += 1
    return {"n": len(imgs), "ok": n_ok, "char_iou": float(np.mean(char_ious)) if char_ious else 0.0,
            "line_iou": float(np.mean(line_ious)) if line_ious else 0.0,
            "images_per_s": len(imgs) / seconds if seconds > 0 else 0.0}


def splits_of(root: Path) -> dict[str, Path]:
    tiers = {t: root / "test" / t for t in ("easy", "medium", "hard")}
    if all((p / "data.mdb").is_file() for p in tiers.values()):
        return tiers
    return {root.name: root}


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--lmdb", "lmdb_path", required=True, type=click.Path(), help="textzoom-synth folder or one LMDB.")
@click.option("--limit", default=None, type=click.IntRange(min=1), help="Images per tier.")
@click.option("--segmenter", type=click.Choice(["classical", "sam"]), default="classical", show_default=True)
@click.option("--sam-checkpoint", default=None, type=click.Path(exists=True, dir_okay=False))
@click.option("--sam-model", default="vit_h", show_default=True)
@click.option("--attention", type=click.Choice(["ctc", "stt"]), default="ctc", show_default=True)
@click.option("--stt-checkpoint", default=None, type=click.Path(exists=True, dir_okay=False))
@click.option("--device", default="cpu", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def main(lmdb_path: str, limit: int | None, segmenter: str, sam_checkpoint: str | None, sam_model: str,
         attention: str, stt_checkpoint: str | None, device: str, as_json: bool) -> None:
    """Measure GEM's character and line mask IoU against the glyph ground truth of synthetic data."""
    root = Path(lmdb_path)
    if not root.exists():
        fail(f"{root}: no such file or directory")
    try:
        cfg = GEMConfig(segmenter=segmenter, sam_checkpoint=sam_checkpoint, sam_model=sam_model,
                        attention=attention, stt_checkpoint=stt_checkpoint, device=device)
        extractor = GlyphExtractor(cfg)
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    rows = {}
    for name, path in splits_of(root).items():
        try:
            imgs, labels, glyphs, natives = load_split(path, limit)
        except NotTextZoomError as exc:
            fail(str(exc))
        if len(imgs) == 0:
            fail(f"{path}: no readable records to evaluate")
        rows[name] = evaluate_split(extractor, imgs, labels, glyphs, natives)
    if as_json:
        click.echo(json.dumps({"config": cfg.to_dict(), "splits": rows}, indent=2))
    else:
        t = Table(title=f"GEM ({attention} + {segmenter}) vs glyph ground truth at 32x128", show_edge=False)
        for c in ("split", "images", "ok", "char IoU", "line IoU", "images/s"):
            t.add_column(c, justify="right")
        for name, r in rows.items():
            t.add_row(name, str(r["n"]), str(r["ok"]), f"{r['char_iou']:.3f}", f"{r['line_iou']:.3f}",
                      f"{r['images_per_s']:.0f}")
        report.print(t)
    sys.exit(0)


if __name__ == "__main__":
    main()
