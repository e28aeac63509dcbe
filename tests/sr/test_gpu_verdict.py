"""bench/gpu_verdict.py: the verdicts on weights a GPU session brought back (issue 13's first target, and whether
they replace the shipped weights), from their metadata and a real sr-eval."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from bench import gpu_verdict
from glyphsr.pipelines.sr_export import export
from glyphsr.sr.checkpoint import write_checkpoint
from glyphsr.sr.modeling import SRConfig, build_model
from glyphsr.sr.train.config import RunConfig


def _ev(medium=(0.045, 0.001), hard=(0.03, 0.002), acc=(0.6, 0.4, 0.3), n=1000) -> dict:
    vs = {"easy": {"model": {"delta": 0.03, "p": 0.01, "fixed": 60, "broken": 30}},
          "medium": {"model": {"delta": medium[0], "p": medium[1], "fixed": 70, "broken": 25}},
          "hard": {"model": {"delta": hard[0], "p": hard[1], "fixed": 59, "broken": 29}}}
    return {"sets": {t: n for t in ("easy", "medium", "hard")}, "versus_bicubic": {"rapidocr": vs},
            "accuracy": {"rapidocr": {t: {"bicubic": 0.3, "model": a, "hr": 0.97}
                                      for t, a in zip(("easy", "medium", "hard"), acc)}}}


def test_target1_needs_a_short_run_from_scratch_beyond_chance_on_medium_and_hard() -> None:
    fresh = {"train_time_s": 300.0}
    assert gpu_verdict.target1(fresh, _ev()) == {"met": True, "why_not": [], "train_minutes": 5.0}
    assert not gpu_verdict.target1(fresh, _ev(hard=(0.02, 0.08)))["met"]  # not beyond chance
    assert not gpu_verdict.target1(fresh, _ev(medium=(-0.01, 0.01)))["met"]  # significant, but worse
    late = gpu_verdict.target1({"train_time_s": 600.0}, _ev())
    assert not late["met"] and "10.00 minutes" in late["why_not"][0]
    cont = gpu_verdict.target1({"train_time_s": 200.0, "init": {"name": "glyphsr-synth"}}, _ev())
    assert not cont["met"] and "glyphsr-synth" in cont["why_not"][0]
    assert not gpu_verdict.target1({}, _ev())["met"]  # no training time recorded: not shown to fit
    after = gpu_verdict.target1({"train_time_s": 200.0, "residual_gain_by": {"program": "sr-export"}}, _ev())
    assert not after["met"] and "after the run (sr-export)" in after["why_not"][0]


def test_replacing_the_shipped_weights_needs_every_tier_on_as_many_images() -> None:
    card = {"judge": "rapidocr", "eval": {t: {"n": 1000, "sr": a} for t, a in
                                          zip(("easy", "medium", "hard"), (0.588, 0.39, 0.295))}}
    assert gpu_verdict.replaces(_ev(acc=(0.6, 0.4, 0.3)), card) == {"better": True, "why_not": []}
    worse = gpu_verdict.replaces(_ev(acc=(0.6, 0.4, 0.29)), card)
    assert not worse["better"] and worse["why_not"] == ["hard: 29.0% against the shipped 29.5%"]
    assert not gpu_verdict.replaces(_ev(acc=(0.6, 0.39, 0.3)), card)["better"]  # a tie is not better
    assert "500 images" in gpu_verdict.replaces(_ev(n=500), card)["why_not"][0]


def test_cli_judges_each_folder_and_reads_its_evaluation_back(synth_dir: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GLYPHSR_CACHE", str(tmp_path / "cache"))
    cfg = RunConfig(model=SRConfig(c_sr=8, c_tp=8, n_blocks=2, n_gly=1, tpg_pretrained=False, residual=True))
    meta = {"config": cfg.to_dict(), "step": 7, "samples": 224, "epoch": 1.0, "train_time_s": 240.0,
            "code_version": "0.1.0+gabcdef123456", "residual_gain": 0.5}
    weights = tmp_path / "files" / "scratch-synth"
    export(write_checkpoint(tmp_path / "ckpt", build_model(cfg.model).state_dict(), meta), weights)
    card = {"judge": "rapidocr", "eval": {t: {"n": 3, "sr": 1.0} for t in ("easy", "medium", "hard")}}
    (tmp_path / "card.json").write_text(json.dumps(card))
    args = [str(weights), "--data", str(synth_dir), "--card", str(tmp_path / "card.json"), "--limit", "3",
            "--json", str(tmp_path / "out" / "verdict.json")]
    res = CliRunner().invoke(gpu_verdict.main, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    v = json.loads((tmp_path / "out" / "verdict.json").read_text())["scratch-synth"]
    ev = json.loads((tmp_path / "out" / "scratch-synth-eval-3.json").read_text())
    assert ev["model_step"] == 7 and v["n"] == {"easy": 3, "medium": 3, "hard": 3}
    assert v["accuracy"]["hard"]["model"] == ev["accuracy"]["rapidocr"]["hard"]["model"]
    assert v["target1"]["train_minutes"] == 4.0 and v["residual_gain"] == 0.5 and v["init"] is None
    assert not v["replaces_shipped"]["better"]  # nothing beats a card at 100%
    assert "target 1:" in res.output and "replaces the shipped weights: no" in res.output
    stamp = (tmp_path / "out" / "scratch-synth-eval-3.json").stat().st_mtime_ns
    res = CliRunner().invoke(gpu_verdict.main, args, catch_exceptions=False)  # read back, not judged again
    assert res.exit_code == 0 and (tmp_path / "out" / "scratch-synth-eval-3.json").stat().st_mtime_ns == stamp
