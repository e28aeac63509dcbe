"""``glyphsr-demo``'s report: DIR/report.md, written from what the stages measured (``demo.Facts``).

Every number in it comes from this run, except the GPU training speed it quotes for what a full run takes
(``demo.GPU_SPEED``, measured by ``bench_train`` in this project), which it says.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

from glyphsr._version import code_version

TIERS = ("easy", "medium", "hard")


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def table1(evals: dict[str, dict], judge: str = "rapidocr") -> str:
    """The paper's layout (its Tables 1 and 2): accuracy per tier and their average weighted by TextZoom's tier
    sizes, then PSNR and SSIM (means over the tiers' images); rows bicubic, each model, HR."""
    first = next(iter(evals.values()))
    sets = [t for t in TIERS if t in first["sets"]]
    n = {t: first["sets"][t] for t in sets}
    rows = [("bicubic", first, "bicubic")]
    for name, e in evals.items():
        rows.append((f"GlyphSR, {name}", e, "model"))
        if "model_ema" in e["accuracy"][judge][sets[0]]:
            rows.append((f"GlyphSR, {name}, EMA weights", e, "model_ema"))
    rows.append(("HR", first, "hr"))
    lines = ["| method | " + " | ".join(f"{t} (n={n[t]})" for t in sets) + " | average | PSNR (dB) | SSIM |",
             "| --- |" + " --- |" * (len(sets) + 3)]
    total = sum(n.values())
    for label, e, key in rows:
        acc = [e["accuracy"][judge][t][key] for t in sets]
        psnr = sum(e["metrics"][t][key]["psnr"] * n[t] for t in sets) / total
        ssim = sum(e["metrics"][t][key]["ssim"] * n[t] for t in sets) / total
        psnr_s = "-" if key == "hr" else f"{psnr:.2f}"
        ssim_s = "-" if key == "hr" else f"{ssim:.4f}"
        lines.append(f"| {label} | " + " | ".join(_pct(a) for a in acc) + f" | {_pct(e['average'][judge][key])} | "
                     f"{psnr_s} | {ssim_s} |")
    return "\n".join(lines)


def _stages(f) -> str:
    lines = ["| stage | seconds | | result |", "| --- | ---: | --- | --- |"]
    for s in f.stages:
        lines.append(f"| {s.name} | {s.seconds:.1f} | {'reused' if s.reused else ''} | {s.note} |")
    return "\n".join(lines)


def _training_text(f) -> str:
    from glyphsr.pipelines.demo import GPU_SAMPLES_PER_S, GPU_SPEED, PAPER_SAMPLES
    from glyphsr.sr.evaluation import format_p, mcnemar_p

    s = f.train["summary"]
    size = f.size
    n_train = s["data"]["used"]
    rate = s["samples_per_s"]
    epochs = s["samples_seen"] / max(n_train, 1)
    bound = (f"--minutes {size.minutes:g}" if size.minutes else f"--steps {size.steps}")
    batch = f"--batch {size.batch}" if size.batch else "the recipe's batch (256)"
    e = f.evals.get("this demo's run")
    comparison = ""
    if e is not None:
        m, b = e["average"]["rapidocr"]["model"], e["average"]["rapidocr"]["bicubic"]
        per_tier = min(e["sets"].values())
        d = (m - b) * 100
        comparison = f" Here the run read {_pct(m)} on the test tiers against bicubic's {_pct(b)} ({d:+.1f} points)"
        vs = [v["model"] for v in (e.get("versus_bicubic") or {}).get("rapidocr", {}).values() if "model" in v]
        fixed, broken = sum(v["fixed"] for v in vs), sum(v["broken"] for v in vs)
        p = mcnemar_p(fixed, broken)
        if per_tier < 50:
            comparison += f": with {per_tier} records per tier the difference says nothing either way."
        elif vs:  # sr-eval's image-by-image comparison, pooled over the tiers
            p_text = format_p(p) if p < 0.001 else f"= {format_p(p)}"
            comparison += (f". Image by image it fixed {fixed} of the images bicubic misread and broke {broken} that "
                           f"bicubic read (exact McNemar p {p_text} over the {sum(v['n'] for v in vs)} "
                           "images): " + ("within chance." if p >= 0.05 else "beyond chance, below bicubic: in so few "
                                          "steps the network has moved away from its bicubic start without yet "
                                          "learning a correction that helps a recognizer." if fixed < broken else
                                          "beyond chance at this size; a longer run and more records tell whether "
                                          "it holds."))
        elif abs(d) <= 5:
            comparison += f": with {per_tier} records per tier a difference of a few points is within chance."
        elif d < 0:
            comparison += (": in so few steps the network has moved away from its bicubic start without yet learning "
                           "a correction that helps a recognizer (short runs on a GPU did the same).")
        else:
            comparison += f": with {per_tier} records per tier, only a longer run can tell whether that holds."
    short = s["samples_seen"] < 0.05 * PAPER_SAMPLES
    sets = "".join(f" --set {kv}" for kv in size.settings)
    text = [f"`sr-train --recipe short {bound}{sets}` with {batch} on {f.device}: {s['steps']:,} steps, "
            f"{s['samples_seen']:,} samples seen ({epochs:.2f} passes over {n_train:,} training images) in "
            f"{s['train_time_s']:.0f} s of training, {rate:.1f} samples/s. The run folder is `run/` (config.yaml, "
            "metrics.jsonl, TensorBoard events in tb/, checkpoints/last and checkpoints/best, summary.json); the "
            "demo judges and uses `checkpoints/last`."]
    network = ("a tiny network of GlyphSR's architecture (8 channels, 2 blocks)" if f.size_name == "tiny"
               else "the paper's GlyphSR network (with the short recipe's global skip and without the STN)")
    if short:
        text.append(
            f"**What this run shows, and what it cannot.** It shows that the stages fit together: {network} trains "
            "on GEM's masks, its loss terms are logged and plotted, "
            "and its checkpoint loads in `sr-eval` and `sr-infer`. It cannot show GlyphSR beating bicubic. The short "
            "recipe's global skip starts the network at the bicubic image and it learns only a correction; "
            f"{s['samples_seen']:,} samples are {s['samples_seen'] / PAPER_SAMPLES * 100:.2g}% of the paper's "
            f"recipe ({PAPER_SAMPLES:,} samples: 200 epochs of TextZoom's 17,367 training images)." + comparison)
    else:
        text.append("This is a full short-recipe run of the demo's size." + comparison)
    days = PAPER_SAMPLES / max(rate, 1e-9) / 86400
    text.append(
        "**What a full run takes.** On a GPU, `glyphsr-demo --out DIR --size gpu` (a TextZoom-size synthetic training "
        "set and a 10-minute short-recipe run; `--minutes 60` trains longer), or on this demo's data "
        "`sr-train --masks DIR/masks.zarr --recipe short --minutes 30`, and the paper's recipe "
        "`sr-train --masks DIR/masks.zarr` (Adam 1e-3, batch 48, 200 epochs, 5 warm-up epochs then cosine). "
        f"Speed measured in this project (not by this demo): {GPU_SPEED}. At {GPU_SAMPLES_PER_S:,} samples/s the "
        f"paper's {PAPER_SAMPLES:,} samples take about {PAPER_SAMPLES / GPU_SAMPLES_PER_S / 60:.0f} minutes of one "
        f"H200; at this run's "
        f"{rate:.1f} samples/s on {f.device} they would take about {days:,.1f} days.")
    return "\n\n".join(text)


def write_report(f) -> Path:
    """Write ``f.out / "report.md"`` and return its path."""
    size = f.size
    when = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    out = [
        "# glyphsr demo: the toolkit end to end on synthetic data",
        "",
        f"`glyphsr-demo --size {f.size_name}` on {f.device}, glyphsr {code_version()}, {when}: "
        f"**{f.wall_s / 60:.1f} minutes** wall time. Stages (a stage marked reused was finished by an earlier run "
        "in this folder and read back):",
        "",
        _stages(f),
        "",
        "## 1. Synthetic data (`textzoom-synth`)",
        "",
        f"{f.data['counts']['train']:,} training pairs, {size.test:,} per test tier (easy, medium, hard) and "
        f"{f.data['counts'].get('val-hard', 0):,} per validation tier (drawn like the test tiers; sr-train chooses "
        f"its checkpoints on them), seed {f.seed}, in `data/`; {f.data['bad']} bad records (`textzoom-info`). Test "
        "fonts "
        f"({', '.join(f.data['fonts']['test'])}) are families the training never saw. Each record carries a "
        "ground-truth label map of its characters.",
        "",
        f"![The hard test tier: HR, bicubic LR and glyph ground truth]({f.pictures['samples']})",
        "",
        "## 2. GEM: glyph masks against the ground truth",
        "",
        f"The Glyph Extraction Module (attention `{f.gem['attention']}`, segmenter `{f.gem['segmenter']}`) on the "
        f"first {size.gem_limit} records of each test tier, compared at 32x128 with the ground truth resampled by "
        "area (`gem-eval`'s measure):",
        "",
        "| tier | images | ok | character IoU | line IoU | images/s |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for t, r in f.gem["tiers"].items():
        out.append(f"| {t} | {r['n']} | {r['ok']} | {r['char_iou']:.3f} | {r['line_iou']:.3f} | "
                   f"{r['images_per_s']:.0f} |")
    st = f.store
    out += [
        "",
        f"![GEM's masks with key points and anchors]({f.pictures['gem']})",
        "",
        "## 3. The mask store (`gem-extract`)",
        "",
        f"`gem-extract` ran GEM as a Dask job over the {st['n']:,} training images into `{st['path']}` (Zarr v3, "
        f"OME-NGFF 0.5): {st['ok']:,} ok, {st['failed']} failed, {st['no_glyph']} without a usable glyph"
        + (f"; {st['images_per_s']:.1f} images/s" if st.get("images_per_s") else "") + ".",
        "",
        f"![The mask store]({f.pictures['store']})",
        "",
        f"To look at it in napari with the masks shown: `glyphsr-view {f.out / st['path']}` (after "
        "`pip install \"napari[pyqt5]\"`).",
        "",
        "## 4. Training (`sr-train`)",
        "",
        _training_text(f),
        "",
        "![Training curves](run/curves.png)",
        "",
        "## 5. Evaluation (`sr-eval`): Table 1 on the synthetic test tiers",
        "",
        "Judge: RapidOCR (PP-OCRv4), which took no part in training; accuracy is the exact match of the lowercase "
        "alphanumeric label; the average weights the tiers by TextZoom's sizes (1,619 / 1,411 / 1,343), as the "
        "paper does; PSNR and SSIM per image on RGB in [0, 1]. "
        + (f"The first {size.eval_limit} records of each tier." if size.eval_limit and size.eval_limit < size.test
           else "Every test record."),
        "",
        table1(f.evals),
        "",
        f"![LR, bicubic, SR and HR with the judge's readings]({f.pictures['sr']})",
        "",
        "## 6. `sr-infer` on images of other shapes",
        "",
        "| input | size, mode | what it is | " + " | ".join(f"output ({m})" for m in f.infer["runs"]) + " |",
        "| --- | --- | --- |" + " --- |" * len(f.infer["runs"]),
    ]
    for name, info in f.infer["inputs"].items():
        w, h = info["size"]
        outs = " | ".join("{}x{}".format(*r["outputs"][name]) for r in f.infer["runs"].values())
        out.append(f"| `{name}` | {w}x{h}, {info['mode']} | {info['what']} | {outs} |")
    out += ["", "`sr-infer --mode auto` (the default) tiles images wider than 8:1 (height 16, overlapping 64-wide "
            "windows blended across their overlaps, output twice that) and fits the others to 64x16 as TextZoom "
            "does, so the tall crop is squeezed: the network was trained on single words. Its sheet (LR, bicubic, SR "
            "with RapidOCR's readings):", ""]
    for name, r in f.infer["runs"].items():
        out += [f"![sr-infer, {name}]({r['sheet']})", ""]
    out += ["## Shipped weights", ""]
    if f.shipped:
        out.append(f"This copy of glyphsr ships {', '.join(f.shipped)}: judged and run above beside the demo's run.")
    else:
        out.append("This copy of glyphsr ships no trained weights yet (`glyphsr.weights.available()` is empty), so "
                   "every SR image here comes from the demo's own short run. Once weights are shipped, the demo "
                   "judges and runs them beside it.")
    path = f.out / "report.md"
    tmp = path.with_name(".report.md.tmp")
    tmp.write_text("\n".join(out) + "\n")
    tmp.replace(path)
    return path
