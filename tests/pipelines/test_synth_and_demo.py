"""textzoom-synth and the demo as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from glyphsr.data.mask_store import MaskStore
from glyphsr.data.textzoom import TextZoomLMDB
from glyphsr.pipelines import demo, textzoom_synth

ROOT = Path(__file__).resolve().parents[2]


def test_synth_cli_writes_layout_and_refuses_to_clobber(tmp_path: Path) -> None:
    out = tmp_path / "tz"
    res = CliRunner().invoke(textzoom_synth.main, ["--out", str(out), "--train", "10", "--test", "5",
                                                   "--seed", "1", "--quiet"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1]) == {"train": 10, "easy": 5, "medium": 5, "hard": 5}
    assert len(TextZoomLMDB(out / "test" / "medium")) == 5
    again = CliRunner().invoke(textzoom_synth.main, ["--out", str(out), "--train", "1", "--test", "1", "--quiet"])
    assert again.exit_code == 2 and "already holds" in again.output
    assert len(TextZoomLMDB(out / "train")) == 10  # nothing lost
    bad = CliRunner().invoke(textzoom_synth.main, ["--out", str(out), "--train", "-1"])
    assert bad.exit_code == 2


def test_demo_runs_as_python_module(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "glyphsr.pipelines.demo", "--out", str(tmp_path / "d"),
                          "--train", "20", "--test", "8", "--workers", "2"], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "d" / "samples-hard.png").stat().st_size > 1000
    assert (tmp_path / "d" / "gem-medium.png").stat().st_size > 1000 and "mean character IoU" in res.stdout
    assert "20 samples, 20 good, 0 bad, 20 with glyph ground truth" in res.stdout
    assert (tmp_path / "d" / "masks-train.png").stat().st_size > 1000 and "mask store" in res.stdout
    store = MaskStore.open(tmp_path / "d" / "masks.zarr")
    assert len(store) == 20 and store.done().all() and store.meta["complete"]
    res2 = CliRunner().invoke(demo.main, ["--out", str(tmp_path / "d")])  # reuses the data
    assert res2.exit_code == 0 and "reusing" in res2.output
