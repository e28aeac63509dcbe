"""sr-train refuses bad input before it removes or writes anything: an --overwrite whose inputs do not check out
keeps the old run, --set values are checked against their fields' types and ranges, a damaged run.json, an --out
that is a file, --init weights of another network and an unknown --device are named up front (exit 2), and the
closing line lists only what the run folder holds. No mask store is needed: each refusal comes before the data."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from glyphsr.pipelines import sr_train
from glyphsr.sr.checkpoint import write_checkpoint
from glyphsr.sr.modeling import SRConfig, build_model
from glyphsr.sr.train.config import RunConfig, resolve, save_yaml
from glyphsr.sr.train.loop import Trainer
from tests.sr.test_train import TINY, tiny_config, tiny_data

TINY_SET = [a for k, v in TINY.items() for a in ("--set", f"model.{k}={str(v).lower()}")] + ["--device", "cpu"]
OLD_RUN = ("checkpoints/last/model.safetensors", "tb/events", "metrics.jsonl", "summary.json", "curves.png")


def run(*args: str):
    return CliRunner().invoke(sr_train.main, [str(a) for a in args])


def _old_run(folder: Path) -> Path:
    for f in OLD_RUN:
        (folder / f).parent.mkdir(parents=True, exist_ok=True)
        (folder / f).write_text("a finished run")
    return folder


def _checkpoint(folder: Path, **model) -> Path:
    cfg = SRConfig(**{**TINY, **model})
    write_checkpoint(folder, build_model(cfg).state_dict(), {"config": RunConfig(model=cfg).to_dict(), "step": 1})
    return folder


@pytest.mark.parametrize("bad", [
    ["--masks", "/nope.zarr"],
    ["--set", "model.residual=flase"],
    ["--set", "train.log_every=0"],
    ["--init", "nosuch"],
    ["--device", "gpu"],
], ids=["masks", "set", "range", "init", "device"])
def test_overwrite_keeps_the_old_run_when_an_input_is_bad(tmp_path: Path, bad: list[str]) -> None:
    out = _old_run(tmp_path / "run")
    args = {"--masks": str(tmp_path / "nope.zarr"), **dict(zip(bad[::2], bad[1::2]))}
    res = run("--out", out, "--overwrite", *TINY_SET, *(a for kv in args.items() for a in kv))
    assert res.exit_code == 2, res.output
    for f in OLD_RUN:
        assert (out / f).is_file(), f"{f} was removed: {res.output}"


def test_set_values_are_checked_against_their_fields(tmp_path: Path) -> None:
    for text, msg in (("model.residual=flase", "--set model.residual=flase: expected true or false"),
                      ("model.residual=on", "expected true or false"),
                      ("model.c_sr=abc", "--set model.c_sr=abc: expected an integer"),
                      ("model.c_sr=0", "--set model.c_sr=0: expected an integer >= 1"),
                      ("model.n_gly=two", "--set model.n_gly=two: expected an integer"),
                      ("train.batch=abc", "--set train.batch=abc: expected an integer"),
                      ("train.lr=fast", "--set train.lr=fast: expected a number"),
                      ("train.betas=0.9", "expected a list of 2 numbers"),
                      ("train.log_every=0", "train.log_every must be >= 1"),
                      ("train.ema=1.5", "train.ema must be in"),
                      ("loss.text_focus=nope", "expected one of crnn, stt, none")):
        with pytest.raises(ValueError, match=re.escape(msg)):
            resolve("paper", None, [text])
    for text, key, want in (("model.residual=YES", "residual", True), ("model.residual=0", "residual", False),
                            ("train.steps=1e3", "steps", 1000), ("train.lr=3e-4", "lr", 3e-4),
                            ("train.ema=null", "ema", None), ("train.val_every=0", "val_every", 0),
                            ("train.ckpt_every=0", "ckpt_every", 0), ("train.grad_clip=0", "grad_clip", 0.0),
                            ("train.workers=0", "workers", 0), ("train.val_every_s=0", "val_every_s", 0.0),
                            ("train.time_budget_s=0", "time_budget_s", 0.0),  # 0 means off (every core), as before
                            ("loss.crnn_weights=2024", "crnn_weights", "2024")):
        section = text.split(".")[0]
        got = getattr(getattr(resolve("paper", None, [text]), section), key)
        assert got == want and type(got) is type(want), text
    f = tmp_path / "c.yaml"
    f.write_text("model: 3\n")
    with pytest.raises(ValueError, match="section 'model' must be a mapping"):
        resolve("paper", f)
    f.write_text("train:\n  batch: abc\n")
    with pytest.raises(ValueError, match=r"c\.yaml: train\.batch: expected an integer, got 'abc'"):
        resolve("paper", f)


def test_bad_settings_stop_before_the_run_folder_is_made(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: 3\n")
    for extra, msg in ((["--set", "model.c_sr=abc"], "--set model.c_sr=abc: expected an integer"),
                       (["--set", "train.batch=abc"], "--set train.batch=abc: expected an integer"),
                       (["--config", cfg], "section 'model' must be a mapping")):
        out = tmp_path / "run"
        res = run("--masks", tmp_path / "nope.zarr", "--out", out, *TINY_SET, *extra)
        assert res.exit_code == 2 and msg in res.output, res.output
        assert not out.exists()


@pytest.mark.parametrize("content, msg", [(None, "run.json is missing"), ("{}", "run.json lacks a usable store"),
                                          ("not json", "run.json is not readable JSON")])
def test_resume_names_a_damaged_run_json(tmp_path: Path, content: str | None, msg: str) -> None:
    out = tmp_path / "run"
    out.mkdir()
    save_yaml(resolve("paper", None, [f"model.{k}={str(v).lower()}" for k, v in TINY.items()]), out / "config.yaml")
    if content is not None:
        (out / "run.json").write_text(content)
    res = run("--out", out, "--resume")
    assert res.exit_code == 2, res.output
    assert msg in res.output and str(out / "run.json") in res.output


def test_out_that_is_a_file_is_refused_up_front(tmp_path: Path) -> None:
    f = tmp_path / "afile"
    f.write_text("not a run folder")
    res = run("--masks", tmp_path / "nope.zarr", "--out", f, *TINY_SET)
    assert res.exit_code == 2 and "--out" in res.output and "a file of that name exists" in res.output, res.output
    res = run("--masks", tmp_path / "nope.zarr", "--out", f / "run", *TINY_SET)
    assert res.exit_code == 2 and f"{f} is a file" in res.output, res.output


def test_init_is_checked_before_the_data(tmp_path: Path) -> None:
    masks = tmp_path / "nope.zarr"  # the data would be refused too: --init must be named first
    res = run("--masks", masks, "--out", tmp_path / "a", "--init", tmp_path / "nosuch", *TINY_SET)
    assert res.exit_code == 2 and "--init" in res.output and "nosuch" in res.output, res.output
    other = _checkpoint(tmp_path / "other", n_blocks=3)
    res = run("--masks", masks, "--out", tmp_path / "b", "--init", other, *TINY_SET)
    assert res.exit_code == 2, res.output
    assert "does not fit this run's configuration" in res.output and "n_blocks=3 (this run: 2)" in res.output
    assert "its configuration describes" not in res.output
    same = _checkpoint(tmp_path / "same")
    res = run("--masks", masks, "--out", tmp_path / "c", "--init", same, *TINY_SET)
    assert res.exit_code == 2 and "no such mask store" in res.output, res.output  # fitting weights pass on


def test_device_is_checked(tmp_path: Path) -> None:
    base = ["--masks", tmp_path / "nope.zarr", "--out", tmp_path / "run", *TINY_SET[:-2]]
    res = run(*base, "--device", "gpu")
    assert res.exit_code == 2 and "--device 'gpu': not a device" in res.output, res.output
    res = run(*base, "--device", "meta")
    assert res.exit_code == 2 and "--device meta" in res.output, res.output
    if not torch.cuda.is_available():
        res = run(*base, "--device", "cuda:0")
        assert res.exit_code == 2 and "CUDA is not available" in res.output, res.output


def test_summary_lists_only_what_the_run_folder_holds(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    trainer = Trainer(tiny_config(steps=1), tiny_data(), tmp_path)  # no validation: no checkpoints/best
    result = trainer.run()
    info = {"lmdb": "x", "store": "y", "records": 6, "used": 6, "mode": "memory", "left_out_bad": 0,
            "bad_reasons": {}, "glyph_loss_records": 6, "no_glyph": 0}
    sr_train._finish(trainer, tmp_path, result, info)
    line = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert "checkpoints/last" in line and "metrics.jsonl" in line
    assert not (tmp_path / "checkpoints" / "best").exists() and "checkpoints/best" not in line
