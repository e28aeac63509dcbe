"""The training loop on the CPU with a tiny network: exact resume, skipped non-finite steps, EMA, the schedule,
the configuration layers, checkpoints."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from glyphsr.sr.checkpoint import CheckpointError, load_model, read_meta, read_weights, write_checkpoint
from glyphsr.sr.evaluation import bicubic_up
from glyphsr.sr.losses import GlyphSRLoss, LossConfig
from glyphsr.sr.modeling import SRConfig, build_model
from glyphsr.sr.train.config import RECIPES, RunConfig, TrainConfig, resolve, save_yaml
from glyphsr.sr.train.data import build_tensors, quarters
from glyphsr.sr.train.loop import Trainer, TrainingDiverged, lr_factor
from tests.conftest import word_image

TINY = {"c_sr": 8, "c_tp": 8, "n_blocks": 2, "n_gly": 1, "tpg_pretrained": False}


def tiny_config(**train) -> RunConfig:
    t = {"batch": 2, "epochs": 4, "warmup_steps": 2, "log_every": 1, "val_every": 0, "ckpt_every": 0, **train}
    return RunConfig(model=SRConfig(**TINY), loss=LossConfig(text_focus="none"), train=TrainConfig(**t))


def tiny_data(n: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    lr = rng.integers(0, 256, (n, 3, 16, 64), dtype=np.uint8)
    hr = rng.integers(0, 256, (n, 3, 32, 128), dtype=np.uint8)
    line = (rng.random((n, 1, 32, 128)) > 0.7).astype(np.uint8)
    char = (rng.random((n, 15, 32, 128)) > 0.95).astype(np.uint8)
    labels = ["word", "Hello", "42", "a-b", "x", "Test1", "ok", "OPEN", "zz", "street", "9", "end"][:n]
    return build_tensors(lr, hr, labels, line, char, np.arange(n) % 5 != 0)


def test_quarters_is_area_average_times_four() -> None:
    m = np.zeros((1, 1, 32, 128), np.uint8)
    m[0, 0, 0, 0] = m[0, 0, 0, 1] = m[0, 0, 1, 1] = 1
    q = quarters(m)
    assert q.shape == (1, 1, 16, 64) and q[0, 0, 0, 0] == 3 and q.sum() == 3


def test_resume_continues_exactly(tmp_path: Path) -> None:
    """4 epochs in one go equal 2 epochs, a stop, and 2 resumed ones, weight for weight (EMA too)."""
    cfg = tiny_config(ema=0.9)
    full = Trainer(cfg, tiny_data(), tmp_path / "full")
    full.run()
    part = Trainer(cfg, tiny_data(), tmp_path / "part")
    steps_2_epochs = 2 * part.steps_per_epoch
    part.run(stop_after=steps_2_epochs)
    assert part.step == steps_2_epochs
    resumed = Trainer(cfg, tiny_data(), tmp_path / "part", resume=True)
    assert resumed.step == steps_2_epochs
    resumed.run()
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    for k in full.ema:
        torch.testing.assert_close(full.ema[k], resumed.ema[k], rtol=0, atol=0, msg=k)
    # and the weights moved: a run that trains nothing would pass the comparison too
    fresh = build_model(cfg.model).state_dict()
    assert any(not torch.equal(fresh[k], a[k]) for k in a if a[k].is_floating_point())
    lines = [json.loads(x) for x in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    assert [e["step"] for e in lines if e["kind"] == "train"] == list(range(1, full.total_steps + 1))


class _NaNAt(GlyphSRLoss):
    def __init__(self, bad: set[int]):
        super().__init__(LossConfig(text_focus="none"))
        self.bad, self.calls = bad, 0

    def forward(self, *args, **kwargs):
        terms = super().forward(*args, **kwargs)
        if self.calls in self.bad:
            terms["total"] = terms["total"] * float("nan")
        self.calls += 1
        return terms


def test_non_finite_loss_skips_the_step(tmp_path: Path) -> None:
    cfg = tiny_config(steps=6)
    t = Trainer(cfg, tiny_data(), tmp_path, criterion=_NaNAt({2}))
    before = None

    def watch(e: dict) -> None:
        nonlocal before
        if e["kind"] == "train" and e["step"] == 2:
            before = {k: v.clone() for k, v in t.model.state_dict().items()}

    t.callback = watch
    t.run()
    assert t.skipped == 1 and t.step == 6
    skips = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [e["step"] for e in skips if e["kind"] == "skip"] == [2]
    assert before is not None


def test_skipped_step_leaves_weights_untouched(tmp_path: Path) -> None:
    t = Trainer(tiny_config(steps=3), tiny_data(), tmp_path, criterion=_NaNAt({1}))
    t.train_step()
    w = {k: v.clone() for k, v in t.model.state_dict().items()}
    assert t.train_step() is None  # the NaN step
    after = t.model.state_dict()
    for k in w:
        assert torch.equal(w[k], after[k]), k


def test_divergence_stops_and_keeps_the_last_checkpoint(tmp_path: Path) -> None:
    cfg = tiny_config(steps=20, max_bad_steps=3, ckpt_every=2)
    t = Trainer(cfg, tiny_data(), tmp_path, criterion=_NaNAt(set(range(4, 100))))
    with pytest.raises(TrainingDiverged, match="3 non-finite losses in a row"):
        t.run()
    state, meta = read_weights(tmp_path / "checkpoints" / "last")
    assert meta["step"] == 4  # the last checkpoint before the losses went bad
    model, _ = load_model(tmp_path / "checkpoints" / "last")
    assert all(torch.isfinite(v).all() for v in model.state_dict().values() if v.is_floating_point())


def test_best_checkpoint_keeps_whichever_weights_read_better(tmp_path: Path, monkeypatch) -> None:
    # validations read (raw, EMA): the EMA's 0.5 at the second beats everything; the raw 0.45 at the third does not
    t = Trainer(tiny_config(steps=3, ema=0.9), tiny_data(), tmp_path)
    reads = iter([(0.30, 0.20), (0.40, 0.50), (0.45, 0.35)])

    def fake_validate(limit=None):
        raw, ema = next(reads)
        return {"average": {"sr": raw}, "ema": {"average": ema}}

    monkeypatch.setattr(t, "validate", fake_validate)
    for expect in [(0.30, "raw"), (0.50, "ema"), (0.50, "ema")]:
        t.train_step()
        t._validate_and_keep_best()
        assert (t.best, t.best_weights) == expect
    _, meta = read_weights(tmp_path / "checkpoints" / "best")
    assert meta["read_best"] == "ema" and meta["best"] == 0.50 and meta["step"] == 2
    assert read_meta(tmp_path / "checkpoints" / "best") == meta  # the metadata alone, without the tensors
    with pytest.raises(CheckpointError, match="not found"):
        read_meta(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        read_meta(tmp_path / "checkpoints")
    vals = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines() if '"val"' in x]
    assert [v["best_weights"] for v in vals] == ["raw", "ema", "ema"]
    assert [v["ema_accuracy"] for v in vals] == [0.20, 0.50, 0.35]
    from glyphsr.pipelines.sr_export import export

    # the raw set of a checkpoint whose EMA read best
    export(tmp_path / "checkpoints" / "best", tmp_path / "raw-export")
    exported = read_weights(tmp_path / "raw-export")[1]
    assert exported["weights"] == "raw" and "read_best" not in exported


def test_best_checkpoint_treats_a_nan_reading_as_missing(tmp_path: Path, monkeypatch) -> None:
    t = Trainer(tiny_config(steps=2, ema=0.9), tiny_data(), tmp_path)
    reads = iter([(float("nan"), float("nan")), (float("nan"), 0.3)])
    monkeypatch.setattr(t, "validate", lambda limit=None: (lambda r: {"average": {"sr": r[0]},
                                                                       "ema": {"average": r[1]}})(next(reads)))
    t._validate_and_keep_best()
    assert t.best is None and not (tmp_path / "checkpoints" / "best").exists()
    t._validate_and_keep_best()
    assert (t.best, t.best_weights) == (0.3, "ema")


def test_glyph_loss_leaves_out_records_without_glyphs() -> None:
    data = tiny_data()
    b = data.batch(torch.arange(5))
    assert b["glyph_ok"].tolist() == [False, True, True, True, True]
    crit = GlyphSRLoss(LossConfig(text_focus="none"))
    out = build_model(SRConfig(**TINY))(b["lr"])
    valid = b["glyph_ok"]

    def line_term(line: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return crit(out, b["hr"], None, line, b["char"], cls_t=b["cls"], glyph_valid=mask)["line"]

    shifted = b["line"].clone()
    shifted[0] += 5  # the left-out sample's targets change: the term does not
    assert torch.equal(line_term(shifted, valid), line_term(b["line"], valid))
    shifted[1] += 5  # a counted sample's targets change: the term does
    assert line_term(shifted, valid) > line_term(b["line"], valid)


def test_lr_schedule() -> None:
    tc = TrainConfig(warmup_steps=10, lr=1.0)
    assert lr_factor(tc, 0, 110, 10) == pytest.approx(0.1)
    assert lr_factor(tc, 9, 110, 10) == pytest.approx(1.0)
    assert lr_factor(tc, 10, 110, 10) == pytest.approx(1.0)
    assert lr_factor(tc, 60, 110, 10) == pytest.approx(0.5)
    assert lr_factor(tc, 110, 110, 10) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(tc, 20, 110, 10, time_frac=0.5) == pytest.approx(0.5)  # the clock ran ahead
    assert lr_factor(TrainConfig(warmup_epochs=5), 24, 1000, 10) == pytest.approx(0.5)  # paper: epochs of warm-up
    assert lr_factor(dataclasses.replace(tc, schedule="constant"), 80, 110, 10) == 1.0


def test_configuration_layers(tmp_path: Path) -> None:
    paper = resolve()
    assert (paper.train.batch, paper.train.lr, paper.train.epochs, paper.train.warmup_epochs) == (48, 1e-3, 200, 5)
    assert paper.model == SRConfig() and not paper.model.residual
    short = resolve("short")
    assert short.model.residual and not short.model.stn and short.train.batch == RECIPES["short"]["train"]["batch"]
    assert short.loss.text_focus == "none" and resolve("paper").loss.text_focus == "crnn"
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  lr: 0.005\n  batch: 32\nmodel:\n  n_gly: 3\n")
    c = resolve("short", f, ["train.batch=16", "loss.w_hog=0.05", "train.min_lr_ratio=1e-2"], variant="baseline1")
    assert c.train.min_lr_ratio == 0.01  # YAML 1.1 would read 1e-2 as a string
    assert (c.train.lr, c.train.batch, c.model.n_gly, c.loss.w_hog, c.model.variant) == (0.005, 16, 3, 0.05,
                                                                                          "baseline1")
    save_yaml(c, tmp_path / "saved.yaml")
    assert resolve("paper", tmp_path / "saved.yaml") == c
    for bad, msg in ((["train.nope=1"], "unknown keys in train"), (["lr=1"], "SECTION.KEY"),
                     (["train.precision=fp8"], "precision"), (["model.n_gly=9"], "n_gly")):
        with pytest.raises(ValueError, match=msg):
            resolve("paper", None, bad)
    with pytest.raises(ValueError, match="unknown variant"):
        resolve(variant="baseline9")


def test_checkpoint_round_trip_and_refusals(tmp_path: Path) -> None:
    cfg = SRConfig(**TINY, residual=True)
    model = build_model(cfg).eval()
    meta = {"config": RunConfig(model=cfg).to_dict(), "step": 3}
    write_checkpoint(tmp_path / "ck", model.state_dict(), meta)
    loaded, m = load_model(tmp_path / "ck")
    assert m["step"] == 3 and loaded.config.residual
    x = torch.rand(2, 4, 16, 64)
    torch.testing.assert_close(loaded(x).sr, model(x).sr)
    # another architecture: the metadata says one thing, the tensors are another's
    other = build_model(SRConfig(**{**TINY, "n_blocks": 3}))
    write_checkpoint(tmp_path / "other", other.state_dict(), meta)
    with pytest.raises(CheckpointError, match="does not fit"):
        load_model(tmp_path / "other")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model.safetensors").write_bytes(b"\x00" * 40)
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_model(tmp_path / "bad")
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "missing")
    # a checkpoint written twice keeps one readable folder, no temporary leftovers
    write_checkpoint(tmp_path / "ck", model.state_dict(), {**meta, "step": 4})
    assert read_weights(tmp_path / "ck")[1]["step"] == 4
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_residual_network_starts_at_bicubic() -> None:
    """The untrained network with the global skip returns the judged bicubic row (PIL's kernel, ``bicubic_up`` of
    the uint8 LR) to within PIL's rounding; ``skip_kernel="torch"`` (configurations saved before the key existed)
    keeps torch's default kernel."""
    model = build_model(SRConfig(**TINY, residual=True)).eval()
    words = [word_image(w, (128, 32), dark_on_light=i % 2 == 0).resize((64, 16), Image.BICUBIC)
             for i, w in enumerate(["Hello", "street", "OPEN 24", "x-ray"])]
    lr8 = torch.from_numpy(np.stack([np.asarray(w) for w in words])).permute(0, 3, 1, 2).contiguous()
    x = torch.cat([lr8, lr8[:, :1]], 1).float() / 255
    row = bicubic_up(lr8)
    diff = (model.super_resolve(x) - row).abs() * 255
    assert float(diff.max()) <= 3 and float((diff > 1).float().mean()) < 1e-3
    sr = model(x).sr
    torch.testing.assert_close(sr, torch.nn.functional.interpolate(x, scale_factor=2, mode="bicubic",
                                                                    align_corners=False, antialias=True))
    legacy = SRConfig(**TINY, residual=True).to_dict()
    del legacy["skip_kernel"]
    old = build_model(SRConfig.from_dict(legacy)).eval()
    torch.testing.assert_close(old(x).sr, torch.nn.functional.interpolate(x, scale_factor=2, mode="bicubic",
                                                                          align_corners=False))
    assert float(((old.super_resolve(x) - row).abs() * 255).max()) > 3  # the kernel the judge does not use
    with pytest.raises(ValueError, match="skip_kernel"):
        SRConfig(skip_kernel="lanczos")


def test_class_weight_scales_the_class_term_only() -> None:
    torch.manual_seed(0)
    model = build_model(SRConfig(**TINY))
    b = tiny_data().batch(torch.arange(4))
    out = model(b["lr"])
    args = (out, b["hr"], None, b["line"], b["char"])
    one = GlyphSRLoss(LossConfig(text_focus="none"))(*args, cls_t=b["cls"])
    tenth = GlyphSRLoss(LossConfig(text_focus="none", w_cls=0.1))(*args, cls_t=b["cls"])
    torch.testing.assert_close(tenth["cls"], one["cls"] * 0.1)
    for k in ("pix", "hog", "line", "char"):
        torch.testing.assert_close(tenth[k], one[k])


def test_init_weights_from_a_checkpoint_or_a_state_read_already(tmp_path: Path) -> None:
    """A new run starts from other weights: a checkpoint folder, or the state dict sr-train's --init check read."""
    cfg = tiny_config(steps=1)
    torch.manual_seed(7)
    src = build_model(cfg.model).state_dict()
    ckpt = write_checkpoint(tmp_path / "src", src, {"config": cfg.to_dict(), "step": 5})
    for init in (ckpt, read_weights(ckpt)[0]):
        trainer = Trainer(cfg, tiny_data(), tmp_path / "run", init_weights=init)
        got = trainer.model.state_dict()
        assert all(torch.equal(got[k], v) for k, v in src.items()) and trainer.step == 0
    with pytest.raises(CheckpointError, match="--init weights"):
        Trainer(cfg, tiny_data(), tmp_path / "run", init_weights={"nope": torch.zeros(1)})


def test_compile_lets_dynamo_read_the_recurrent_modules(tmp_path: Path) -> None:
    """train.compile turns on dynamo's allow_rnn (without it dynamo breaks the graph at every GRU and LSTM); the
    network is compiled lazily, at the first step."""
    from torch._dynamo import config as dynamo_config

    with dynamo_config.patch(allow_rnn=False):  # torch's own config patching (monkeypatch would delete the key)
        t = Trainer(tiny_config(steps=1), tiny_data(), tmp_path / "eager")
        assert dynamo_config.allow_rnn is False and t.net is t.model
        t = Trainer(tiny_config(steps=1, compile=True), tiny_data(), tmp_path / "compiled")
        assert dynamo_config.allow_rnn is True and t.net is not t.model
