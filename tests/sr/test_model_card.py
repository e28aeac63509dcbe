"""bench/model_card.py: the card of shipped weights, written from their metadata, a real sr-eval of them on the
synthetic tiers (RapidOCR) and the run's records; an evaluation of other weights is refused."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from click.testing import CliRunner

from bench import model_card
from glyphsr.pipelines import sr_eval
from glyphsr.pipelines.sr_export import export
from glyphsr.sr.checkpoint import write_checkpoint
from glyphsr.sr.evaluation import format_p
from glyphsr.sr.modeling import SRConfig, build_model
from glyphsr.sr.train.config import RunConfig


def _judge(weights: Path, synth_dir: Path, tmp_path: Path, limit: int) -> dict:
    """sr-eval of ``weights`` on the first ``limit`` images per tier into tmp_path/eval.json; its contents."""
    res = CliRunner().invoke(sr_eval.main, ["--checkpoint", str(weights), "--lmdb", str(synth_dir), "--limit",
                                            str(limit), "--json", str(tmp_path / "eval.json")],
                             env={"GLYPHSR_CACHE": str(tmp_path / "cache")}, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return json.loads((tmp_path / "eval.json").read_text())


def test_card_from_weights_eval_and_run(synth_dir: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = RunConfig(model=SRConfig(c_sr=8, c_tp=8, n_blocks=2, n_gly=1, tpg_pretrained=False, residual=True))
    meta = {"config": cfg.to_dict(), "step": 1234, "samples": 315904, "epoch": 15.8, "train_time_s": 290.5,
            "code_version": "0.1.0+gabcdef123456"}
    ckpt = write_checkpoint(tmp_path / "run" / "checkpoints" / "last", build_model(cfg.model).state_dict(), meta)
    val = {"step": 1234, "samples": 315904, "kind": "val", "results": {
        "average": {"sr": 0.5, "bicubic": 0.45}, "ema": None,
        "sets": {t: {"sr": {"accuracy": 0.5}} for t in ("easy", "medium", "hard")}}}
    (tmp_path / "run" / "metrics.jsonl").write_text(json.dumps({**val, "step": 0, "samples": 0}) + "\n"
                                                   + json.dumps(val) + "\n" + json.dumps(val) + "\n")
    (tmp_path / "run" / "summary.json").write_text(json.dumps({"samples_per_s": 1087.4}))
    weights = tmp_path / "glyphsr-synth"
    export(ckpt, weights)
    ev = _judge(weights, synth_dir, tmp_path, 6)

    run = CliRunner().invoke(model_card.main, [str(weights), "--eval", str(tmp_path / "eval.json"), "--run",
                                               str(tmp_path / "run"), "--data", str(synth_dir), "--device", "one GPU",
                                               "--note", "training pairs made on the GPU machine"])
    assert run.exit_code == 0, run.output
    card = (weights / "README.md").read_text()
    facts = json.loads((weights / "card.json").read_text())
    assert "1,234 steps" in card and "315,904 samples" in card and "abcdef123456" in card and "one GPU" in card
    assert "seed 3" in card and "RapidOCR" in card and "textzoom-synth" in card
    assert "- training pairs made on the GPU machine" in card and "the raw weights of the last step" in card
    synth = json.loads((synth_dir / "synth.json").read_text())
    assert f"test font families: {', '.join(synth['fonts']['test'])}" in card
    assert ("--no-system-fonts" in card) == (synth["system_fonts"] is False)
    assert facts["steps"] == 1234 and facts["samples"] == 315904 and facts["samples_per_s"] == 1087.4
    acc, metrics = ev["accuracy"]["rapidocr"], ev["metrics"]
    for tier in ("easy", "medium", "hard"):
        e = facts["eval"][tier]
        assert (e["n"], e["bicubic"], e["sr"], e["hr"]) == (ev["sets"][tier], acc[tier]["bicubic"],
                                                           acc[tier]["model"], acc[tier]["hr"])
        assert (f"| {tier} | {e['n']:,} | {100 * e['bicubic']:.1f}% | {100 * e['sr']:.1f}% | {100 * e['hr']:.1f}% | "
                f"{metrics[tier]['bicubic']['psnr']:.2f} | {metrics[tier]['model']['psnr']:.2f} |") in card
        v = ev["versus_bicubic"]["rapidocr"][tier]["model"]  # the image-by-image comparison, as sr-eval wrote it
        assert e["versus_bicubic"] == v
        assert f"| {tier} | {v['delta'] * 100:+.1f} | [{v['ci95'][0] * 100:+.1f}, " in card
        assert f"| {v['fixed']} | {v['broken']} | {format_p(v['p'])} |" in card
    assert [c["step"] for c in facts["curve"]] == [0, 1234]  # the repeated final validation once

    packaged = tmp_path / "packaged-data"  # data made with textzoom-synth --no-system-fonts
    packaged.mkdir()
    (packaged / "synth.json").write_text(json.dumps({**synth, "system_fonts": False}))
    run = CliRunner().invoke(model_card.main, [str(weights), "--eval", str(tmp_path / "eval.json"), "--data",
                                               str(packaged), "--device", "one GPU"])
    assert run.exit_code == 0, run.output
    card = (weights / "README.md").read_text()
    assert "`textzoom-synth --no-system-fonts`: the same font split and labels on any machine" in card
    assert json.loads((weights / "card.json").read_text())["system_fonts"] is False

    # weights continued from earlier ones (sr-train --init): the card counts every stage in, the oldest last
    grand = {"name": "glyphsr-synth", "steps": 10, "samples": 2560, "train_time_s": 60.0, "device": "one H100",
             "code_version": "0.1.0+g0000aaaa1111"}
    parent = {"name": "glyphsr-synth", "steps": 258, "samples": 66048, "train_time_s": 190.5, "device": "one H200",
              "code_version": "0.1.0+gf014315", "average": {"model": 0.408}, "continued_from": grand}
    (tmp_path / "parent.json").write_text(json.dumps(parent))
    run = CliRunner().invoke(model_card.main, [str(weights), "--eval", str(tmp_path / "eval.json"), "--device",
                                               "a 2-core CPU", "--continued-from", str(tmp_path / "parent.json")])
    assert run.exit_code == 0, run.output
    card = (weights / "README.md").read_text()
    assert ("1,234 steps, 315,904 samples seen (15.8 epochs), 4.8 minutes of training on a 2-core CPU, code at "
            "commit abcdef123456; continued from earlier weights (`sr-train --init`), which came from 258 steps, "
            "66,048 samples, 3.2 minutes on one H200 (commit f014315); before that, 10 steps, 2,560 samples, 1.0 "
            "minutes on one H100 (commit 0000aaaa1111).") in card
    lineage = json.loads((weights / "card.json").read_text())["continued_from"]
    assert lineage["steps"] == 258 and lineage["continued_from"]["device"] == "one H100"

    (weights / "README.md").write_text("kept")
    ev["model_step"] = 99  # an evaluation of other weights
    (tmp_path / "other.json").write_text(json.dumps(ev))
    run = CliRunner().invoke(model_card.main, [str(weights), "--eval", str(tmp_path / "other.json"),
                                               "--device", "one GPU"])
    assert run.exit_code != 0 and "judged weights of step 99" in run.output + str(run.exception)
    assert (weights / "README.md").read_text() == "kept"


def test_card_of_calibrated_weights_says_the_residual_gain(synth_dir: Path, tmp_path: Path) -> None:
    cfg = RunConfig(model=SRConfig(c_sr=8, c_tp=8, n_blocks=2, n_gly=1, tpg_pretrained=False, residual=True))
    meta = {"config": cfg.to_dict(), "step": 900, "samples": 230400, "epoch": 11.5, "train_time_s": 300.0,
            "code_version": "0.1.0+gabcdef123456", "residual_gain": 0.5,
            "calibrated_from": {"checkpoint": "last", "weights": "ema", "step": 900},
            "calibration": {"n": 300, "bicubic": 0.4, "accuracy": 0.44, "table": {"last": {"0.5": 0.44, "1": 0.35}}}}
    ckpt = write_checkpoint(tmp_path / "calibrated", build_model(cfg.model).state_dict(), meta)
    weights = tmp_path / "glyphsr-synth"
    export(ckpt, weights)
    _judge(weights, synth_dir, tmp_path, 2)
    run = CliRunner().invoke(model_card.main, [str(weights), "--eval", str(tmp_path / "eval.json"), "--device", "x"])
    assert run.exit_code == 0, run.output
    card = (weights / "README.md").read_text()
    assert ("the ema weights of the run's last checkpoint (step 900) with their learned difference scaled by 0.5, "
            "the gain that read best on 300 training pairs") in card
    facts = json.loads((weights / "card.json").read_text())
    assert facts["residual_gain"]["gain"] == 0.5 and facts["residual_gain"]["calibration"]["n"] == 300
    assert "held-out" not in card and "held_out" not in facts

    # a second evaluation on held-out tiers: a section of its own, with its own figures
    ev = json.loads((tmp_path / "eval.json").read_text())
    ev["sets"] = {t: 7 for t in ev["sets"]}  # another set of tiers, told apart by its size here
    (tmp_path / "held.json").write_text(json.dumps(ev))
    run = CliRunner().invoke(model_card.main, [str(weights), "--eval", str(tmp_path / "eval.json"), "--device", "x",
                                               "--held-out", str(tmp_path / "held.json"), "--held-out-desc",
                                               "Tiers Q"])
    assert run.exit_code == 0, run.output
    card = (weights / "README.md").read_text()
    facts = json.loads((weights / "card.json").read_text())
    head, held = card.split("## On held-out tiers (judge: RapidOCR)")
    assert "Tiers Q: no image of them took part in training these weights or in choosing them" in held
    assert "| easy | 7 |" in held and "| easy | 7 |" not in head and "| easy | 2 |" in head
    assert facts["held_out"]["description"] == "Tiers Q" and facts["held_out"]["eval"]["hard"]["n"] == 7
    ev["accuracy"] = {"easyocr": ev["accuracy"]["rapidocr"]}  # judged by another recognizer: refused
    (tmp_path / "held.json").write_text(json.dumps(ev))
    run = CliRunner().invoke(model_card.main, [str(weights), "--eval", str(tmp_path / "eval.json"), "--device", "x",
                                               "--held-out", str(tmp_path / "held.json")])
    assert run.exit_code != 0 and "judge both alike" in run.output + str(run.exception)


def test_card_of_weights_from_an_init_needs_the_card_they_started_from(synth_dir: Path, tmp_path: Path) -> None:
    cfg = RunConfig(model=SRConfig(c_sr=8, c_tp=8, n_blocks=2, n_gly=1, tpg_pretrained=False, residual=True))
    start = {"name": "glyphsr-synth", "path": "/x/glyphsr-synth", "step": 258, "samples": 66048,
             "code_version": "0.1.0+gf014315"}
    meta = {"config": cfg.to_dict(), "step": 40, "samples": 1280, "epoch": 0.1, "train_time_s": 60.0,
            "code_version": "0.1.0+gabcdef123456", "init": start}
    weights = tmp_path / "glyphsr-synth"
    export(write_checkpoint(tmp_path / "last", build_model(cfg.model).state_dict(), meta), weights)
    _judge(weights, synth_dir, tmp_path, 2)
    args = [str(weights), "--eval", str(tmp_path / "eval.json"), "--device", "x"]
    run = CliRunner().invoke(model_card.main, args)  # the start's card not given: refused, and said how
    assert run.exit_code != 0 and "--continued-from" in run.output + str(run.exception)
    assert not (weights / "README.md").exists()
    parent = {"name": "glyphsr-synth", "steps": 198, "samples": 6336, "code_version": "0.1.0+g4d19a37"}
    (tmp_path / "other.json").write_text(json.dumps(parent))  # the card of other weights: refused
    run = CliRunner().invoke(model_card.main, args + ["--continued-from", str(tmp_path / "other.json")])
    assert run.exit_code != 0 and "started from step 258" in run.output + str(run.exception)
    (tmp_path / "same-step.json").write_text(json.dumps({**parent, "steps": 258, "code_version": "0.1.0+gf014315"}))
    run = CliRunner().invoke(model_card.main, args + ["--continued-from", str(tmp_path / "same-step.json")])
    assert run.exit_code != 0 and "66048 samples" in run.output + str(run.exception)  # same step, other weights
    (tmp_path / "parent.json").write_text(json.dumps({**parent, "steps": 258, "samples": 66048,
                                                      "code_version": "0.1.0+gf014315"}))
    run = CliRunner().invoke(model_card.main, args + ["--continued-from", str(tmp_path / "parent.json")])
    assert run.exit_code == 0, run.output
    assert "which came from 258 steps" in (weights / "README.md").read_text()
