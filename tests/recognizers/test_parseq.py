"""PARSeq with the official checkpoints' parameter names, tested with random weights (the checkpoint cannot be
downloaded here)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from glyphsr.recognizers.parseq import NUM_CLASSES, PARSeq, load_parseq


def test_base_model_size_and_names() -> None:
    model = PARSeq()
    # the published size of PARSeq base (e.g. keras-hub's preset metadata: 23,832,671 parameters)
    assert sum(p.numel() for p in model.parameters()) == 23_832_671
    keys = set(model.state_dict())
    names = ("pos_queries", "encoder.pos_embed", "encoder.patch_embed.proj.weight", "encoder.blocks.11.attn.qkv.weight",
             "encoder.blocks.0.mlp.fc2.bias", "encoder.norm.weight", "decoder.layers.0.self_attn.in_proj_weight",
             "decoder.layers.0.cross_attn.out_proj.weight", "decoder.layers.0.norm_q.weight",
             "decoder.layers.0.linear1.weight", "decoder.norm.bias", "head.weight", "text_embed.embedding.weight")
    for k in names:
        assert k in keys, k
    assert model.state_dict()["encoder.pos_embed"].shape == (1, 128, 384)  # 8 x 16 patches of 4 x 8
    assert model.state_dict()["text_embed.embedding.weight"].shape == (97, 384)


def test_checkpoint_round_trip_and_decoding(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = PARSeq(enc_depth=2).eval()
    path = tmp_path / "parseq.pt"
    torch.save({"model." + k: v for k, v in model.state_dict().items()}, path)  # the Lightning system's names
    loaded = load_parseq(path, enc_depth=2)
    x = torch.rand(2, 3, 32, 128) * 2 - 1
    with torch.no_grad():
        a, b = model(x), loaded(x)
    assert a.shape == (2, 26, NUM_CLASSES)
    torch.testing.assert_close(a, b)
    nar = PARSeq(enc_depth=2, decode_ar=False, refine_iters=0).eval()
    nar.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert nar(x).shape == (2, 26, NUM_CLASSES)
    with pytest.raises(ValueError, match="does not fit PARSeq"):
        load_parseq(path)  # depth 12 expected, the file has 2 blocks
