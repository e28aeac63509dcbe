"""The shared checkpoint loader, exercised with EasyOCR's CRNN architecture."""

from __future__ import annotations

import pytest
import torch

from glyphsr.recognizers.checkpoints import load_weights
from glyphsr.recognizers.easyocr_crnn import EasyOCRCRNN, load_easyocr_crnn


def test_dataparallel_round_trip_and_errors(tmp_path) -> None:
    torch.manual_seed(0)
    src = EasyOCRCRNN()
    path = tmp_path / "crnn.pth"
    torch.save({f"module.{k}": v for k, v in src.state_dict().items()}, path)
    loaded = load_easyocr_crnn(path)
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in src.state_dict().items())
    assert not loaded.training
    with pytest.raises(FileNotFoundError, match="not found"):
        load_easyocr_crnn(tmp_path / "none.pth")
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="not a state dict"):
        load_weights(EasyOCRCRNN(), tmp_path / "list.pth", "x")
    torch.save({"Prediction.weight": torch.zeros(3, 3)}, tmp_path / "small.pth")
    with pytest.raises(ValueError, match="does not fit EasyOCR CRNN"):
        load_easyocr_crnn(tmp_path / "small.pth")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(ValueError, match=r"junk.pth: not a PyTorch checkpoint \(the file starts with b'junk'\)"):
        load_easyocr_crnn(tmp_path / "junk.pth")
    torch.save({"model": EasyOCRCRNN}, tmp_path / "pickled.pth")  # a class, not tensors: weights_only refuses it
    with pytest.raises(ValueError, match="holds Python objects besides tensors") as err:
        load_easyocr_crnn(tmp_path / "pickled.pth")
    assert "weights_only=False" not in str(err.value)
