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


def test_trainer_steps_on_cuda(tmp_path) -> None:
    """The real loop on CUDA: uint8 data on the device, precomputed text-focus targets, bf16 autocast, fused Adam,
    EMA; the loss goes down over a few steps on one repeated batch."""
    import numpy as np

    from glyphsr.sr.train.config import RunConfig, TrainConfig
    from glyphsr.sr.train.data import build_tensors
    from glyphsr.sr.train.loop import Trainer

    rng = np.random.default_rng(0)
    n = 16
    data = build_tensors(rng.integers(0, 256, (n, 3, 16, 64), dtype=np.uint8),
                         rng.integers(0, 256, (n, 3, 32, 128), dtype=np.uint8), ["word"] * n,
                         np.zeros((n, 1, 16, 64), np.uint8), np.zeros((n, 15, 16, 64), np.uint8), np.ones(n, bool))
    cfg = RunConfig(model=SRConfig(residual=True), train=TrainConfig(batch=16, steps=8, warmup_steps=1, ema=0.9,
                                                                      log_every=1, val_every=0, ckpt_every=0))
    t = Trainer(cfg, data, tmp_path, "cuda")
    assert t.autocast and t.data.lr.is_cuda and t.data.tf_target is not None and t.data.tf_target.is_cuda
    losses = [float(t.train_step()["total"]) for _ in range(8)]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]


def test_cpu_and_cuda_networks_agree() -> None:
    """The same weights give the same SR image on the CPU (deformable convolutions as one grid_sample) and on CUDA
    (torchvision's kernel), in float32 without TF32."""
    torch.manual_seed(0)
    model = build_model(SRConfig(tpg_pretrained=False)).eval()
    x = torch.rand(4, 4, 16, 64)
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.no_grad():
            cpu = model(x).sr
            gpu = model.cuda()(x.cuda()).sr.cpu()
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
    torch.testing.assert_close(gpu, cpu, atol=1e-4, rtol=1e-4)


def test_cuda_sr_function_is_channels_last_and_computes_the_same() -> None:
    """sr-infer's and sr-eval's SR function on CUDA: the network channels-last (faster on an H200), the same image
    as the contiguous network, in float32 without TF32."""
    from glyphsr.sr.runtime import sr_function

    torch.manual_seed(0)
    plain = build_model(SRConfig(tpg_pretrained=False)).eval().cuda()
    fast = build_model(SRConfig(tpg_pretrained=False)).eval().cuda()
    fast.load_state_dict(plain.state_dict())
    x = torch.rand(4, 4, 16, 64, device="cuda")
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.benchmark
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        fn = sr_function(fast, "cuda")  # turns cuDNN's autotuner on: put back after the test
        assert fast.head[0].weight.is_contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            torch.testing.assert_close(fn(x), plain(x).sr, atol=1e-4, rtol=1e-4)
    finally:
        (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32,
         torch.backends.cudnn.benchmark) = saved


def test_triton_gru_matches_cudnn() -> None:
    """The Triton GRU kernels (the default for the SR blocks' GRUs on CUDA) against cuDNN's: float32 without TF32
    (forward and every gradient), both block sizes (32 rows a program, 64 for many rows), and under bfloat16
    autocast as close as cuDNN's own 16-bit GRU is to float32."""
    from glyphsr.sr.modeling import gru_triton

    if not gru_triton.available("cuda"):
        pytest.skip("Triton does not import here")
    dev = torch.device("cuda")
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        torch.manual_seed(0)
        for n, t in ((300, 64), (17000, 16)):
            g = torch.nn.GRU(64, 32, bidirectional=True, batch_first=True).to(dev)
            x = torch.randn(n, t, 64, device=dev, requires_grad=True)
            ref, got = g(x)[0], gru_triton.gru_triton(g, x)
            torch.testing.assert_close(got, ref, rtol=0, atol=2e-5)
            go = torch.randn_like(ref)
            for a, b in zip(torch.autograd.grad(got, [x, *g.parameters()], go),
                            torch.autograd.grad(ref, [x, *g.parameters()], go)):
                torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * b.abs().max().item())
            with torch.autocast("cuda", dtype=torch.bfloat16):
                low_ref, low = g(x)[0], gru_triton.gru_triton(g, x)
            assert low.dtype == torch.bfloat16
            assert (low.float() - ref).abs().max() <= 2 * (low_ref.float() - ref).abs().max() + 1e-2
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_matmul_resize_on_cuda_equals_interpolate() -> None:
    from glyphsr.sr.modeling.resize import resize

    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        x = torch.randn(8, 32, 25, 509, device="cuda")
        torch.testing.assert_close(resize(x, (16, 64), "bilinear"), torch.nn.functional.interpolate(
            x, size=(16, 64), mode="bilinear", align_corners=False), rtol=0, atol=1e-5)
        lr = torch.rand(8, 4, 16, 64, device="cuda")
        with torch.autocast("cuda", dtype=torch.bfloat16):
            up = resize(lr, (32, 128), "bicubic", antialias=True, keep_dtype=True)
        assert up.dtype == torch.float32
        torch.testing.assert_close(up, torch.nn.functional.interpolate(
            lr, size=(32, 128), mode="bicubic", align_corners=False, antialias=True), rtol=0, atol=1e-5)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved


def test_grid_deformable_convolution_on_cuda_equals_torchvision(monkeypatch) -> None:
    """GLYPHSR_DEFORM=grid on CUDA (one grid_sample, the CPU's form) against torchvision's CUDA kernel: the block's
    output and its input gradient."""
    from glyphsr.sr.modeling.deform import DeformBlock

    torch.manual_seed(0)
    block = DeformBlock(32).cuda()
    torch.nn.init.normal_(block.offset_mask.weight, std=0.1)  # offsets of a few pixels, not near zero
    y = torch.rand(4, 32, 16, 64, device="cuda")
    res = {}
    for impl in ("torchvision", "grid"):
        monkeypatch.setenv("GLYPHSR_DEFORM", impl)
        x = y.clone().requires_grad_(True)
        out = block(x)
        (g,) = torch.autograd.grad(out.square().sum(), x)
        res[impl] = out.detach(), g
    torch.testing.assert_close(res["grid"][0], res["torchvision"][0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(res["grid"][1], res["torchvision"][1], atol=1e-3, rtol=1e-3)
