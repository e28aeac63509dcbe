"""Inference settings: --precision resolution and the CPU's channels-last SR function."""

from __future__ import annotations

import pytest
import torch

from glyphsr.sr.modeling import SRConfig, build_model
from glyphsr.sr.runtime import native_bf16, sr_function, use_bf16


def test_precision_resolution() -> None:
    assert use_bf16("fp32", "cpu") is False and use_bf16("bf16", "cpu") is True
    assert use_bf16("auto", "cpu") == native_bf16("cpu")
    flags = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert native_bf16("cpu") == flags  # what the CPU reports, not what oneDNN can emulate
    assert native_bf16("meta") is False
    with pytest.raises(ValueError, match="precision must be one of"):
        use_bf16("fp16", "cpu")


def test_cpu_sr_function_is_channels_last_and_computes_the_same() -> None:
    torch.manual_seed(0)
    cfg = SRConfig(c_sr=8, c_tp=8, n_blocks=2, n_gly=1, tpg_pretrained=False)
    plain, fast = build_model(cfg).eval(), build_model(cfg).eval()
    fast.load_state_dict(plain.state_dict())
    fn = sr_function(fast, "cpu")
    assert fast.head[0].weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.rand(3, 4, 16, 64)
    with torch.no_grad():
        torch.testing.assert_close(fn(x), plain(x).sr, atol=1e-5, rtol=1e-5)
        with torch.autocast("cpu", dtype=torch.bfloat16):  # bfloat16 moves pixels by a few 8-bit levels at most
            assert (fn(x).float() - plain(x).sr).abs().max() < 0.02


def test_cuda_setup_turns_the_cudnn_autotuner_on_for_cuda_only(monkeypatch) -> None:
    from glyphsr.sr.runtime import cuda_setup

    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)  # restored after the test
    monkeypatch.delenv("GLYPHSR_CUDNN_BENCHMARK", raising=False)
    cuda_setup("cpu")
    assert torch.backends.cudnn.benchmark is False
    cuda_setup("cuda:0")  # a setting only: no device is touched
    assert torch.backends.cudnn.benchmark is True
    monkeypatch.setenv("GLYPHSR_CUDNN_BENCHMARK", "0")
    cuda_setup(torch.device("cuda"))
    assert torch.backends.cudnn.benchmark is False
