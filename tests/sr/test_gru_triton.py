"""The SR blocks' GRUs as Triton kernels (glyphsr.sr.modeling.gru_triton): run here by Triton's interpreter
(TRITON_INTERPRET=1, which must be set before Triton is imported, so in a child process), against nn.GRU."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from glyphsr.sr.modeling import SRConfig, build_model, gru_triton, sr_branch

pytest.importorskip("triton")

CHILD = r"""
import json, torch
from torch import nn
from glyphsr.sr.modeling import SRConfig, build_model, gru_triton
torch.manual_seed(0)
out = {"available": gru_triton.available("cpu")}
for bid in (True, False):
    for n, t, hid in [(70, 9, 32), (5, 3, 16)]:  # 70 rows: three programs of 32, the last one part-filled
        g = nn.GRU(24, hid, bidirectional=bid, batch_first=True)
        x = torch.randn(n, t, 24, requires_grad=True)
        ref, got = g(x)[0], gru_triton.gru_triton(g, x)
        go = torch.randn_like(ref)
        g_ref = torch.autograd.grad(ref, [x, *g.parameters()], go)
        g_got = torch.autograd.grad(got, [x, *g.parameters()], go)
        out[f"{bid} {n} {t} {hid}"] = [(ref - got).abs().max().item(), max((a - b).abs().max().item()
                                       for a, b in zip(g_ref, g_got)), max(a.abs().max().item() for a in g_ref)]
model = build_model(SRConfig(c_sr=32, c_tp=8, n_blocks=1, n_gly=1, tpg_pretrained=False)).eval()  # hidden 16
import os
x = torch.rand(2, 4, 16, 64)
with torch.no_grad():
    os.environ["GLYPHSR_GRU"] = "native"
    a = model(x).sr
    os.environ["GLYPHSR_GRU"] = "triton"
    b = model(x).sr
out["network"] = (a - b).abs().max().item()
print(json.dumps(out))
"""


def test_triton_gru_equals_nn_gru_with_gradients() -> None:
    """Forward and every gradient (input, both directions' weights and biases) equal nn.GRU's up to float32
    rounding, bidirectional or not, with a part-filled last block; GLYPHSR_GRU=triton gives the network the same
    output as the native GRUs (its SR block's GRUs, hidden size 16, run as the kernels; the GPM's natively)."""
    env = {**os.environ, "TRITON_INTERPRET": "1", "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out.pop("available") is True
    assert out.pop("network") < 1e-5
    assert len(out) == 4
    for case, (fwd, grad, scale) in out.items():
        assert fwd < 1e-5, case
        assert grad < 1e-5 * max(scale, 1.0), (case, grad, scale)


def test_gru_impl_for_picks_per_gru_and_device(monkeypatch) -> None:
    """auto: the kernels on CUDA only (never on the CPU without the interpreter); triton falls back to the native
    GRU for what the kernels do not take (the GPM's hidden size 256); a bad value names the variable."""
    small = torch.nn.GRU(64, 32, bidirectional=True, batch_first=True)
    big = torch.nn.GRU(1024, 256, bidirectional=True, batch_first=True)
    cpu = torch.device("cpu")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.delenv("GLYPHSR_GRU", raising=False)
    assert sr_branch.gru_impl() == "auto"
    assert sr_branch.gru_impl_for(small, cpu) == "native"
    monkeypatch.setenv("GLYPHSR_GRU", "triton")
    assert sr_branch.gru_impl_for(small, cpu) == "native"  # no CUDA, no interpreter
    assert not gru_triton.supports(big) and gru_triton.supports(small)
    monkeypatch.setattr(gru_triton, "available", lambda device: True)
    assert sr_branch.gru_impl_for(small, cpu) == "triton"
    assert sr_branch.gru_impl_for(big, cpu) == "native"
    monkeypatch.setenv("GLYPHSR_GRU", "auto")
    assert sr_branch.gru_impl_for(small, cpu) == "native"
    assert sr_branch.gru_impl_for(small, torch.device("cuda")) == "triton"
    monkeypatch.setenv("GLYPHSR_GRU", "scan")
    assert sr_branch.gru_impl_for(big, cpu) == "scan"
    with pytest.raises(ValueError, match="gru_triton takes"):
        gru_triton.gru_triton(big, torch.randn(2, 3, 1024))
    model = build_model(SRConfig(c_sr=16, c_tp=8, n_blocks=1, n_gly=1, tpg_pretrained=False))
    monkeypatch.setenv("GLYPHSR_GRU", "fast")
    with pytest.raises(ValueError, match="GLYPHSR_GRU='fast'"):
        model.eval()(torch.rand(1, 4, 16, 64))
