"""Resizing as two matrix products (glyphsr.sr.modeling.resize), the network's path on CUDA, checked here on the
CPU with GLYPHSR_RESIZE=matmul against F.interpolate."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from glyphsr.sr.modeling import SRConfig, build_model
from glyphsr.sr.modeling.resize import resize

CASES = [  # the network's resizes: the TP transformer's map, a deformable block's context, the GPM's pyramid,
    ((2, 3, 25, 509), (16, 64), "bilinear", False),  # the CRNN TPG's input, the global skip (with antialiasing)
    ((2, 4, 6, 22), (16, 64), "bilinear", False),
    ((2, 5, 4, 16), (8, 32), "bilinear", False),
    ((2, 1, 16, 64), (64, 256), "bicubic", False),
    ((2, 4, 16, 64), (32, 128), "bicubic", True),
    ((2, 4, 16, 64), (32, 128), "bicubic", False),
    ((2, 3, 40, 9), (13, 30), "bicubic", False),  # down in one axis, up in the other
]


@pytest.mark.parametrize(("shape", "size", "mode", "aa"), CASES)
def test_matmul_resize_equals_interpolate_with_gradients(monkeypatch, shape, size, mode, aa) -> None:
    monkeypatch.setenv("GLYPHSR_RESIZE", "matmul")
    torch.manual_seed(0)
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    ref = F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=aa)
    got = resize(x, size, mode, antialias=aa)
    assert got.shape == ref.shape and got.dtype == torch.float64
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-10)
    go = torch.randn_like(ref)
    (g_ref,), (g_got,) = torch.autograd.grad(ref, x, go), torch.autograd.grad(got, x, go)
    torch.testing.assert_close(g_got, g_ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize(("shape", "size", "mode"), [((2, 32, 25, 213), (16, 64), "bilinear"),
                                                   ((2, 8, 6, 22), (16, 64), "bilinear"),
                                                   ((2, 4, 16, 64), (32, 128), "bicubic")])
def test_channels_last_inputs_stay_channels_last(monkeypatch, shape, size, mode) -> None:
    """The network runs channels-last on CUDA: such an input is resized as its (B, H, W, C) view and comes back
    channels-last, as F.interpolate's does, with the same values and gradients."""
    monkeypatch.setenv("GLYPHSR_RESIZE", "matmul")
    torch.manual_seed(0)
    x = torch.randn(shape, dtype=torch.float64).contiguous(memory_format=torch.channels_last).requires_grad_()
    ref = F.interpolate(x, size=size, mode=mode, align_corners=False)
    got = resize(x, size, mode)
    assert got.is_contiguous(memory_format=torch.channels_last) and got.shape == ref.shape
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-10)
    go = torch.randn_like(ref)
    (g_ref,), (g_got,) = torch.autograd.grad(ref, x, go), torch.autograd.grad(got, x, go)
    torch.testing.assert_close(g_got, g_ref, rtol=0, atol=1e-10)


def test_matrices_made_in_inference_mode_serve_training(monkeypatch) -> None:
    """The cached matrices are made outside inference mode: a resize first run under torch.inference_mode (sr-infer)
    and then with gradients (training) works."""
    monkeypatch.setenv("GLYPHSR_RESIZE", "matmul")
    with torch.inference_mode():
        resize(torch.rand(1, 2, 7, 9, dtype=torch.float64), (5, 11), "bilinear")
    x = torch.rand(1, 2, 7, 9, dtype=torch.float64, requires_grad=True)
    resize(x, (5, 11), "bilinear").sum().backward()
    assert x.grad is not None


def test_resize_dtypes_and_choice(monkeypatch) -> None:
    """Under autocast the products run in its 16-bit type unless keep_dtype; auto is F.interpolate off CUDA; a
    same-size resize is the identity; integers and bad values are refused by name."""
    x = torch.rand(2, 4, 16, 64)
    ref = F.interpolate(x, size=(32, 128), mode="bicubic", align_corners=False)
    monkeypatch.setenv("GLYPHSR_RESIZE", "matmul")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = resize(x, (32, 128), "bicubic")
        kept = resize(x, (32, 128), "bicubic", keep_dtype=True)
    assert low.dtype == torch.bfloat16 and 1e-4 < (low.float() - ref).abs().max() < 0.03
    assert kept.dtype == torch.float32
    torch.testing.assert_close(kept, ref, rtol=0, atol=1e-6)
    assert resize(x, (16, 64), "bilinear") is x
    with pytest.raises(TypeError, match="floating-point"):
        resize(torch.zeros(1, 1, 4, 4, dtype=torch.uint8), (8, 8), "bilinear")
    monkeypatch.setenv("GLYPHSR_RESIZE", "auto")
    calls = []
    real = F.interpolate
    monkeypatch.setattr(F, "interpolate", lambda *a, **k: calls.append(k["mode"]) or real(*a, **k))
    resize(x, (32, 128), "bilinear")
    assert calls == ["bilinear"]
    monkeypatch.setenv("GLYPHSR_RESIZE", "fast")
    with pytest.raises(ValueError, match="GLYPHSR_RESIZE='fast'"):
        resize(x, (32, 128), "bilinear")


def test_network_is_the_same_with_matmul_resizes(monkeypatch) -> None:
    torch.manual_seed(0)
    model = build_model(SRConfig(c_sr=16, c_tp=8, n_blocks=2, n_gly=1, tpg_pretrained=False)).eval()
    x = torch.rand(2, 4, 16, 64)
    with torch.no_grad():
        monkeypatch.setenv("GLYPHSR_RESIZE", "native")
        a = model(x)
        monkeypatch.setenv("GLYPHSR_RESIZE", "matmul")
        b = model(x)
    for k in ("sr", "line", "char", "cls"):
        torch.testing.assert_close(getattr(b, k), getattr(a, k), rtol=0, atol=1e-5)
