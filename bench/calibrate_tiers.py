"""Calibrate the synthetic tiers against an independent judge (RapidOCR, PP-OCRv4).

Protocol: the TextZoom reader gives HR at 32x128 and LR at 16x64; "bicubic" is the LR upsampled to 32x128 by
bicubic; accuracy is exact match of the ``lower`` label form. Targets: TextZoom's bicubic accuracies for its
strongest recognizer (ASTER: easy 64.7%, medium 42.4%, hard 31.2%), each within 8 points, HR >= 90%.

    python -m bench.calibrate_tiers --n 500            # synthesizes the test tiers into a temporary folder
    python -m bench.calibrate_tiers --data DIR         # judges DIR/test/{easy,medium,hard}
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import click
import numpy as np
from PIL import Image

from bench._record import record
from glyphsr.data.labels import str_filt
from glyphsr.data.synth.generator import generate
from glyphsr.data.textzoom import TextZoomLMDB, textzoom_resize
from glyphsr.recognizers.rapidocr import RapidOCRRecognizer

TARGET = {"easy": 64.7, "medium": 42.4, "hard": 31.2}


def judge_tier(path: Path, judge: RapidOCRRecognizer, limit: int | None) -> dict:
    ds = TextZoomLMDB(path, voc_type="lower")
    n = len(ds) if limit is None else min(limit, len(ds))
    hr_imgs, lr_imgs, labels = [], [], []
    for i in range(1, n + 1):
        rec = ds.read_raw(i)
        hr_imgs.append(textzoom_resize(rec.hr))
        lr = rec.lr.resize((64, 16), Image.BICUBIC).resize((128, 32), Image.BICUBIC)
        lr_imgs.append(np.asarray(lr))
        labels.append(str_filt(rec.label, "lower"))
    hr_pred = judge.recognize(hr_imgs)
    lr_pred = judge.recognize(lr_imgs)
    acc = lambda preds: 100.0 * float(np.mean([str_filt(p, "lower") == t for p, t in zip(preds, labels)]))  # noqa: E731
    return {"n": n, "hr": round(acc(hr_pred), 1), "bicubic": round(acc(lr_pred), 1)}


@click.command()
@click.option("--data", type=click.Path(exists=True, file_okay=False), default=None,
              help="A textzoom-synth output folder; default: synthesize the test tiers now.")
@click.option("--n", default=500, show_default=True, help="Samples per tier.")
@click.option("--seed", default=0, show_default=True)
@click.option("--no-record", is_flag=True, help="Print only; don't append to docs/benchmarks.md.")
def main(data: str | None, n: int, seed: int, no_record: bool) -> None:
    judge = RapidOCRRecognizer()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(data) if data else Path(tmp)
        if data is None:
            generate(root, 0, n, seed)
        rows = {}
        t0 = time.perf_counter()
        for tier in TARGET:
            rows[tier] = judge_tier(root / "test" / tier, judge, n)
            r = rows[tier]
            print(f"{tier:>6}: n={r['n']} HR {r['hr']:.1f}%  bicubic {r['bicubic']:.1f}%  "
                  f"(TextZoom ASTER bicubic {TARGET[tier]}%, off by {r['bicubic'] - TARGET[tier]:+.1f})")
    ok = all(abs(rows[t]["bicubic"] - TARGET[t]) <= 8 and rows[t]["hr"] >= 90 for t in TARGET)
    summary = "; ".join(f"{t} n={r['n']} HR {r['hr']}% bicubic {r['bicubic']}%" for t, r in rows.items())
    record("calibrate_tiers (RapidOCR PP-OCRv4)", {"tiers": rows, "seed": seed, "within_targets": ok,
                                                   "seconds": round(time.perf_counter() - t0, 1)},
           summary + ("" if ok else " (OUTSIDE targets)"), write=not no_record)


if __name__ == "__main__":
    main()
