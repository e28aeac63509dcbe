"""The standard STISR judges (CRNN, ASTER, MORAN) with the official files' parameter names, tested with random
weights (the official files cannot be downloaded here) saved in each official file's layout.

Official names and shapes below are read from the official code:
- CRNN: meijieru/crnn.pytorch ``models/crnn.py`` (commit 3cc7904c5ba20b18fcdc2d02ac2b24a9be9eafaf);
- ASTER: ayumiymk/aster.pytorch ``lib/models/{model_builder, resnet_aster, stn_head, tps_spatial_transformer,
  attention_recognition_head}.py`` (commit be670046c775b54de79766208f0c59321ae1eccf) with ``--with_lstm --STN_ON``;
- MORAN: Canjie-Luo/MORAN_v2 ``models/{moran, morn, asrn_res}.py`` (commit 410596fda22a4746ef83301928de1e91e7d012f7),
  ``MORAN(1, 37, 256, 32, 100, BidirDecoder=True)``.
The parameter counts are those of the official modules built from that code.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import torch

from glyphsr.recognizers.judges import (
    ASTER,
    CRNN,
    JUDGES,
    MORAN,
    ASTERJudge,
    CRNNJudge,
    Judge,
    MORANJudge,
    build_judge,
    parse_judge_spec,
)
from glyphsr.recognizers.judges.aster import EOS, beam_search

OFFICIAL = {
    "crnn": (CRNN, 8_331_301, 49, {
        "cnn.conv0.weight": (64, 1, 3, 3),
        "cnn.batchnorm6.running_var": (512,),
        "cnn.conv6.weight": (512, 512, 2, 2),
        "rnn.0.rnn.weight_ih_l0": (1024, 512),
        "rnn.1.rnn.weight_hh_l0_reverse": (1024, 256),
        "rnn.1.embedding.weight": (37, 512),
    }),
    "aster": (ASTER, 20_991_594, 384, {
        "stn_head.stn_convnet.0.0.weight": (32, 3, 3, 3),
        "stn_head.stn_convnet.10.1.running_mean": (256,),
        "stn_head.stn_fc1.1.weight": (512,),
        "stn_head.stn_fc2.weight": (40, 512),
        "tps.inverse_kernel": (23, 23),
        "tps.padding_matrix": (3, 2),
        "tps.target_coordinate_repr": (3200, 23),
        "tps.target_control_points": (20, 2),
        "encoder.layer0.0.weight": (32, 3, 3, 3),
        "encoder.layer1.0.downsample.0.weight": (32, 32, 1, 1),
        "encoder.layer5.2.conv2.weight": (512, 512, 3, 3),
        "encoder.rnn.weight_ih_l1_reverse": (1024, 512),
        "decoder.decoder.attention_unit.sEmbed.weight": (512, 512),
        "decoder.decoder.attention_unit.wEmbed.weight": (1, 512),
        "decoder.decoder.tgt_embedding.weight": (98, 512),
        "decoder.decoder.gru.weight_ih_l0": (1536, 1024),
        "decoder.decoder.fc.weight": (97, 512),
    }),
    "moran": (MORAN, 20_340_141, 427, {
        "MORN.cnn.1.weight": (64, 1, 3, 3),
        "MORN.cnn.16.running_var": (1,),
        "ASRN.cnn.block0.0.weight": (32, 1, 3, 3),
        "ASRN.cnn.block1.0.downsample.0.weight": (32, 32, 3, 3),
        "ASRN.cnn.block1.1.conv1.0.weight": (32, 32, 1, 1),
        "ASRN.cnn.block5.0.conv1.1.running_mean": (512,),
        "ASRN.rnn.0.rnn.weight_ih_l0": (1024, 512),
        "ASRN.rnn.1.embedding.weight": (256, 512),
        "ASRN.attentionL2R.char_embeddings": (38, 256),
        "ASRN.attentionL2R.attention_cell.i2h.weight": (256, 256),
        "ASRN.attentionL2R.attention_cell.score.weight": (1, 256),
        "ASRN.attentionR2L.attention_cell.rnn.weight_ih": (768, 512),
        "ASRN.attentionR2L.generator.weight": (37, 256),
    }),
}
JUDGE_CLASSES = {"crnn": CRNNJudge, "aster": ASTERJudge, "moran": MORANJudge}


def save_official(model: torch.nn.Module, name: str, path: Path) -> None:
    """Save ``model`` as the official file of ``name`` is laid out."""
    state = model.state_dict()
    if name in ("crnn", "moran"):  # saved before PyTorch 0.4.1: no BatchNorm step counters
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    if name == "aster":  # lib/trainers.py: save_checkpoint({'state_dict': ..., 'iters': ..., 'best_res': ...})
        state = {"state_dict": state, "iters": 0, "best_res": 0.0}
    if name == "moran":  # main.py trains under nn.DataParallel and saves MORAN.state_dict()
        state = {"module." + k: v for k, v in state.items()}
    torch.save(state, path)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These are small tensors on a shared 2-core machine: a second thread only waits for a busy core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def models() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {name: cls().eval() for name, (cls, *_) in OFFICIAL.items()}


@pytest.mark.parametrize("name", OFFICIAL)
def test_official_names_and_sizes(name: str, models) -> None:
    _, count, n_keys, shapes = OFFICIAL[name]
    model = models[name]
    state = model.state_dict()
    assert sum(p.numel() for p in model.parameters()) == count
    assert len(state) == n_keys
    for key, shape in shapes.items():
        assert tuple(state[key].shape) == shape, key


@pytest.mark.parametrize("name", OFFICIAL)
def test_official_file_round_trip(name: str, models, tmp_path: Path) -> None:
    model = models[name]
    path = tmp_path / {"crnn": "crnn.pth", "aster": "demo.pth.tar", "moran": "demo.pth"}[name]
    save_official(model, name, path)
    judge = JUDGE_CLASSES[name].from_checkpoint(path)
    assert isinstance(judge, Judge) and judge.name == name
    assert not judge.model.training
    images = torch.rand(2, 3, 32, 128)
    with torch.no_grad():
        x = images[:, :1, :, :100] if name in ("crnn", "moran") else images * 2 - 1
        torch.testing.assert_close(judge.model(x), model(x), rtol=0, atol=0)
    texts = judge.recognize_tensor(images)
    assert texts == JUDGE_CLASSES[name](model).recognize_tensor(images)
    assert len(texts) == 2 and all(isinstance(t, str) and t == t.lower() and (t.isalnum() or t == "") for t in texts)


@pytest.mark.parametrize("name, size, lo_hi", [("crnn", (1, 32, 100), (0.0, 1.0)), ("moran", (1, 32, 100), (0.0, 1.0)),
                                               ("aster", (3, 32, 128), (-1.0, 1.0))])
def test_input_as_the_stisr_code_feeds_it(name: str, size, lo_hi, models) -> None:
    """CRNN and MORAN get grey 32x100 in [0, 1] (not their own [-1, 1]); ASTER RGB 32x128 in [-1, 1]."""
    seen = []
    model = models[name]
    first = {"crnn": lambda m: m.cnn, "moran": lambda m: m.MORN, "aster": lambda m: m.stn_head}[name](model)
    handle = (model if name == "aster" else first).register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
    try:
        JUDGE_CLASSES[name](model).recognize_tensor(torch.stack([torch.zeros(3, 16, 64), torch.ones(3, 16, 64)]))
    finally:
        handle.remove()
    assert tuple(seen[0].shape) == (2, *size)
    torch.testing.assert_close(seen[0][0], torch.full(size, lo_hi[0]))
    torch.testing.assert_close(seen[0][1], torch.full(size, lo_hi[1]))


def test_aster_beam_search(models) -> None:
    """Width 1 is the greedy decoding; a batch decodes as its samples do alone."""
    head = copy.deepcopy(models["aster"].decoder)
    head.max_len_labels = 12
    with torch.no_grad():
        head.decoder.fc.weight.mul_(20)  # peaked distributions: random weights tie near-uniform ones in float32
        feats = torch.randn(3, 25, 512, generator=torch.Generator().manual_seed(0))
        greedy, beam1 = head.greedy(feats), beam_search(head, feats, 1)
        for g, b in zip(greedy.tolist(), beam1.tolist()):
            cut = g.index(EOS) + 1 if EOS in g else len(g)
            assert b[:cut] == g[:cut]
        batch = beam_search(head, feats, 5)
        assert batch.shape == (3, 12)
        for i in range(3):
            assert torch.equal(beam_search(head, feats[i:i + 1], 5)[0], batch[i])


def test_missing_file_names_the_option(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "crnn.pth"
    with pytest.raises(FileNotFoundError, match=r"nowhere.*--recognizer crnn:PATH"):
        CRNNJudge.from_checkpoint(path)
    with pytest.raises(FileNotFoundError, match=r"--recognizer aster:PATH"):
        build_judge(f"aster:{tmp_path / 'demo.pth.tar'}")


def test_mismatching_file_names_the_keys(models, tmp_path: Path) -> None:
    path = tmp_path / "crnn.pth"
    save_official(models["crnn"], "crnn", path)
    with pytest.raises(ValueError, match="does not fit MORAN") as err:
        MORANJudge.from_checkpoint(path)
    assert re.search(r"\d+ missing keys \(ASRN\.attentionL2R\..*; \d+ unexpected keys \(cnn\.batchnorm2\.bias",
                     str(err.value))
    torch.save(CRNN(nclass=38).state_dict(), path)  # another charset
    with pytest.raises(ValueError, match=r"2 shape mismatches \(rnn.1.embedding.bias: file \(38,\), model \(37,\), "
                                         r"rnn.1.embedding.weight: file \(38, 512\), model \(37, 512\)\)"):
        CRNNJudge.from_checkpoint(path)
    torch.save(torch.zeros(3), path)
    with pytest.raises(ValueError, match="not a state dict"):
        CRNNJudge.from_checkpoint(path)


def test_registry(models, tmp_path: Path) -> None:
    assert set(JUDGES) >= {"crnn", "aster", "moran"}
    assert parse_judge_spec("crnn") == ("crnn", None)
    assert parse_judge_spec("CRNN:C:/weights/crnn.pth") == ("crnn", "C:/weights/crnn.pth")
    with pytest.raises(ValueError, match=r"unknown recognizer 'nope'.*aster, crnn, easyocr, moran, parseq, rapidocr"):
        build_judge("nope")
    for name, file in (("crnn", "crnn.pth"), ("aster", "demo.pth.tar"), ("moran", "demo.pth")):
        with pytest.raises(ValueError, match=rf"cannot be downloaded here.*{file}.*--recognizer {name}:PATH"):
            build_judge(name)
    path = tmp_path / "crnn.pth"
    save_official(models["crnn"], "crnn", path)
    judge = build_judge(f"crnn:{path}", "cpu")
    assert isinstance(judge, CRNNJudge)
    assert len(judge.recognize_tensor(torch.rand(3, 3, 32, 128))) == 3
    with pytest.raises(ValueError, match=r"expected RGB float images \(B, 3, H, W\)"):
        judge.recognize_tensor(torch.rand(3, 32, 128))


def test_parseq_judge_round_trip(tmp_path) -> None:
    """PARSeq as a judge: a file in the official layout (the Lightning system's ``model.`` prefix) loads through the
    registry and reads like the model it came from; a missing file names the option."""
    from glyphsr.recognizers.judges.parseq import PARSeqJudge, decode
    from glyphsr.recognizers.parseq import PARSeq

    torch.manual_seed(0)
    model = PARSeq(refine_iters=0).eval()
    path = tmp_path / "parseq-bb5792a6.pt"
    torch.save({f"model.{k}": v for k, v in model.state_dict().items()}, path)
    judge = build_judge(f"parseq:{path}")
    assert isinstance(judge, PARSeqJudge)
    images = torch.rand(2, 3, 32, 128)
    with torch.no_grad():
        expected = decode(model(images * 2 - 1))
    judge.model.refine_iters = 0
    assert judge.recognize_tensor(images) == expected and len(expected) == 2
    assert decode(torch.tensor([[[0.0, 5.0, 1.0], [9.0, 0.0, 0.0], [0.0, 0.0, 9.0]]])) == ["0"]
    with pytest.raises(FileNotFoundError, match="--recognizer parseq:PATH"):
        build_judge(f"parseq:{tmp_path / 'missing.pt'}")
    with pytest.raises(ValueError, match="parseq-bb5792a6.pt"):
        build_judge("parseq")
