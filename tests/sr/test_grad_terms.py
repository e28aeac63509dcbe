"""bench.grad_terms: each loss term's gradient norm per module equals a direct computation, and terms that do not
reach a module give it none."""

from __future__ import annotations

from pathlib import Path

import torch

from bench.grad_terms import term_norms
from glyphsr.sr.train.loop import Trainer
from tests.sr.test_train import tiny_config, tiny_data


def test_term_norms_match_a_direct_gradient(tmp_path: Path) -> None:
    torch.manual_seed(0)
    t = Trainer(tiny_config(steps=1, precision="fp32"), tiny_data(), tmp_path)  # no bf16 autocast
    values, norms = term_norms(t, 4)
    assert {"pix", "cls", "total"} <= set(norms) and values["total"] > 0
    assert "out" in norms["pix"] and "out" not in norms["cls"]  # the class head's loss stops before the last conv
    # the pixel loss's gradient on the last convolution, computed directly on the same batch
    b = t.data.batch(torch.arange(4))
    t.net.train()
    t.crit.train()
    terms = t.crit(t.net(b["lr"]), b["hr"], b.get("labels"), b["line"], b["char"], cls_t=b["cls"],
                   glyph_valid=b["glyph_ok"])
    out_params = [p for n, p in t.model.named_parameters() if n.startswith("out.")]
    direct = sum(float(g.pow(2).sum()) for g in torch.autograd.grad(terms["pix"], out_params)) ** 0.5
    assert abs(norms["pix"]["out"] - direct) <= 1e-5 * max(direct, 1e-12)
