"""textzoom-synth as a user runs it (the demo's tests are in test_demo.py)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from glyphsr.data.textzoom import TextZoomLMDB
from glyphsr.pipelines import textzoom_synth


def test_synth_cli_writes_layout_and_refuses_to_clobber(tmp_path: Path) -> None:
    out = tmp_path / "tz"
    res = CliRunner().invoke(textzoom_synth.main, ["--out", str(out), "--train", "10", "--test", "5",
                                                   "--val", "3", "--seed", "1", "--quiet"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1]) == {"train": 10, "easy": 5, "medium": 5, "hard": 5,
                                                               "val-easy": 3, "val-medium": 3, "val-hard": 3}
    assert len(TextZoomLMDB(out / "test" / "medium")) == 5 and len(TextZoomLMDB(out / "val" / "hard")) == 3
    again = CliRunner().invoke(textzoom_synth.main, ["--out", str(out), "--train", "1", "--test", "1", "--quiet"])
    assert again.exit_code == 2 and "already holds" in again.output
    assert len(TextZoomLMDB(out / "train")) == 10  # nothing lost
    bad = CliRunner().invoke(textzoom_synth.main, ["--out", str(out), "--train", "-1"])
    assert bad.exit_code == 2


def test_synth_cli_without_system_fonts_uses_packaged_fonts_only(tmp_path: Path) -> None:
    from glyphsr.data.synth.fonts import available_fonts

    out = tmp_path / "tz"
    res = CliRunner().invoke(textzoom_synth.main, ["--out", str(out), "--train", "4", "--test", "2", "--val", "0",
                                                   "--seed", "1", "--workers", "1", "--no-system-fonts", "--quiet"])
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / "synth.json").read_text())
    assert manifest["system_fonts"] is False
    packaged = {Path(f.path).name for f in available_fonts(system=False)}
    assert set(manifest["fonts"]["train_files"] + manifest["fonts"]["test_files"]) == packaged
