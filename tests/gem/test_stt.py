"""The Scene Text Telescope transformer: key names of the official checkpoint, forward shapes, attention."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from glyphsr.gem.stt import STTAttention
from glyphsr.recognizers.stt import STTTransformer, encode_labels, load_stt
from tests.gem.conftest import render_word

# Parameter names and shapes of FudanVI's pretrain_transformer.pth (read from the public model definition).
EXPECTED = {
    "encoder.cnn.conv1.weight": (64, 1, 3, 3),
    "encoder.cnn.layer1.0.downsample.0.weight": (256, 128, 3, 3),
    "encoder.cnn.layer3.4.bn2.running_var": (512,),
    "encoder.cnn.layer4.2.conv2.weight": (512, 512, 3, 3),
    "encoder.cnn.layer4_conv2.weight": (1024, 512, 3, 3),
    "embedding_word.lut.weight": (37, 512),
    "pe.pe": (1, 5000, 512),
    "decoder.mask_multihead.linears.3.weight": (1024, 1024),
    "decoder.multihead.compress_attention_linear.weight": (1, 16),
    "decoder.mul_layernorm2.a_2": (1024,),
    "decoder.pff.w_1.weight": (2048, 1024),
    "generator_word.proj.weight": (37, 1024),
}


@pytest.fixture(scope="module")
def model() -> STTTransformer:
    torch.manual_seed(0)
    return STTTransformer().eval()


def test_key_names_and_shapes(model: STTTransformer) -> None:
    sd = model.state_dict()
    for k, shape in EXPECTED.items():
        assert tuple(sd[k].shape) == shape, k
    assert not any("layer4_conv." in k for k in sd)  # the original has no layer4_conv, only layer4_conv2


def test_dataparallel_checkpoint_round_trip(model: STTTransformer, tmp_path) -> None:
    path = tmp_path / "pretrain_transformer.pth"
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, path)
    loaded = load_stt(path)
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    torch.save({"module.encoder.cnn.conv1.weight": torch.zeros(1)}, tmp_path / "wrong.pth")
    with pytest.raises(ValueError, match="does not fit the Scene Text Telescope"):
        load_stt(tmp_path / "wrong.pth")
    with pytest.raises(FileNotFoundError):
        load_stt(tmp_path / "none.pth")


def test_forward_shapes_and_teacher_forcing(model: STTTransformer) -> None:
    tokens, targets = encode_labels(["Ab1", "x!"])
    assert tokens.tolist() == [[0, 11, 12, 2], [0, 34, 0, 0]]
    assert targets[1] == [34, -1]  # '!' is outside the 37-character charset
    with torch.no_grad():
        logits, attn = model(torch.rand(2, 1, 32, 128), tokens)
    assert logits.shape == (2, 4, 37) and attn.shape == (2, 16, 4, 256)
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, 16, 4))


def test_attention_provider_gives_2d_maps(model: STTTransformer) -> None:
    img, _ = render_word("ab!")
    att = STTAttention(model=model)(np.stack([img, img]), ["ab!", ""])
    assert att.position.shape == (2, 15, 32, 128)
    assert att.valid[0].tolist()[:4] == [True, True, False, False]
    assert att.position[0, 0].sum() > 0 and att.position[0, 2].sum() == 0
    assert not att.valid[1].any() and att.reasons[1] == "empty label"
