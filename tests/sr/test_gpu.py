"""The network and its loss on a CUDA device, in float32 and under bfloat16 autocast (skipped without a GPU)."""

from __future__ import annotations

import pytest
import torch

from glyphsr.sr.losses import GlyphSRLoss
from glyphsr.sr.modeling import SRConfig, build_model

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_training_step_on_cuda(dtype: torch.dtype) -> None:
    dev = torch.device("cuda")
    model = build_model(SRConfig()).to(dev).train()
    crit = GlyphSRLoss().to(dev)
    lr, hr = torch.rand(8, 4, 16, 64, device=dev), torch.rand(8, 4, 32, 128, device=dev)
    line = (torch.rand(8, 1, 32, 128, device=dev) > 0.7).float()
    char = (torch.rand(8, 15, 32, 128, device=dev) > 0.95).float()
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        out = model(lr)
        loss = crit(out, hr, ["glyph"] * 8, line, char)["total"]
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
