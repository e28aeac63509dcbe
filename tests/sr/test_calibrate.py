"""The residual gain: the scaled last convolution returns bicubic + g x the learned difference exactly, the choice of
gain and weights by the judge on training pairs, and the trainer's checkpoints/calibrated."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from glyphsr.sr.calibrate import calibrate, with_gain
from glyphsr.sr.checkpoint import load_model, read_weights, write_checkpoint
from glyphsr.sr.evaluation import EvalSet, rgbm
from glyphsr.sr.modeling import SRConfig, build_model
from glyphsr.sr.train.config import RunConfig, resolve
from glyphsr.sr.train.loop import Trainer
from tests.sr.test_train import TINY, tiny_config, tiny_data

RESIDUAL = SRConfig(**TINY, residual=True, stn=False)


def _net(bias: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0), seed: int = 0):
    """A tiny residual network whose last convolution adds a constant: the difference is ``bias`` everywhere."""
    torch.manual_seed(seed)
    net = build_model(RESIDUAL).eval()
    with torch.no_grad():
        net.out.weight.zero_()
        net.out.bias.copy_(torch.tensor(bias))
    return net


def test_with_gain_scales_the_learned_difference_exactly() -> None:
    torch.manual_seed(0)
    net = build_model(RESIDUAL).eval()
    with torch.no_grad():
        net.out.weight.normal_(0, 0.05)
        net.out.bias.normal_(0, 0.05)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    x = rgbm((torch.rand(3, 3, 16, 64) * 255).to(torch.uint8))
    with torch.no_grad():
        full = net(x).sr
        net.load_state_dict(with_gain(state, 0.0))
        skip = net(x).sr
        net.load_state_dict(with_gain(state, 0.5))
        half = net(x).sr
    assert float((full - skip)[:, :3].abs().mean()) > 1e-3  # a difference to scale
    torch.testing.assert_close(half[:, :3], skip[:, :3] + 0.5 * (full - skip)[:, :3], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(half[:, 3:], full[:, 3:])  # the mask channel is left alone
    assert torch.equal(with_gain(state, 1.0)["out.weight"], state["out.weight"])
    assert with_gain(state, 0.5)["tail.0.weight"] is state["tail.0.weight"]  # shared, not copied
    with pytest.raises(ValueError, match=">= 0"):
        with_gain(state, -1.0)
    with pytest.raises(ValueError, match="not a GlyphSR network"):
        with_gain({"conv.weight": torch.zeros(1)}, 0.5)


class BrightnessJudge:
    """Reads an image right when its mean lies within 0.02 of ``target`` (else reads nothing): a judge whose best
    gain is known."""

    name = "brightness"

    def __init__(self, target: float):
        self.target = target
        self.seen = 0

    def recognize(self, images: list[np.ndarray]) -> list[str]:
        self.seen += len(images)
        return [self.label if abs(im.mean() / 255 - self.target) < 0.02 else "" for im in images]

    label = "word"


def _gray_set(n: int = 4, level: int = 51) -> EvalSet:
    lr = torch.full((n, 3, 16, 64), level, dtype=torch.uint8)
    hr = torch.full((n, 3, 32, 128), level, dtype=torch.uint8)
    return EvalSet("train", lr, hr, ["word"] * n)


def test_calibrate_picks_the_gain_the_judge_reads_best_and_prefers_the_trained_scale_on_a_tie() -> None:
    # LR gray at 0.2: the skip returns 0.2 and the network 0.2 + g x bias; the judge reads 0.4 only
    net = _net()
    a = {k: v.clone() for k, v in _net((0.4, 0.4, 0.4, 0.0)).state_dict().items()}  # 0.4 at g = 0.5
    b = {k: v.clone() for k, v in _net((0.8, 0.8, 0.8, 0.0)).state_dict().items()}  # 0.4 at g = 0.25
    own = {k: v.clone() for k, v in net.state_dict().items()}
    judge = BrightnessJudge(0.4)
    res = calibrate(net, {"b": b, "a": a}, [_gray_set()], judge, torch.device("cpu"))  # b first: the gain decides
    assert res["table"] == {"a": {0.25: 0.0, 0.5: 1.0, 0.75: 0.0, 1.0: 0.0},
                            "b": {0.25: 1.0, 0.5: 0.0, 0.75: 0.0, 1.0: 0.0}}
    # a tie at 1.0: a's gain is nearer 1, though b comes first
    assert (res["choice"], res["gain"], res["accuracy"], res["n"]) == ("a", 0.5, 1.0, 4)
    assert res["bicubic"] == 0.0  # 0.2 is not read
    assert all(torch.equal(v, own[k]) for k, v in net.state_dict().items())  # the network's own weights are back
    res = calibrate(net, {"b": b}, [_gray_set()], BrightnessJudge(0.6), torch.device("cpu"), gains=(0.5, 1.0))
    assert (res["choice"], res["gain"]) == ("b", 0.5)
    with pytest.raises(ValueError, match="global skip"):
        calibrate(build_model(SRConfig(**TINY)), {"a": a}, [_gray_set()], judge, torch.device("cpu"))
    with pytest.raises(ValueError, match="no weights"):
        calibrate(net, {}, [_gray_set()], judge, torch.device("cpu"))
    with pytest.raises(ValueError, match="gains"):
        calibrate(net, {"a": a}, [_gray_set()], judge, torch.device("cpu"), gains=())


def test_configuration_refuses_a_gain_without_the_skip() -> None:
    assert resolve("short").train.calibrate_n == 500 and resolve("paper").train.calibrate_n == 0
    with pytest.raises(ValueError, match="needs model.residual=true"):
        resolve("short", overrides=["model.residual=false"])
    with pytest.raises(ValueError, match="calibrate_gains"):
        resolve("short", overrides=["train.calibrate_gains=[0.5, -1]"])
    with pytest.raises(ValueError, match="repeats a gain"):  # 0.5 and 0.5000001 print alike in the table
        resolve("short", overrides=["train.calibrate_gains=[0.5, 0.5000001, 1]"])
    assert resolve("short", overrides=["model.residual=false", "train.calibrate_n=0"]).train.calibrate_n == 0


def test_trainer_writes_the_calibrated_checkpoint(tmp_path: Path, monkeypatch) -> None:
    base = tiny_config(steps=2, ema=0.5)
    cfg = RunConfig(model=RESIDUAL, loss=base.loss, train=dataclasses.replace(base.train, calibrate_n=4))
    sets, val = [_gray_set(3)], _gray_set(2)
    t = Trainer(cfg, tiny_data(), tmp_path, val_sets=[EvalSet("easy", val.lr, val.hr, val.labels)],
                judge=BrightnessJudge(0.2), cal_sets=sets)
    result = t.run()
    cal = result["calibrated"]
    path = tmp_path / "checkpoints" / "calibrated"
    state, meta = read_weights(path)
    assert meta["residual_gain"] == cal["residual_gain"] and meta["residual_gain"] in (0.25, 0.5, 0.75, 1.0)
    src = meta["calibrated_from"]
    assert src["checkpoint"] in ("best", "last") and meta["step"] == src["step"]  # the chosen weights' own step
    best_step = read_weights(tmp_path / "checkpoints" / "best")[1]["step"]
    assert src["step"] == (2 if src["checkpoint"] == "last" else best_step)
    assert "best" not in meta and "best_weights" not in meta  # they describe the best checkpoint, not this one
    assert set(meta["calibration"]["table"]) <= {"best", "last"} and meta["calibration"]["n"] == 3
    assert set(meta["calibration"]["table"]["last"]) == {"0.25", "0.5", "0.75", "1"}
    if src["checkpoint"] == "last":
        base = t.ema
    else:
        base = read_weights(tmp_path / "checkpoints" / "best", "ema" if src["weights"] == "ema" else "model")[0]
    expect = with_gain(base, meta["residual_gain"])
    assert all(torch.equal(state[k], expect[k].cpu()) for k in ("out.weight", "out.bias", "tail.0.weight"))
    assert not (path / "ema.safetensors").exists() and not (path / "state.pt").exists()
    model, _ = load_model(path)  # every program reads it as ordinary weights
    assert model.residual
    events = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    ev = [e for e in events if e["kind"] == "calibrate"]
    assert len(ev) == 1 and ev[0]["residual_gain"] == meta["residual_gain"] and "validation" in ev[0]
    assert events[-1]["kind"] == "end"
    # the best checkpoint's weights chosen: the calibrated checkpoint carries their step, not the last one
    t3 = Trainer(cfg, tiny_data(), tmp_path / "c", val_sets=[EvalSet("easy", val.lr, val.hr, val.labels)],
                 judge=BrightnessJudge(0.2), cal_sets=sets)
    t3.run()
    t3.best_weights = "raw"
    write_checkpoint(tmp_path / "c" / "checkpoints" / "best", t3.model.state_dict(), {**t3._meta(), "step": 1})
    monkey = {"table": {"best": {1.0: 0.9}, "last": {1.0: 0.1}}, "bicubic": 0.5, "choice": "best", "gain": 1.0,
              "accuracy": 0.9, "n": 3}
    with monkeypatch.context() as m:
        m.setattr("glyphsr.sr.calibrate.calibrate", lambda *a, **k: monkey)
        t3.calibrate()
    meta3 = read_weights(tmp_path / "c" / "checkpoints" / "calibrated")[1]
    assert meta3["step"] == 1 and meta3["calibrated_from"] == {"checkpoint": "best", "weights": "raw", "step": 1}

    # a calibration that fails is reported; the run still ends with its record and its checkpoints
    bad = Trainer(cfg, tiny_data(), tmp_path / "d", val_sets=[], judge=BrightnessJudge(0.2),
                  cal_sets=[EvalSet("train", val.lr[:0], val.hr[:0], [])])
    out = bad.run()
    assert "no images to calibrate on" in out["calibration_error"] and "calibrated" not in out
    events = [json.loads(x) for x in (tmp_path / "d" / "metrics.jsonl").read_text().splitlines()]
    assert [e["kind"] for e in events[-2:]] == ["calibrate", "end"] and "error" in events[-2]
    assert (tmp_path / "d" / "checkpoints" / "last").exists()

    # stopped before the end (stop_after): nothing is calibrated
    t2 = Trainer(dataclasses.replace(cfg), tiny_data(), tmp_path / "b", val_sets=[], judge=BrightnessJudge(0.2),
                 cal_sets=sets)
    assert "calibrated" not in t2.run(stop_after=1) and not (tmp_path / "b" / "checkpoints" / "calibrated").exists()
