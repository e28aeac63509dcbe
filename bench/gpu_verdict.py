"""After a GPU session: judge the weights it brought back on test tiers no choice saw, and say what they meet.

    python -m bench.gpu_verdict FILES/glyphsr-synth FILES/scratch-synth --data DATA --json verdict.json

``FILES``: the folder the session's files came back to (``bench/gpu_session.sh`` exports the best candidate as
``glyphsr-synth`` and, when it continued other weights, the best run from scratch as ``scratch-synth``). ``DATA``:
the same ``textzoom-synth`` data on this machine (``--seed 0 --train 20000 --test 1000 --val 500
--no-system-fonts``): the runs chose on its validation tiers, so its test tiers took part in no choice.

For each weights folder, ``sr-eval --device cpu`` on DATA's test tiers with the default judge (RapidOCR; an
evaluation already written beside the verdict for the same weights is read back, not made again), then:

- **target 1** (issue 13): the weights come from one run from scratch (no ``init`` in their metadata) with at most
  ``--max-minutes`` (8) of training, as that run left them (a residual gain sr-train chose, not ``sr-export``'s
  afterwards; weights edited by other means carry no mark this could read), and beat bicubic on medium and on hard
  beyond chance (a positive difference, exact McNemar p below ``--alpha``, 0.05);
- **replace**: they read better than the shipped weights (their ``card.json``) on every tier, judged on as many
  images per tier by the same judge; their card then needs ``bench/model_card.py ... --continued-from`` the old
  card when they started from it.

Prints a table and the verdicts; ``--json`` writes them. Nothing is copied or shipped: that stays a person's step.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click

from glyphsr.data.decode import TIER_NAMES as TIERS


def target1(meta: dict, ev: dict, max_minutes: float = 8.0, alpha: float = 0.05) -> dict:
    """Whether weights (their metadata) and their ``sr-eval --json`` meet issue 13's first target, and why not."""
    judge = next(iter(ev["accuracy"]))
    vs = ev.get("versus_bicubic", {}).get(judge, {})
    why = []
    if meta.get("init"):
        why.append(f"the run started from other weights ({meta['init'].get('name')}), not from scratch")
    if meta.get("residual_gain_by"):  # sr-export --residual-gain: chosen after the run, not by it
        why.append(f"the residual gain was applied after the run ({meta['residual_gain_by'].get('program')})")
    minutes = (meta.get("train_time_s") or 0) / 60
    if not meta.get("train_time_s") or minutes > max_minutes:
        why.append(f"{minutes:.2f} minutes of training (at most {max_minutes:g})")
    for tier in ("medium", "hard"):
        v = (vs.get(tier) or {}).get("model")
        if v is None:
            why.append(f"no image-by-image comparison on {tier}")
        elif not (v["delta"] > 0 and v["p"] < alpha):
            why.append(f"{tier}: {v['delta'] * 100:+.1f} points, p {v['p']:.3g} (needs > 0 and p < {alpha:g})")
    return {"met": not why, "why_not": why, "train_minutes": round(minutes, 2)}


def replaces(ev: dict, card: dict) -> dict:
    """Whether the evaluated weights read better than the shipped ones (their card) on every tier, on as many
    images per tier by the same judge."""
    judge = next(iter(ev["accuracy"]))
    why = []
    if card.get("judge") != judge:
        why.append(f"judged by {judge}, the card by {card.get('judge')}")
    for tier in TIERS:
        old = card["eval"][tier]
        new, n = ev["accuracy"][judge][tier]["model"], ev["sets"][tier]
        if n != old["n"]:
            why.append(f"{tier}: {n} images, the card {old['n']}")
        elif not new > old["sr"]:
            why.append(f"{tier}: {new * 100:.1f}% against the shipped {old['sr'] * 100:.1f}%")
    return {"better": not why, "why_not": why}


def _evaluate(weights: Path, data: Path, out: Path, limit: int | None) -> dict:
    """``sr-eval`` of ``weights`` on DATA's test tiers into ``out``, or ``out`` as it is when it judged these
    weights already (the same step and folder)."""
    from glyphsr.sr.checkpoint import read_meta

    step = read_meta(weights).get("step")
    if out.is_file():
        ev = json.loads(out.read_text())
        if ev.get("model_step") == step and ev.get("checkpoint") == str(weights):
            return ev
    cmd = [sys.executable, "-m", "glyphsr.pipelines.sr_eval", "--checkpoint", str(weights), "--lmdb", str(data),
           "--device", "cpu", "--no-ema", "--json", str(out)] + (["--limit", str(limit)] if limit else [])
    done = subprocess.run(cmd, check=False)
    if done.returncode:
        raise click.ClickException(f"sr-eval of {weights} failed (exit {done.returncode}): {' '.join(cmd)}")
    return json.loads(out.read_text())


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("weights", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The textzoom-synth folder whose test tiers judge them.")
@click.option("--card", default=None, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="card.json of the shipped weights [default: the installed glyphsr-synth's].")
@click.option("--json", "json_out", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Write the verdicts here (the evaluations go beside it, as NAME-eval.json, and are read back "
                   "by a later call).")
@click.option("--max-minutes", default=8.0, show_default=True, type=float, help="Target 1's training time.")
@click.option("--alpha", default=0.05, show_default=True, type=float, help="Below this p a difference counts.")
@click.option("--limit", default=None, type=click.IntRange(min=1), help="First N images per tier (a quick look).")
def main(weights, data, card, json_out, max_minutes, alpha, limit) -> None:
    """Judge the weights a GPU session brought back on the test tiers of DATA; say whether they meet issue 13's
    first target and whether they read better than the shipped weights."""
    import glyphsr.weights
    from glyphsr.sr.checkpoint import CheckpointError, read_meta

    try:
        card_path = card or glyphsr.weights.shipped_path() / "card.json"
        shipped = json.loads(Path(card_path).read_text())
        _ = [shipped["eval"][t]["sr"] for t in TIERS]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise click.ClickException(f"the shipped weights' card ({card or 'glyphsr-synth'}): {exc!r}; give --card "
                                   "card.json") from None
    where = json_out.parent if json_out else Path(".")
    where.mkdir(parents=True, exist_ok=True)
    verdicts = {}
    for w in weights:
        try:
            meta = read_meta(w)
        except CheckpointError as exc:
            raise click.ClickException(str(exc)) from None
        ev = _evaluate(w.resolve(), data, where / f"{w.name}-eval{f'-{limit}' if limit else ''}.json", limit)
        judge = next(iter(ev["accuracy"]))
        acc, vs = ev["accuracy"][judge], ev.get("versus_bicubic", {}).get(judge, {})
        verdicts[w.name] = v = {
            "weights": str(w), "step": meta.get("step"), "init": meta.get("init"),
            "residual_gain": meta.get("residual_gain"), "n": ev["sets"],
            "accuracy": {t: {k: acc[t].get(k) for k in ("bicubic", "model", "hr")} for t in TIERS},
            "versus_bicubic": {t: (vs.get(t) or {}).get("model") for t in TIERS},
            "target1": target1(meta, ev, max_minutes, alpha), "replaces_shipped": replaces(ev, shipped)}
        click.echo(f"\n{w} (step {v['step']}, {v['target1']['train_minutes']} minutes of training"
                   + (f", from {meta['init'].get('name')}" if meta.get("init") else ", from scratch")
                   + (f", residual gain {meta['residual_gain']:g}" if meta.get("residual_gain") is not None else "")
                   + f"), judge {judge}:")
        for t in TIERS:
            d = v["versus_bicubic"][t]
            click.echo(f"  {t:6} n {ev['sets'][t]:5,}  bicubic {acc[t]['bicubic'] * 100:5.1f}%  model "
                       f"{acc[t]['model'] * 100:5.1f}%  shipped {shipped['eval'][t]['sr'] * 100:5.1f}%"
                       + (f"  {d['delta'] * 100:+.1f} points ({d['fixed']} fixed / {d['broken']} broken, p "
                          f"{d['p']:.3g})" if d else ""))
        for key, name, ok in (("target1", "target 1", "met"), ("replaces_shipped", "replaces the shipped weights",
                                                                 "better")):
            r = v[key]
            click.echo(f"  {name}: " + ("yes" if r[ok] else "no (" + "; ".join(r["why_not"]) + ")"))
    if json_out:
        tmp = json_out.with_name(json_out.name + ".tmp")
        tmp.write_text(json.dumps(verdicts, indent=1))
        tmp.replace(json_out)
        click.echo(f"\nwrote {json_out}")


if __name__ == "__main__":
    main()
