"""bench/_profile.py: glyphsr's profiler ranges (the network's parts, the trainer's phases) as a table."""

from __future__ import annotations

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from bench._profile import ranges_table
from glyphsr.sr.modeling import SRConfig, build_model


def test_ranges_table_names_the_networks_parts_per_pass() -> None:
    torch.manual_seed(0)
    model = build_model(SRConfig(c_sr=8, c_tp=8, n_blocks=2, n_gly=1, tpg_pretrained=False)).eval()
    x = torch.rand(2, 4, 16, 64)
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(2):
            with record_function("other"):  # not glyphsr's: left out
                model(x)
    table = ranges_table(prof.key_averages(), cuda=False, per=2, per_label="pass")
    rows = {line.split()[0]: line.split() for line in table.splitlines()[1:]}
    assert set(rows) == {"glyphsr.tpg", "glyphsr.srb", "glyphsr.gpm", "glyphsr.gfm"}
    assert rows["glyphsr.srb"][2] == "4" and rows["glyphsr.tpg"][2] == "2"  # 2 blocks x 2 passes; 1 a pass
    assert rows["glyphsr.gfm"][2] == "4"  # from block n_gly = 1 on: both blocks fuse glyphs
    assert all(float(r[3]) > 0 and abs(float(r[4]) - float(r[3]) / 2) < 0.06 for r in rows.values())
    assert "ms per pass" in table.splitlines()[0]
