"""GEM quality, ablations and speed on synthetic TextZoom test tiers (fonts the tuning never saw).

    python -m bench.bench_gem --n 300            # synthesizes test tiers (seed 5) into a temporary folder
    python -m bench.bench_gem --data DIR --n 300

Reports per tier mean character IoU and line IoU of the default (ctc + classical, text coverage measured on the
native-size HR image), the same with the coverage measured at 32x128, the selection with each
criterion switched (tau filter on, glyph-attention IoU off, fallback off) and without the overlap resolution;
extract() images/s in batches of 64 beside the CRNN alone; and the SAM path with a tiny random encoder (time
per image, decoder calls per image).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import click
import numpy as np

from bench._record import record
from glyphsr.data.labels import MAX_CHARS
from glyphsr.data.synth.generator import generate
from glyphsr.gem.extractor import GEMConfig, GlyphExtractor, label_chars
from glyphsr.gem.selection import SelectionConfig
from glyphsr.pipelines.gem_eval import evaluate_split, load_split

VARIANTS = {
    "default": GEMConfig(),
    "tau filter on": GEMConfig(selection=SelectionConfig(use_tau=True)),
    "glyph-attention IoU off": GEMConfig(selection=SelectionConfig(use_glyph_iou=False)),
    "fallback off": GEMConfig(selection=SelectionConfig(use_fallback=False)),
    "overlap resolution off": GEMConfig(exclusive=False),
    "midpoint cells": GEMConfig(valley_cells=False),
    "line = union (paper)": GEMConfig(line="union"),
    "orphan adoption off": GEMConfig(orphans=False),
}


@click.command()
@click.option("--data", type=click.Path(exists=True, file_okay=False), default=None)
@click.option("--n", default=300, show_default=True, help="Images per tier.")
@click.option("--seed", default=5, show_default=True,
              help="Synthesis seed; 5's test font families are disjoint from seed 0's, which tuning looked at.")
@click.option("--no-record", is_flag=True)
def main(data: str | None, n: int, seed: int, no_record: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(data) if data else Path(tmp)
        if data is None:
            generate(root, 0, n, seed=seed)
        tiers = {t: load_split(root / "test" / t, n) for t in ("easy", "medium", "hard")}
    base = GlyphExtractor(GEMConfig())
    quality: dict[str, dict] = {}
    for name, cfg in VARIANTS.items():
        ex = GlyphExtractor(cfg, attention=base.attention)
        quality[name] = {t: evaluate_split(ex, *v) for t, v in tiers.items()}
    quality["coverage at 32x128, not native"] = {t: evaluate_split(base, *v[:3]) for t, v in tiers.items()}
    for name in quality:
        print(name, {t: (round(r["char_iou"], 3), round(r["line_iou"], 3)) for t, r in quality[name].items()},
              flush=True)
    # speed: extract() on batches of 64, after a warm-up, beside the CRNN alone
    imgs, labels, _, natives = tiers["easy"]
    base.extract(imgs[:64], labels[:64], native=natives[:64])
    t0 = time.perf_counter()
    for a in range(0, len(imgs), 64):
        base.extract(imgs[a:a + 64], labels[a:a + 64], native=natives[a:a + 64])
    extract_rate = len(imgs) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    base.attention.log_probs(imgs)
    crnn_rate = len(imgs) / (time.perf_counter() - t0)
    # SAM path with a tiny random encoder
    from glyphsr.gem.segmenters.sam import SamSegmenter, build_tiny_sam

    sam = SamSegmenter(build_tiny_sam(), dtype="float32", chunk=64)
    ex = GlyphExtractor(GEMConfig(), attention=base.attention, segmenter=sam)
    m = 16
    ex.extract(imgs[:2], labels[:2])
    sam.decoder_calls = 0
    t0 = time.perf_counter()
    ex.extract(imgs[:m], labels[:m])
    sam_s = (time.perf_counter() - t0) / m
    prompts = float(np.mean([2 * 9 * min(len(label_chars(x)), MAX_CHARS) for x in labels[:m]]))
    result = {
        "n_per_tier": n, "seed": seed,
        "quality": {k: {t: {"char_iou": round(r["char_iou"], 4), "line_iou": round(r["line_iou"], 4)}
                        for t, r in v.items()} for k, v in quality.items()},
        "extract_images_per_s": round(extract_rate, 1), "crnn_only_images_per_s": round(crnn_rate, 1),
        "recognizer_dtype": str(base.attention.dtype),
        "sam_tiny_s_per_image": round(sam_s, 3), "sam_decoder_calls_per_image": sam.decoder_calls / m,
        "sam_prompts_per_image": prompts,
    }
    d = quality["default"]
    summary = (f"GEM ctc+classical, seed {seed}, {n}/tier, char/line IoU: " + "; ".join(
        f"{t} {r['char_iou']:.3f}/{r['line_iou']:.3f}" for t, r in d.items()) + "; ablations (easy char/line IoU): "
        + ", ".join(f"{k} {v['easy']['char_iou']:.3f}/{v['easy']['line_iou']:.3f}" for k, v in quality.items()
                    if k != "default")
        + f"; extract {extract_rate:.0f} img/s (CRNN alone {crnn_rate:.0f}, {base.attention.dtype})"
        + f"; SAM tiny encoder {sam_s * 1000:.0f} ms/img, {sam.decoder_calls / m:.1f} decoder calls/img"
        + f" for {prompts:.0f} prompts")
    record("bench_gem", result, summary, write=not no_record)


if __name__ == "__main__":
    main()
