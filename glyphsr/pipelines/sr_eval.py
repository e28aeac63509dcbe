"""``sr-eval``: judge super-resolution the paper's way (Table 1): recognition accuracy per tier and their average
weighted by TextZoom's tier sizes, PSNR and SSIM, for bicubic, the model (and its EMA weights) and HR.

    sr-eval --checkpoint runs/NAME/checkpoints/best --lmdb DATA           # a textzoom-synth folder: its tiers
    sr-eval --lmdb TextZoom/test --recognizer rapidocr,crnn:crnn.pth,aster:demo.pth.tar,moran:moran.pth
    sr-eval --sr-dir my_sr_pngs --lmdb TextZoom/test                      # SR images made elsewhere
    sr-eval --lmdb DATA --json results.json --save-sr sr_pngs             # numbers as JSON, our SR images as PNG

Without ``--checkpoint`` (and without ``--sr-dir``) the weights shipped with glyphsr are used. Bicubic and HR rows
depend only on the data and the judge and are cached (keyed by the LMDB's fingerprint and the judge) under
$GLYPHSR_CACHE (default ~/.cache/glyphsr). SR images are judged and measured as 8-bit images (what ``--save-sr``
writes), so ``--sr-dir`` on saved images gives the model row's figures; ``--save-sr`` with ``--sr-dir`` is refused
(there are no SR images of ours to save). ``--json`` also records the seconds spent per stage. The paths ``--json`` and
``--save-sr`` write to, ``--device`` and the ``--recognizer`` specs are checked before any work. Exit status: 0, 1
when some records were bad (listed, and left out of every row alike), 2 for bad input.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from glyphsr.pipelines._cli import console, fail, report


def _biased(spec_name: str, meta: dict | None) -> str | None:
    """Why a judge is biased for this model (it shaped the training), or None."""
    if meta is None or spec_name != "easyocr":
        return None
    cfg = meta.get("config", {})
    why = []
    if cfg.get("model", {}).get("tpg") == "crnn":
        why.append("text-prior generator")
    if cfg.get("loss", {}).get("text_focus") == "crnn":
        why.append("text-focus loss")
    return " and ".join(why) or None


def read_sr_dir(folder: Path, s, single: bool):
    """SR images made elsewhere: FOLDER/SET/INDEX.png (or FOLDER/INDEX.png for one set), INDEX = the 1-based
    LMDB index as %09d; resized bicubically to 128x32 when they are another size."""
    import numpy as np
    import torch
    from PIL import Image

    out = []
    for idx in s.indices:
        p = (folder if single else folder / s.name) / f"{idx:09d}.png"
        if not p.is_file():
            raise FileNotFoundError(f"--sr-dir: {p} is missing (expected one PNG per record, named by its 1-based "
                                    f"LMDB index as %09d)")
        try:
            img = Image.open(p).convert("RGB")
        except OSError as exc:  # PIL's UnidentifiedImageError and truncated files alike
            raise ValueError(f"--sr-dir: {p} is not a readable image ({exc})") from None
        if img.size != (128, 32):
            img = img.resize((128, 32), Image.BICUBIC)
        out.append(np.asarray(img).transpose(2, 0, 1))
    return torch.from_numpy(np.stack(out)).float() / 255


def write_sr_pngs(folder: Path, s, images, single: bool) -> None:
    from PIL import Image

    from glyphsr.sr.evaluation import to_uint8

    d = folder if single else folder / s.name
    d.mkdir(parents=True, exist_ok=True)
    for idx, arr in zip(s.indices, to_uint8(images)):
        Image.fromarray(arr).save(d / f"{idx:09d}.png")


def markdown(results: dict, sets: list[str], rows: list[tuple[str, str]], judges: list[tuple[str, str | None]],
             metrics: dict, compared: dict | None = None) -> str:
    """The paper's Table 1 as markdown: accuracy per set and the weighted average per judge; with ``compared``
    ({judge: {set: {row: :func:`glyphsr.sr.evaluation.paired`}}}) each model row against bicubic image by image;
    PSNR/SSIM per set."""
    from glyphsr.sr.evaluation import format_p, weighted_average

    lines = []
    for jname, biased in judges:
        title = f"**Accuracy, judge {jname}**" + (f" (biased: it served as this model's {biased})" if biased else "")
        lines += [title, "", "| method | " + " | ".join(sets) + " | average |",
                  "| --- |" + " --- |" * (len(sets) + 1)]
        for key, label in rows:
            r = {s: results[jname][s][key] for s in sets}
            avg = weighted_average({s: {key: r[s]} for s in sets}, key)
            lines.append(f"| {label} | " + " | ".join(f"{r[s]['accuracy'] * 100:.1f}%" for s in sets)
                         + f" | {avg * 100:.1f}% |")
        lines.append("")
        models = [(k, label) for k, label in rows if k not in ("bicubic", "hr")]
        if models and compared and jname in compared:
            lines += [f"**Against bicubic, image by image, judge {jname}**: accuracy difference in points [95% "
                      "interval], images the model fixed / broke, exact McNemar p", "",
                      "| method | " + " | ".join(sets) + " |", "| --- |" + " --- |" * len(sets)]
            for key, label in models:
                cells = []
                for s in sets:
                    v = compared[jname][s][key]
                    lo, hi = v["ci95"]
                    cells.append(f"{v['delta'] * 100:+.1f} [{lo * 100:+.1f}, {hi * 100:+.1f}], "
                                 f"{v['fixed']} / {v['broken']}, p {format_p(v['p'])}")
                lines.append(f"| {label} | " + " | ".join(cells) + " |")
            lines.append("")
    lines += ["**PSNR / SSIM**", "", "| method | " + " | ".join(sets) + " |", "| --- |" + " --- |" * len(sets)]
    for key, label in rows:
        lines.append(f"| {label} | " + " | ".join(f"{metrics[s][key]['psnr']:.2f} / {metrics[s][key]['ssim']:.4f}"
                                                   for s in sets) + " |")
    return "\n".join(lines) + "\n"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--checkpoint", default=None, help="Checkpoint folder, or the name of shipped weights (default).")
@click.option("--lmdb", "lmdbs", multiple=True, required=True, type=click.Path(),
              help="LMDB, TextZoom's test/ or a textzoom-synth folder (repeatable).")
@click.option("--recognizer", "recognizers", multiple=True, default=("rapidocr",), show_default=True,
              help="NAME[:WEIGHTS], comma-separated or repeated: rapidocr, easyocr, crnn:crnn.pth, "
                   "aster:demo.pth.tar, moran:demo.pth, parseq:parseq-bb5792a6.pt.")
@click.option("--json", "json_out", default=None, type=click.Path(),
              help="Write every figure as JSON to this file (its folder is made when missing).")
@click.option("--save-sr", default=None, type=click.Path(),
              help="Write the model's SR images as PNGs into this folder (SET/INDEX.png; INDEX.png for one set). Not "
                   "with --sr-dir: there are no SR images of ours to save.")
@click.option("--sr-dir", default=None, type=click.Path(), help="Judge SR images made elsewhere (PNG per record).")
@click.option("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when there is one).")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True,
              help="The network's: auto is bfloat16 autocast where the device computes it natively (CUDA; CPUs "
                   "with AVX512-BF16 or AMX), float32 elsewhere. Judges always run in float32.")
@click.option("--batch", default=256, show_default=True, type=click.IntRange(min=1),
              help="Images per judge call and per forward pass of the network (at most 32 on the CPU, where larger "
                   "batches ran slower).")
@click.option("--limit", default=None, type=click.IntRange(min=1), help="First N records of each set.")
@click.option("--ema/--no-ema", default=True, show_default=True, help="Also judge the EMA weights when present.")
@click.option("--legacy-metrics", is_flag=True,
              help="Also the TextZoom code's PSNR/SSIM (one value per batch of --batch, averaged over batches).")
@click.option("--no-cache", is_flag=True, help="Judge bicubic and HR again instead of reading the cache.")
def main(checkpoint, lmdbs, recognizers, json_out, save_sr, sr_dir, device, precision, batch, limit, ema,
         legacy_metrics, no_cache) -> None:
    """Judge a model (or SR images) on TextZoom-format test sets: accuracy per judge, PSNR, SSIM."""
    from glyphsr.pipelines._cli import check_output_path
    from glyphsr.sr.runtime import resolve_device

    # -- what can be refused without torch: paths, option combinations, recognizer specs ---------------------------
    for option, value in [("--json", json_out), ("--save-sr", save_sr), ("--sr-dir", sr_dir)] + \
            [("--lmdb", x) for x in lmdbs]:
        if value == "":  # Path("") is the current folder: never what an empty argument meant
            fail(f"{option} is an empty string: give a path")
    if sr_dir is not None and save_sr is not None:
        fail(f"--save-sr {save_sr} with --sr-dir {sr_dir}: --sr-dir judges images made elsewhere, so there are no "
             "SR images of ours to save; leave out --save-sr")
    try:
        if json_out is not None:
            check_output_path(Path(json_out), "--json", folder=False)
        if save_sr is not None:
            check_output_path(Path(save_sr), "--save-sr", folder=True)
    except ValueError as exc:
        fail(str(exc))
    if json_out is not None and save_sr is not None and Path(json_out).resolve() == Path(save_sr).resolve():
        fail(f"--json {json_out} and --save-sr {save_sr} name the same path: give the JSON file another name")
    specs = [x.strip() for r in recognizers for x in r.split(",") if x.strip()]
    if not specs:
        fail(f"--recognizer {','.join(recognizers)!r} names no recognizer: give NAME[:WEIGHTS], e.g. rapidocr")

    import torch
    from rich.markup import escape

    from glyphsr.data.textzoom import TextZoomError
    from glyphsr.recognizers.judges import build_judge, parse_judge_spec
    from glyphsr.sr.checkpoint import CheckpointError, has_ema, load_model
    from glyphsr.sr.evaluation import (
        bicubic_up,
        evaluate,
        judge_images,
        legacy_psnr,
        legacy_ssim,
        load_sets,
        psnr,
        ssim,
        super_resolve,
        versus,
        weighted_average,
    )
    from glyphsr.sr.runtime import sr_function, use_bf16

    t0 = time.perf_counter()
    timings: dict[str, float] = {}  # seconds per stage, in the JSON and the last line

    def lap(stage: str, since: float) -> float:
        now = time.perf_counter()
        timings[stage] = round(timings.get(stage, 0.0) + now - since, 2)
        return now

    try:
        names = [parse_judge_spec(x)[0] for x in specs]
    except ValueError as exc:
        fail(str(exc))
    try:
        dev = resolve_device(device)
    except ValueError as exc:
        fail(str(exc))
    bf16 = use_bf16(precision, dev)
    # -- the model -------------------------------------------------------------------------------------------------
    models: dict[str, object] = {}
    meta = None
    if sr_dir is None:
        try:
            if checkpoint is None or not Path(checkpoint).exists():
                from glyphsr.weights import DEFAULT, available, shipped_path

                if checkpoint is not None and checkpoint not in available():
                    shipped = ", ".join(available()) or "none in this copy"
                    fail(f"--checkpoint {checkpoint}: no such folder or file, nor the name of shipped weights "
                         f"(shipped: {shipped})")
                checkpoint = str(shipped_path(checkpoint or DEFAULT))
            model, meta = load_model(checkpoint, dev)
            models["model"] = model
            if ema and has_ema(checkpoint):
                models["model_ema"] = load_model(checkpoint, dev, ema=True)[0]
        except (CheckpointError, FileNotFoundError) as exc:
            fail(str(exc))
    elif checkpoint is not None:
        fail("--sr-dir judges images made elsewhere: give no --checkpoint with it")
    elif not Path(sr_dir).is_dir():
        fail(f"--sr-dir {sr_dir}: no such folder")
    try:
        judges = [build_judge(x, dev) for x in specs]
    except (ValueError, FileNotFoundError, OSError) as exc:
        fail(f"--recognizer: {exc}")
    t = lap("load", t0)
    # -- the data --------------------------------------------------------------------------------------------------
    try:
        sets, bad = load_sets(list(lmdbs), limit)
    except (FileNotFoundError, TextZoomError) as exc:
        fail(str(exc))
    empty = [s.name for s in sets if len(s) == 0]
    if empty:
        fail(f"no readable records in {', '.join(empty)}: nothing to judge")
    t = lap("data", t)
    single = len(sets) == 1
    if save_sr is not None and not single:  # the PNGs go to SAVE_SR/SET/: a file of a set's name is in the way
        try:
            for s in sets:
                check_output_path(Path(save_sr) / s.name, "--save-sr", folder=True)
        except ValueError as exc:
            fail(str(exc))
    n_bad = sum(len(b) for b in bad.values())
    for name, b in bad.items():
        for idx, reason in sorted(b.items()):
            console.print(f"[yellow]{escape(name)}: record {idx} left out: {escape(reason)}[/]", soft_wrap=True)
    console.print(f"sets: {', '.join(f'{s.name} ({len(s)})' for s in sets)}; judges: {', '.join(specs)}; "
                  f"{'SR from ' + sr_dir if sr_dir else 'model ' + str(checkpoint)} on {dev}"
                  f"{'' if sr_dir else ', bfloat16' if bf16 else ', float32'}", markup=False,
                  soft_wrap=True)
    # -- SR images, once per model ---------------------------------------------------------------------------------
    sr_images: dict[str, dict[str, torch.Tensor]] = {}
    for s in sets:
        if sr_dir is not None:
            try:
                sr_images.setdefault("model", {})[s.name] = read_sr_dir(Path(sr_dir), s, single)
            except (FileNotFoundError, ValueError) as exc:
                fail(str(exc))
        for key, m in models.items():
            sr_images.setdefault(key, {})[s.name] = super_resolve(sr_function(m, dev), s.lr, dev, batch, bf16)
    if save_sr and "model" in models:
        for s in sets:
            write_sr_pngs(Path(save_sr), s, sr_images["model"][s.name], single)
    t = lap("sr", t)
    # -- judging ---------------------------------------------------------------------------------------------------
    results: dict[str, dict] = {}
    for spec, judge in zip(specs, judges):
        per = evaluate(None, sets, judge, dev, batch, use_cache=not no_cache)
        t = lap("reference_rows", t)
        for s in sets:
            hr = s.hr.float() / 255
            for key, imgs in sr_images.items():
                correct, readings = judge_images(judge, imgs[s.name], s.labels, batch)
                per[s.name][key] = {"n": len(correct), "accuracy": float(correct.mean()), "correct": correct,
                                    "readings": readings, "psnr": float(psnr(imgs[s.name], hr).mean()),
                                    "ssim": float(ssim(imgs[s.name], hr).mean())}
        results[spec] = per
        t = lap("sr_rows", t)
    rows = [("bicubic", "bicubic")] + [(k, {"model": "model", "model_ema": "model (EMA)"}[k]) for k in sr_images] \
        + [("hr", "HR")]
    first = results[specs[0]]
    metrics = {s.name: {k: {"psnr": first[s.name][k]["psnr"], "ssim": first[s.name][k]["ssim"]} for k, _ in rows}
               for s in sets}
    if legacy_metrics:
        for s in sets:
            hr = s.hr.float() / 255
            imgs = {"bicubic": bicubic_up(s.lr), "hr": hr,
                    **{k: v[s.name] for k, v in sr_images.items()}}
            for k, _ in rows:
                pairs = [(imgs[k][i:i + batch], hr[i:i + batch]) for i in range(0, len(s), batch)]
                metrics[s.name][k]["legacy_psnr"] = legacy_psnr(pairs)
                metrics[s.name][k]["legacy_ssim"] = legacy_ssim(pairs)
    set_names = [s.name for s in sets]
    judge_rows = [(spec, _biased(n, meta)) for spec, n in zip(specs, names)]
    compared = {spec: versus({s: results[spec][s] for s in set_names}) for spec in specs}  # image by image
    report.print(markdown(results, set_names, rows, judge_rows, metrics, compared), markup=False, soft_wrap=True)
    if legacy_metrics:
        report.print(f"TextZoom-code PSNR / SSIM (per batch of {batch}, averaged over batches): " + "; ".join(
            f"{s} {k}: {metrics[s][k]['legacy_psnr']:.2f} / {metrics[s][k]['legacy_ssim']:.4f}"
            for s in set_names for k, _ in rows), markup=False, soft_wrap=True)
    if json_out:
        out = {"checkpoint": checkpoint, "sr_dir": sr_dir, "sets": {s.name: len(s) for s in sets},
               "bad_records": {k: {str(i): r for i, r in v.items()} for k, v in bad.items()},
               "metrics": metrics, "accuracy": {}, "average": {}, "biased": dict(judge_rows),
               "readings": {}, "versus_bicubic": compared, "seconds": round(time.perf_counter() - t0, 1),
               "timings": timings,
               "model_step": meta.get("step") if meta else None,
               "precision": None if sr_dir else "bf16" if bf16 else "fp32"}
        for spec in specs:
            out["accuracy"][spec] = {s: {k: results[spec][s][k]["accuracy"] for k, _ in rows} for s in set_names}
            out["average"][spec] = {k: weighted_average({s: {k: results[spec][s][k]} for s in set_names}, k)
                                    for k, _ in rows}
            out["readings"][spec] = {s: {k: results[spec][s][k]["readings"] for k, _ in rows} for s in set_names}
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(out, indent=1))
    console.print(f"judged in {time.perf_counter() - t0:.1f} s ("
                  + ", ".join(f"{k.replace('_', ' ')} {v:.1f} s" for k, v in timings.items()) + ")", soft_wrap=True)
    sys.exit(1 if n_bad else 0)


if __name__ == "__main__":
    main()
