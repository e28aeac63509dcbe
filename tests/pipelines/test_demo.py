"""glyphsr-demo end to end at its tiny size, through its entry point: every stage runs (textzoom-synth, GEM,
gem-extract, sr-train, sr-eval, sr-infer), report.md names each and every picture it shows exists; weights shipped
with the package are judged and run beside the demo's own run; a second run reuses the finished stages; a folder
made with other settings is refused."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import glyphsr.weights
from glyphsr.data.mask_store import MaskStore
from glyphsr.pipelines import demo
from glyphsr.sr.checkpoint import write_checkpoint
from glyphsr.sr.modeling import SRConfig, build_model
from glyphsr.sr.train.config import RunConfig
from tests.sr.test_infer import one_thread  # noqa: F401 - autouse: torch on one thread

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def shipped(tmp_path: Path, monkeypatch) -> str:
    """A weights folder holding one tiny checkpoint, standing in for the package's shipped weights."""
    torch.manual_seed(0)
    cfg = RunConfig(model=SRConfig(c_sr=8, c_tp=8, n_blocks=2, n_gly=1, tpg_pretrained=False))
    weights = tmp_path / "weights"
    write_checkpoint(weights / "tiny-test", build_model(cfg.model).state_dict(), {"config": cfg.to_dict(), "step": 0})
    monkeypatch.setattr(glyphsr.weights, "WEIGHTS_DIR", weights)
    return "tiny-test"


def test_tiny_demo_runs_every_stage_and_writes_the_report(tmp_path: Path, shipped: str, monkeypatch) -> None:
    monkeypatch.setenv("GLYPHSR_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    res = CliRunner().invoke(demo.main, ["--out", str(out), "--size", "tiny"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    for stage in ("textzoom-synth", "GEM", "gem-extract", "sr-train", "sr-eval", "sr-infer"):
        assert f"{stage}" in res.output
    report = (out / "report.md").read_text()
    for heading in ("## 1. Synthetic data (`textzoom-synth`)", "## 2. GEM", "## 3. The mask store (`gem-extract`)",
                    "## 4. Training (`sr-train`)", "## 5. Evaluation (`sr-eval`)", "## 6. `sr-infer`"):
        assert heading in report
    # every stage has a row in the timing table
    for stage in ("textzoom-synth", "GEM", "gem-extract", "sr-train", "sr-eval", "sr-infer", "pictures"):
        assert re.search(rf"^\| {stage} \| [0-9.]+ \|", report, re.M), stage
    pictures = re.findall(r"!\[[^\]]+\]\(([^)]+)\)", report)
    assert set(pictures) == {"samples-hard.png", "gem-test.png", "masks-train.png", "run/curves.png", "sr-test.png",
                             "infer/this-demo-s-run/sheet-001.png", f"infer/shipped-{shipped}/sheet-001.png"}
    for p in pictures:
        with Image.open(out / p) as img:
            assert img.width >= 400 and img.height >= 100, p
    # Table 1: bicubic, the demo's run (and its EMA weights), the shipped weights, HR; every tier
    table = report.split("| method |", 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    rows = [line.split(" | ")[0].lstrip("| ") for line in table]
    assert rows == ["bicubic", "GlyphSR, this demo's run", "GlyphSR, this demo's run, EMA weights",
                    f"GlyphSR, shipped {shipped}", "HR"]
    assert "| method | easy (n=8) | medium (n=8) | hard (n=8) | average | PSNR (dB) | SSIM |" in report
    assert "ships no trained weights" not in report and f"ships {shipped}" in report
    assert "What this run shows, and what it cannot" in report and "2,652 samples/s" in report
    # the stages' own outputs
    store = MaskStore.open(out / "masks.zarr")
    assert len(store) == 24 and store.meta["complete"]
    summary = json.loads((out / "run" / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["result"]["finished"]
    ev = json.loads((out / "eval" / "this-demo-s-run.json").read_text())
    assert ev["sets"] == {"easy": 8, "medium": 8, "hard": 8} and ev["model_step"] == 2
    with Image.open(out / "infer" / "this-demo-s-run" / "long-line.png") as img:
        assert img.height == 32 and img.width > 8 * 32  # tiles: twice the line resized to height 16
    # a second run reuses what is finished and says so
    res = CliRunner().invoke(demo.main, ["--out", str(out), "--size", "tiny"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    for what in ("the synthetic data", "the mask store", "the finished training run", "the evaluation of this demo's"):
        assert f"reusing {what}" in res.output, what
    assert "| sr-train | " in (out / "report.md").read_text() and "| reused |" in (out / "report.md").read_text()
    # other settings in the same folder are refused before any work
    res = CliRunner().invoke(demo.main, ["--out", str(out), "--size", "tiny", "--train", "30"])
    assert res.exit_code == 2 and "other settings" in res.output and "train: 24" in res.output


def test_help_names_the_sizes() -> None:
    res = subprocess.run([sys.executable, "-m", "glyphsr.pipelines.demo", "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    for size in ("tiny", "cpu", "gpu", "auto"):
        assert size in res.stdout


def test_report_judges_the_run_against_bicubic_image_by_image() -> None:
    """The report's verdict on the run comes from sr-eval's image-by-image comparison, pooled over the tiers."""
    from types import SimpleNamespace

    from glyphsr.pipelines.demo import SIZES
    from glyphsr.pipelines.demo_report import _training_text

    def text(fixed: list[int], broken: list[int], model: float) -> str:
        tiers = ("easy", "medium", "hard")
        ev = {"sets": dict.fromkeys(tiers, 100), "average": {"rapidocr": {"model": model, "bicubic": 0.448}},
              "versus_bicubic": {"rapidocr": {t: {"model": {"n": 100, "fixed": a, "broken": b}}
                                              for t, a, b in zip(tiers, fixed, broken)}}}
        f = SimpleNamespace(train={"summary": {"data": {"used": 2000}, "samples_per_s": 10.0, "samples_seen": 3000,
                                               "steps": 190, "train_time_s": 300}},
                            size=SIZES["cpu"], evals={"this demo's run": ev}, device="cpu", size_name="cpu")
        return _training_text(f)

    tie = text([10, 8, 9], [9, 7, 9], 0.455)
    assert "fixed 27 of the images bicubic misread and broke 25" in tie and "p = 0.89 over the 300 images" in tie
    assert "within chance." in tie
    win = text([30, 25, 20], [5, 6, 4], 0.6)
    assert "fixed 75 of the images bicubic misread and broke 15" in win and "p < 0.001 over the 300 images" in win
    assert "beyond chance at this size" in win
    loss = text([2, 3, 1], [20, 25, 18], 0.3)
    assert "beyond chance, below bicubic" in loss
