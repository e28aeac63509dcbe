"""The data layer stays light: Dask workers and tools import it without torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_data_layer_does_not_import_torch() -> None:
    code = ("import sys, glyphsr.data, glyphsr.data.glyph_truth, glyphsr.data.synth.generator, "
            "glyphsr.pipelines.textzoom_info, glyphsr.pipelines.textzoom_synth; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
