"""The model card of shipped weights: ``README.md`` and ``card.json`` beside the safetensors, written from what the
weights, the run and the judge recorded (nothing typed by hand).

    python -m bench.model_card glyphsr/weights/glyphsr-synth --eval eval.json --run RUN --data DATA \\
        --device "one NVIDIA H200 (torch 2.11 + CUDA 13)"

- WEIGHTS: the folder ``sr-export`` wrote (its metadata: steps, samples, training time, configuration, commit);
- ``--eval``: ``sr-eval --checkpoint WEIGHTS --lmdb DATA --json eval.json`` on the test tiers, judged by the default
  recognizer; its ``model_step`` must be the weights' step (a card describes the weights it sits beside);
- ``--run``: the run folder (or the copy of it a GPU session brought back): ``metrics.jsonl`` gives the curve of
  accuracy against samples seen, ``summary.json`` the speed;
- ``--data``: the ``textzoom-synth`` folder (its ``synth.json``: seed and counts);
- ``--held-out``: ``sr-eval --json`` of the same weights on tiers that took part in neither training nor any choice
  (``textzoom-synth --val``'s tiers, when the runs chose on the test tiers), in a section of its own.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

TIERS = ("easy", "medium", "hard")
JUDGE_NAMES = {"rapidocr": "RapidOCR", "easyocr": "EasyOCR"}


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _curve(run: Path) -> list[dict]:
    """The validations of the run: samples seen, and the average accuracy of the raw weights and of their EMA."""
    path = run / "metrics.jsonl"
    if not path.is_file():
        return []
    out: dict[int, dict] = {}  # by step: the final validation may repeat the last one
    for line in path.read_text().splitlines():
        e = json.loads(line)
        if e.get("kind") != "val":
            continue
        r = e["results"]
        out[e["step"]] = {"step": e["step"], "samples": e["samples"], "sr": r["average"]["sr"],
                          "bicubic": r["average"]["bicubic"], "ema": (r.get("ema") or {}).get("average"),
                          "tiers": {k: v["sr"]["accuracy"] for k, v in r["sets"].items()}}
    return [out[k] for k in sorted(out)]


def _lineage(parent: dict) -> str:
    """The clause that says which weights a continued run started from, with every earlier stage."""
    stages, p = [], parent
    while p:
        c = p.get("code_version", "").split("+g")[-1]
        stages.append(f"{p.get('steps', 0):,} steps, {p.get('samples', 0):,} samples, "
                      f"{(p.get('train_time_s') or 0) / 60:.1f} minutes on {p.get('device')} (commit {c})")
        p = p.get("continued_from")
    return "; continued from earlier weights (`sr-train --init`), which came from " + "; before that, ".join(stages)


def _read_eval(path: Path, weights: Path, step: int, row: str) -> tuple[dict, str]:
    """An ``sr-eval --json`` of the weights of ``step`` with the three tiers and ``row``, and its judge."""
    ev = json.loads(path.read_text())
    if ev.get("model_step") != step:
        raise ValueError(f"{path} judged weights of step {ev.get('model_step')}, but {weights} holds step "
                         f"{step}: evaluate these weights (sr-eval --checkpoint {weights} --json ...)")
    judge = next(iter(ev["accuracy"]))
    acc = ev["accuracy"][judge]
    missing = [t for t in TIERS if t not in acc]
    if missing or any(row not in acc[t] for t in TIERS):
        raise ValueError(f"{path}: needs the tiers {', '.join(TIERS)} with a {row!r} row; has {sorted(acc)}")
    return ev, judge


def _tier_facts(ev: dict, judge: str, row: str) -> dict:
    acc, metrics = ev["accuracy"][judge], ev["metrics"]
    return {t: {"n": ev["sets"][t], "bicubic": acc[t]["bicubic"], "sr": acc[t][row], "hr": acc[t].get("hr"),
                "psnr": {k: metrics[t][k]["psnr"] for k in ("bicubic", row)},
                "ssim": {k: metrics[t][k]["ssim"] for k in ("bicubic", row)},
                "versus_bicubic": ev.get("versus_bicubic", {}).get(judge, {}).get(t, {}).get(row)}
            for t in TIERS}


def _tables(tiers: dict, average: dict, row: str) -> list[str]:
    """The accuracy / PSNR / SSIM table of an evaluation, and its image-by-image comparison with bicubic."""
    from glyphsr.sr.evaluation import format_p

    lines = ["| tier | n | bicubic | SR | HR | PSNR bicubic | PSNR SR | SSIM bicubic | SSIM SR |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for t in TIERS:
        e = tiers[t]
        lines.append(f"| {t} | {e['n']:,} | {_pct(e['bicubic'])} | {_pct(e['sr'])} | {_pct(e['hr'])} | "
                     f"{e['psnr']['bicubic']:.2f} | {e['psnr'][row]:.2f} | {e['ssim']['bicubic']:.4f} | "
                     f"{e['ssim'][row]:.4f} |")
    a = average
    lines += [f"| average (by tier size) | | {_pct(a['bicubic'])} | {_pct(a[row])} | {_pct(a['hr'])} | | | | |", ""]
    if all(tiers[t]["versus_bicubic"] for t in TIERS):
        lines += ["Against bicubic image by image (the same images, the same judge): the accuracy difference in "
                  "points with its 95% interval, the images SR reads right and bicubic wrong (fixed) and the reverse "
                  "(broken), and the exact McNemar test's p.", "",
                  "| tier | SR - bicubic | 95% interval | fixed | broken | p |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for t in TIERS:
            v = tiers[t]["versus_bicubic"]
            lines.append(f"| {t} | {v['delta'] * 100:+.1f} | [{v['ci95'][0] * 100:+.1f}, {v['ci95'][1] * 100:+.1f}] "
                         f"| {v['fixed']} | {v['broken']} | {format_p(v['p'])} |")
        lines.append("")
    return lines


def build_card(weights: Path, eval_json: Path, run: Path | None, data: Path | None, device: str,
               row: str = "model", notes: tuple[str, ...] = (), parent: dict | None = None,
               held_out: Path | None = None, held_out_desc: str = "") -> tuple[str, dict]:
    """(README text, card facts) for the weights in ``weights``; ValueError when the evaluation is of other weights
    or lacks the tiers. ``parent``: the card.json of the weights this run started from (``sr-train --init``), whose
    training the card counts in. ``held_out``: ``sr-eval --json`` of these weights on tiers that took no part in
    training or choosing them (``held_out_desc`` says which), in a section of its own."""
    from glyphsr.sr.checkpoint import read_weights

    _, meta = read_weights(weights)
    start = meta.get("init")  # sr-train --init: what the run started from (checkpoints since 2026-11-28)
    if isinstance(start, dict) and parent is None:
        raise ValueError(f"{weights} continued from other weights ({start.get('name')}, step {start.get('step')}): "
                         "give their card.json with --continued-from (copy it before the new weights replace it), so "
                         "the card counts their training in")
    same = ("steps", "step"), ("samples", "samples"), ("train_time_s", "train_time_s"), ("code_version",) * 2
    if isinstance(start, dict) and parent is not None and any(parent.get(a) != start.get(b) for a, b in same):
        raise ValueError(f"--continued-from names weights of step {parent.get('steps')}, {parent.get('samples')} "
                         f"samples, {parent.get('train_time_s')} s ({parent.get('code_version')}), but {weights} "
                         f"started from step {start.get('step')}, {start.get('samples')} samples, "
                         f"{start.get('train_time_s')} s ({start.get('code_version')}): give the card of the weights "
                         "the run started from")
    ev, judge = _read_eval(eval_json, weights, meta["step"], row)
    held = _read_eval(held_out, weights, meta["step"], row) if held_out else None
    if held and held[1] != judge:
        raise ValueError(f"{held_out} was judged by {held[1]}, {eval_json} by {judge}: judge both alike")
    cfg = meta["config"]
    synth = json.loads((data / "synth.json").read_text()) if data and (data / "synth.json").is_file() else {}
    summary = json.loads((run / "summary.json").read_text()) if run and (run / "summary.json").is_file() else {}
    commit = meta["code_version"].split("+g")[-1]
    facts = {
        "name": weights.name, "steps": meta["step"], "samples": meta["samples"], "epoch": meta.get("epoch"),
        "train_time_s": meta.get("train_time_s"), "samples_per_s": summary.get("samples_per_s"), "device": device,
        "code_version": meta["code_version"], "data": {"seed": synth.get("seed"), "counts": synth.get("counts")},
        "config": cfg, "judge": judge, "row": row, "weights": meta.get("weights", "raw"), "notes": list(notes),
        "system_fonts": synth.get("system_fonts"), "test_fonts": (synth.get("fonts") or {}).get("test"),
        "eval": _tier_facts(ev, judge, row),
        "average": {k: ev["average"][judge].get(k) for k in ("bicubic", row, "hr")},
        "curve": _curve(run) if run else [],
    }
    if parent:  # the training that made the starting weights, and its own parents, kept in the card
        facts["continued_from"] = {k: parent.get(k) for k in ("name", "steps", "samples", "train_time_s", "device",
                                                             "code_version", "average", "continued_from")}
    m, tr = cfg["model"], cfg["train"]
    if facts["weights"] == "ema" or row == "model_ema":
        shipped = f"the exponential moving average of the weights (decay {tr.get('ema')}), not the last raw weights"
    else:
        shipped = "the raw weights of the last step"
    if meta.get("residual_gain") is not None:  # sr-train's checkpoints/calibrated (glyphsr.sr.calibrate)
        src, cal = meta.get("calibrated_from") or {}, meta.get("calibration") or {}
        facts["residual_gain"] = {"gain": meta["residual_gain"], "from": src, "calibration": cal}
        shipped = (f"the {src.get('weights', 'raw')} weights of the run's {src.get('checkpoint', '?')} checkpoint "
                   f"(step {src.get('step', '?')}) with their learned difference scaled by {meta['residual_gain']:g}, "
                   f"the gain that read best on {cal.get('n', '?')} training pairs (sr-train's residual gain)")
    counts = synth.get("counts") or {}
    judge_name = JUDGE_NAMES.get(judge, judge)
    lines = [
        f"# {weights.name}: GlyphSR trained by sr-train on synthetic TextZoom", "",
        f"GlyphSR ({m['variant']}) trained by this project's `sr-train` on `textzoom-synth` data, "
        f"{meta['step']:,} steps, {meta['samples']:,} samples seen ({facts['epoch'] or 0:.1f} epochs), "
        f"{(facts['train_time_s'] or 0) / 60:.1f} minutes of training on {device}, code at commit {commit}"
        + (_lineage(parent) if parent else "") + ". "
        "`sr-infer` and `sr-eval` use these weights when no checkpoint is given.", "",
        "## Data", "",
        f"- `textzoom-synth` seed {synth.get('seed', '?')}: {counts.get('train', 0):,} training pairs; test tiers "
        + ", ".join(f"{t} {counts.get(t, 0):,}" for t in TIERS) + " (font families the training pairs do not use); "
        "glyph pseudo-labels by `gem-extract`.",
        *([f"- test font families: {', '.join(facts['test_fonts'])}"
           + ("; fonts of glyphsr's font packages only (`textzoom-synth --no-system-fonts`: the same font split and "
              "labels on any machine)" if facts["system_fonts"] is False else "")] if facts["test_fonts"] else []),
        *(f"- {n}" for n in notes),
        "- Synthetic only: these weights have not seen TextZoom. Compare them with the paper's tables only after "
        "training on TextZoom with the paper's recognizers.", "",
        "## Recipe", "",
        f"- network: residual={m.get('residual')}, stn={m.get('stn')}, c_sr={m['c_sr']}, n_blocks={m['n_blocks']}, "
        f"n_gly={m['n_gly']}, TPG {m['tpg']} ({m.get('tp_steps')} TP steps)",
        f"- loss: {json.dumps(cfg['loss'])}",
        f"- optimizer: Adam lr {tr['lr']}, batch {tr['batch']}, {tr.get('warmup_steps')} warm-up steps, "
        f"{tr['schedule']} schedule, grad clip {tr.get('grad_clip')}, EMA {tr.get('ema')}, precision "
        f"{tr['precision']}",
        f"- shipped: {shipped}", "",
        f"## Accuracy (judge: {judge_name}), PSNR and SSIM", "",
    ]
    lines += _tables(facts["eval"], facts["average"], row)
    if held:
        ev_h = held[0]
        facts["held_out"] = {"description": held_out_desc, "eval": _tier_facts(ev_h, judge, row),
                             "average": {k: ev_h["average"][judge].get(k) for k in ("bicubic", row, "hr")}}
        lines += [f"## On held-out tiers (judge: {judge_name})", "",
                  f"{held_out_desc}: no image of them took part in training these weights or in choosing them, so "
                  "these figures carry no selection.", ""]
        lines += _tables(facts["held_out"]["eval"], facts["held_out"]["average"], row)
    if facts["curve"]:
        lines += ["## Curve during training (validation subsets)", "", "| samples seen | SR | EMA | bicubic |",
                  "| --- | --- | --- | --- |"]
        lines += [f"| {c['samples']:,} | {_pct(c['sr'])} | {_pct(c['ema'])} | {_pct(c['bicubic'])} |"
                  for c in facts["curve"]]
        lines.append("")
    lines += ["## Use", "", "```", "sr-infer my_crops/ --out sr/ --sheet          # these weights by default",
              "sr-eval --lmdb textzoom/test                  # the paper's protocol, judged by RapidOCR", "```", ""]
    return "\n".join(lines), facts


@click.command()
@click.argument("weights", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--eval", "eval_json", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="sr-eval --json of these weights on the test tiers.")
@click.option("--run", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="The run folder (metrics.jsonl, summary.json).")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="The textzoom-synth folder (synth.json).")
@click.option("--device", required=True, help="What trained them, in words.")
@click.option("--row", type=click.Choice(["model", "model_ema"]), default="model", show_default=True,
              help="Which row of the evaluation the shipped weights are.")
@click.option("--note", "notes", multiple=True,
              help="A line for the card's data section (repeatable): where the training data was made, say.")
@click.option("--continued-from", "parent_card", default=None,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="card.json of the weights the run started from (sr-train --init): their training is counted in.")
@click.option("--held-out", "held_out", default=None, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="sr-eval --json of these weights on tiers that took no part in training or choosing them (a "
                   "section of its own).")
@click.option("--held-out-desc", default="The validation tiers of `textzoom-synth --val` (the same seed and test "
              "fonts as the test tiers, drawn from their own random streams)", show_default=True,
              help="Which tiers --held-out judged.")
def main(weights, eval_json, run, data, device, row, notes, parent_card, held_out, held_out_desc) -> None:
    from glyphsr.sr.checkpoint import CheckpointError

    try:
        parent = json.loads(parent_card.read_text()) if parent_card else None
        text, facts = build_card(weights, eval_json, run, data, device, row, notes, parent, held_out, held_out_desc)
    except (ValueError, KeyError, CheckpointError) as exc:  # ValueError covers a JSON file that does not parse
        sys.exit(f"error: {exc}")
    for name, body in (("README.md", text), ("card.json", json.dumps(facts, indent=1))):
        tmp = weights / f".{name}.tmp"
        tmp.write_text(body)
        tmp.replace(weights / name)
    print(f"wrote {weights / 'README.md'} and {weights / 'card.json'}")


if __name__ == "__main__":
    main()
