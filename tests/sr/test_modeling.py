"""The GlyphSR network: every ablation variant forward and backward on the CPU (batch 2), component shapes."""

from __future__ import annotations

import itertools

import pytest
import torch

from glyphsr.sr.modeling import CLS_CLASSES, SRConfig, build_model
from glyphsr.sr.modeling.gfm import GlyphFusion
from glyphsr.sr.modeling.gpm import GlyphPerception
from glyphsr.sr.modeling.stn import TPSSTN, TPSGrid, canonical_points
from glyphsr.sr.modeling.tp_transformer import TPTransformer

TASK_SUBSETS = [tuple(t for t, on in zip(("line", "char", "cls"), bits) if on)
                for bits in itertools.product((0, 1), repeat=3)]


def _check_step(cfg: SRConfig) -> None:
    torch.manual_seed(0)
    model = build_model(cfg).train()
    lr = torch.rand(2, 4, 16, 64)
    out = model(lr)
    assert out.sr.shape == (2, 4, 32, 128) and out.tp_probs.shape == (2, 97, 1, 63)
    assert not torch.allclose(out.sr[0], out.sr[1])  # the SR image depends on the LR image
    r = cfg.resolved()
    for name, shape in (("line", (2, 1, 16, 64)), ("char", (2, 15, 16, 64)), ("cls", (2, 15, CLS_CLASSES))):
        value = getattr(out, name)
        assert (value is not None) == (name in r.gpm_tasks), name
        if value is not None:
            assert value.shape == shape
    loss = out.sr.square().mean() + sum(getattr(out, k).square().mean() for k in r.gpm_tasks)
    loss.backward()
    assert torch.isfinite(loss)
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
            assert p.grad.abs().sum() > 0, f"no gradient reaches {name}"


@pytest.mark.parametrize("tasks", TASK_SUBSETS, ids=lambda t: "+".join(t) or "none")
def test_gpm_task_subsets_without_gfm(tasks) -> None:  # the paper's Table 3
    _check_step(SRConfig(gpm_tasks=tasks, gfm=False))


@pytest.mark.parametrize("n_gly", [3, 4, 5])
def test_gfm_from_block(n_gly: int) -> None:  # Table 4
    _check_step(SRConfig(n_gly=n_gly))


@pytest.mark.parametrize("variant", ["baseline1", "baseline2"])
def test_baselines(variant: str) -> None:  # Table 2
    cfg = SRConfig(variant=variant)
    _check_step(cfg)
    model = build_model(cfg)
    assert model.gfm is None and (model.gpm is None) == (variant == "baseline1")


def test_without_stn_and_eval_mode_skips_stn() -> None:
    _check_step(SRConfig(stn=False, gpm_tasks=("line", "char"), tpg_trainable=False))
    model = build_model(SRConfig()).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 4, 16, 64))
    assert out.sr.shape == (1, 4, 32, 128)


def test_tp_transformer_sizes() -> None:
    for classes, t in ((95, 26), (97, 63)):
        tp = TPTransformer(classes)(torch.rand(2, classes, 1, t).softmax(1))
        assert tp.shape == (2, 32, 16, 64)


def test_tps_identity_and_stn_start() -> None:
    pts = canonical_points(20, (0.05, 0.05))
    grid = TPSGrid((16, 64), pts)(pts[None])
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, 16), torch.linspace(-1, 1, 64), indexing="ij")
    torch.testing.assert_close(grid[0], torch.stack([xs, ys], -1), atol=1e-4, rtol=0)
    x = torch.rand(2, 4, 16, 64)
    assert (TPSSTN().train()(x) - x).abs().mean() < 0.02  # an untrained STN barely moves the image


def test_gpm_and_gfm_shapes() -> None:
    f = torch.rand(2, 64, 16, 64)
    out = GlyphPerception(tasks=("char", "cls"))(f)
    assert out["line"] is None and out["char"].shape == (2, 15, 16, 64) and out["cls"].shape == (2, 15, 95)
    assert GlyphFusion()(f, out["char"]).shape == f.shape


def test_config_validation_and_round_trip() -> None:
    with pytest.raises(ValueError, match="gfm needs 'char'"):
        SRConfig(gpm_tasks=("line", "cls"))
    with pytest.raises(ValueError, match="n_gly"):
        SRConfig(n_gly=6)
    with pytest.raises(ValueError, match="variant"):
        SRConfig(variant="baseline3")
    with pytest.raises(ValueError, match="tpg_weights"):
        SRConfig(tpg="parseq")
    with pytest.raises(ValueError, match="tpg must be"):
        SRConfig(tpg="aster")
    with pytest.raises(ValueError, match="subset"):
        SRConfig(gpm_tasks=("lines",))
    cfg = SRConfig(n_gly=3, gpm_tasks=("line", "char"))
    assert SRConfig.from_dict(cfg.to_dict()) == cfg
    assert SRConfig(variant="baseline2").resolved().gpm_tasks == ("line",)


def test_sr_never_imports_gem() -> None:
    import subprocess
    import sys

    code = ("import sys, glyphsr.sr.modeling, glyphsr.sr.losses; "
            "bad = [m for m in sys.modules if m.startswith('glyphsr.gem') or m.startswith('glyphsr.pipelines')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_parseq_tpg_variant() -> None:
    """The paper's TPG with random PARSeq weights (the checkpoint is not obtainable here): (B, 95, 1, 26)."""
    torch.manual_seed(0)
    model = build_model(SRConfig(tpg="parseq", tpg_pretrained=False)).train()
    out = model(torch.rand(2, 4, 16, 64))
    assert out.tp_probs.shape == (2, 95, 1, 26) and out.sr.shape == (2, 4, 32, 128)
    torch.testing.assert_close(out.tp_probs.sum(1), torch.ones(2, 1, 26))
    (out.sr.square().mean() + out.cls.square().mean()).backward()
    assert model.tpg.recognizer.head.weight.grad.abs().sum() > 0  # fine-tuned with the network


def test_cpu_deformable_convolution_equals_torchvision() -> None:
    """The CPU path (one grid_sample over the 9 taps) computes torchvision's deform_conv2d, forward and backward,
    with offsets large enough to leave the image, on odd sizes, with and without bias."""
    from torchvision.ops import deform_conv2d

    from glyphsr.sr.modeling.deform import DeformBlock, deform_conv_depthwise

    torch.manual_seed(0)
    for (b, c, h, w), bias in (((2, 8, 16, 64), True), ((1, 3, 5, 7), False), ((1, 2, 1, 6), True)):
        x = torch.randn(b, c, h, w, dtype=torch.float64, requires_grad=True)
        off = (torch.randn(b, 18, h, w, dtype=torch.float64) * 3).requires_grad_()
        mask = torch.rand(b, 9, h, w, dtype=torch.float64, requires_grad=True)
        weight = torch.randn(c, 1, 3, 3, dtype=torch.float64, requires_grad=True)
        bb = torch.randn(c, dtype=torch.float64, requires_grad=True) if bias else None
        inputs = [x, off, mask, weight] + ([bb] if bias else [])
        ours = deform_conv_depthwise(x, off, mask, weight, bb)
        ref = deform_conv2d(x, off, weight, bb, padding=1, mask=mask)
        torch.testing.assert_close(ours, ref, atol=1e-10, rtol=1e-10)
        g = torch.randn_like(ref)
        for a, r in zip(torch.autograd.grad(ours, inputs, g), torch.autograd.grad(ref, inputs, g)):
            torch.testing.assert_close(a, r, atol=1e-8, rtol=1e-8)
    with pytest.raises(ValueError, match="depthwise 3x3"):
        deform_conv_depthwise(torch.rand(1, 4, 8, 8), torch.rand(1, 18, 8, 8), torch.rand(1, 9, 8, 8),
                              torch.rand(4, 2, 3, 3), None)
    block = DeformBlock(32).eval()  # the block's CPU path and torchvision's module agree
    y = torch.rand(2, 32, 16, 64)
    with torch.no_grad():
        r = block.reduce(y)
        om = block.offset_mask(torch.cat([r, torch.nn.functional.interpolate(
            block.context(r), size=r.shape[-2:], mode="bilinear", align_corners=False)], 1))
        via_tv = block.dcn(r, om[:, :18], torch.sigmoid(om[:, 18:]))
        via_tv = y + block.expand(via_tv * block.gate(via_tv))
        torch.testing.assert_close(block(y), via_tv, atol=1e-5, rtol=1e-5)


def test_glyphsr_deform_selects_the_deformable_convolution(monkeypatch) -> None:
    """GLYPHSR_DEFORM: auto is the grid_sample form on every device; torchvision and grid give the block the same
    output; a bad value names the variable."""
    from glyphsr.sr.modeling import deform

    calls = []
    real = deform.deform_conv_depthwise
    monkeypatch.setattr(deform, "deform_conv_depthwise", lambda *a: calls.append(1) or real(*a))
    block = deform.DeformBlock(16).eval()
    y = torch.rand(2, 16, 16, 64)
    out = {}
    with torch.no_grad():
        for impl in ("", "torchvision", "grid"):
            monkeypatch.setenv("GLYPHSR_DEFORM", impl)
            out[impl] = block(y)
    assert calls == [1, 1]  # auto (empty) and grid on the CPU, not torchvision
    assert deform.deform_impl(torch.device("cuda")) == "grid"
    monkeypatch.setenv("GLYPHSR_DEFORM", "auto")
    assert deform.deform_impl(torch.device("cuda")) == "grid"
    monkeypatch.setenv("GLYPHSR_DEFORM", "torchvision")
    assert deform.deform_impl(torch.device("cuda")) == "torchvision"
    torch.testing.assert_close(out["torchvision"], out["grid"], atol=1e-5, rtol=1e-5)
    monkeypatch.setenv("GLYPHSR_DEFORM", "fast")
    with pytest.raises(ValueError, match="GLYPHSR_DEFORM='fast'"):
        block(y)


def test_tp_steps_pool_the_tpg_steps() -> None:
    """The CRNN TPG's 63 steps are averaged into 26 (still distributions) before the TP transformer; tp_steps=None
    feeds all 63; a configuration saved before tp_steps existed reads back as None."""
    torch.manual_seed(0)
    model = build_model(SRConfig(tpg_pretrained=False)).eval()
    seen, tps = [], []
    model.tp_transformer.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    model.tp_transformer.register_forward_hook(lambda m, args, out: tps.append(out))
    lr = torch.rand(2, 4, 16, 64)
    with torch.no_grad():
        out = model(lr)
        assert out.tp_probs.shape == (2, 97, 1, 63) and seen[-1].shape == (2, 97, 1, 26)
        torch.testing.assert_close(seen[-1].sum(1), torch.ones(2, 1, 26))
        torch.testing.assert_close(seen[-1][..., 0], out.tp_probs[..., :3].mean(-1))  # bin 0 = steps 0-2
        model.tp_steps = None
        model(lr)
        assert seen[-1].shape == (2, 97, 1, 63) and tps[-1].shape == tps[0].shape == (2, 32, 16, 64)
        assert not torch.allclose(tps[-1], tps[0])
    legacy = SRConfig().to_dict()
    del legacy["tp_steps"]
    assert SRConfig.from_dict(legacy).tp_steps is None
    with pytest.raises(ValueError, match="tp_steps"):
        SRConfig(tp_steps=0)


def test_upsampler_starts_checkerboard_free() -> None:
    """ICNR: the untrained upsampler's output is constant on every 2x2 block (a nearest-neighbour upsampling)."""
    from glyphsr.sr.modeling.sr_branch import Upsampler, icnr_

    torch.manual_seed(0)
    up = Upsampler(8, 2)
    y = up(torch.randn(2, 8, 5, 7))
    assert y.shape == (2, 8, 10, 14)
    for i, j in ((0, 1), (1, 0), (1, 1)):
        torch.testing.assert_close(y[..., i::2, j::2], y[..., 0::2, 0::2])
    assert y.std() > 0.1  # not a constant map
    with pytest.raises(ValueError, match="divisible"):
        icnr_(torch.nn.Conv2d(4, 6, 3), 2)


def test_gru_precision_under_autocast(monkeypatch) -> None:
    """The SR blocks' GRUs run in float32 under autocast on the devices of the default set (the CPU's) or of
    GLYPHSR_FP32_GRU; ``none`` leaves them to autocast (bfloat16); a bad value is refused by name."""
    from glyphsr.sr.modeling.sr_branch import run_gru

    torch.manual_seed(0)
    gru = torch.nn.GRU(16, 8, bidirectional=True, batch_first=True)
    x = torch.randn(4, 12, 16)
    with torch.no_grad():
        ref = gru(x)[0]

        def under_autocast() -> torch.Tensor:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return run_gru(gru, x)

        monkeypatch.delenv("GLYPHSR_FP32_GRU", raising=False)
        assert torch.equal(under_autocast(), ref)
        monkeypatch.setenv("GLYPHSR_FP32_GRU", "cpu,cuda")
        assert torch.equal(under_autocast(), ref)
        monkeypatch.setenv("GLYPHSR_FP32_GRU", "")  # empty: the default, as unset
        assert torch.equal(under_autocast(), ref)
        monkeypatch.setenv("GLYPHSR_FP32_GRU", "none")
        low = under_autocast()
        assert 1e-4 < (low.float() - ref).abs().max() < 0.1  # bfloat16 arithmetic
        monkeypatch.setenv("GLYPHSR_FP32_GRU", "gpu")
        with pytest.raises(ValueError, match="GLYPHSR_FP32_GRU='gpu'"):
            under_autocast()


@pytest.mark.parametrize("bidirectional, n, steps, cin, hid", [(True, 5, 7, 6, 4), (False, 3, 9, 6, 4),
                                                                (True, 2, 1, 3, 2)])
def test_gru_scan_equals_the_native_gru_with_gradients(bidirectional, n, steps, cin, hid) -> None:
    """gru_scan is nn.GRU's arithmetic: outputs and every gradient agree to float64 rounding."""
    from glyphsr.sr.modeling.sr_branch import gru_scan

    torch.manual_seed(0)
    gru = torch.nn.GRU(cin, hid, bidirectional=bidirectional, batch_first=True).double()
    for p in gru.parameters():  # biases away from zero, so that a swapped gate or bias would show
        torch.nn.init.uniform_(p, -1, 1)
    x = torch.randn(n, steps, cin, dtype=torch.float64, requires_grad=True)
    ref, out = gru(x)[0], gru_scan(gru, x)
    assert out.shape == ref.shape == (n, steps, hid * (2 if bidirectional else 1))
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    w = torch.randn_like(ref)
    g_ref = torch.autograd.grad((ref * w).sum(), [x, *gru.parameters()])
    g_out = torch.autograd.grad((out * w).sum(), [x, *gru.parameters()])
    for a, b in zip(g_out, g_ref):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="one-layer batch-first"):
        gru_scan(torch.nn.GRU(cin, hid, num_layers=2, batch_first=True), x.float())


def test_glyphsr_gru_selects_the_implementation(monkeypatch) -> None:
    """GLYPHSR_GRU=scan runs the whole network's GRUs as gru_scan: the same output as the native GRUs (float32
    rounding), and under bfloat16 autocast as close to float32 as the native GRU; a bad value is refused by name."""
    from glyphsr.sr.modeling import sr_branch

    torch.manual_seed(0)
    model = build_model(SRConfig(c_sr=16, c_tp=8, n_blocks=2, n_gly=1, tpg_pretrained=False)).eval()
    x = torch.rand(2, 4, 16, 64)
    calls = []
    real = sr_branch.gru_scan
    monkeypatch.setattr(sr_branch, "gru_scan", lambda g, s: calls.append(s.shape) or real(g, s))
    with torch.no_grad():
        monkeypatch.setenv("GLYPHSR_GRU", "")  # empty: auto, as unset (native on the CPU)
        native = model(x).sr
        assert calls == []
        monkeypatch.setenv("GLYPHSR_GRU", "scan")
        scan = model(x).sr
        assert len(calls) == 2 * 2 + 1  # two GruBlocks per SR block, and the GPM's
        torch.testing.assert_close(scan, native, rtol=0, atol=1e-5)
        gru = torch.nn.GRU(16, 8, bidirectional=True, batch_first=True)
        seq = torch.randn(4, 12, 16)
        ref = gru(seq)[0]
        monkeypatch.setenv("GLYPHSR_FP32_GRU", "none")
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = sr_branch.run_gru(gru, seq)
        assert low.dtype == torch.bfloat16 and 1e-4 < (low.float() - ref).abs().max() < 0.05
        monkeypatch.setenv("GLYPHSR_GRU", "cudnn")
        with pytest.raises(ValueError, match="GLYPHSR_GRU='cudnn'"):
            model(x)


def test_dynamo_traces_the_network_in_one_graph_with_either_gru(monkeypatch) -> None:
    """With dynamo's allow_rnn (the trainer sets it for train.compile) torch.compile sees the whole network as one
    graph, with the native GRUs (single operations in it) and with GLYPHSR_GRU=scan (their steps traced, for
    inductor to fuse); without it, the graph breaks at the recurrent modules."""
    import torch._dynamo
    from torch._dynamo import config as dynamo_config

    model = build_model(SRConfig(c_sr=16, c_tp=8, n_blocks=1, n_gly=1, tpg_pretrained=False, residual=True,
                                 stn=False)).train()
    x = torch.rand(2, 4, 16, 64)
    found = {}
    try:
        for impl, allow in (("scan", True), ("native", True), ("native", False)):
            monkeypatch.setenv("GLYPHSR_GRU", impl)
            torch._dynamo.reset()
            with dynamo_config.patch(allow_rnn=allow):  # torch's own patching (monkeypatch would delete the key)
                e = torch._dynamo.explain(model)(x)
            found[impl, allow] = (e.graph_count, e.graph_break_count, [str(b.reason)[:120] for b in e.break_reasons])
    finally:
        torch._dynamo.reset()
    assert found["scan", True][:2] == (1, 0), found["scan", True]
    assert found["native", True][:2] == (1, 0), found["native", True]
    assert found["native", False][1] >= 3  # at least at the SR block's two GRUs and the GPM's
