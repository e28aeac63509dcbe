"""sr-export never destroys what it replaces or exports into the checkpoint it reads; the checkpoint reader takes
only the files the format names and refuses a tensor held twice."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from glyphsr.pipelines import sr_export
from glyphsr.sr.checkpoint import CheckpointError, has_ema, load_model, read_weights, save_weights, write_checkpoint
from glyphsr.sr.modeling import SRConfig, build_model
from glyphsr.sr.train.config import RunConfig

TINY = {"c_sr": 8, "c_tp": 8, "n_blocks": 2, "n_gly": 1, "tpg_pretrained": False}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny training checkpoint (weights, EMA, resume state): about 22 MiB of fp32 weights besides the TPG's
    14 MiB, 11 and 7 MiB in fp16."""
    torch.manual_seed(0)
    cfg = SRConfig(**TINY)
    state = build_model(cfg).state_dict()
    meta = {"config": RunConfig(model=cfg).to_dict(), "step": 3}
    return write_checkpoint(tmp_path_factory.mktemp("run") / "best", state, meta, ema_state=state,
                            resume={"step": 3})


def cli(*args: str | Path):
    return CliRunner().invoke(sr_export.main, [str(a) for a in args], catch_exceptions=False)


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_refused_export_leaves_the_earlier_one(checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert cli(checkpoint, out).exit_code == 0
    (out / "README.md").write_text("model card")
    before = digest(out)
    res = cli(checkpoint, out, "--dtype", "fp32", "--overwrite")  # model.safetensors would be 22 MiB
    assert res.exit_code == 2 and "model.safetensors" in res.output and "--max-mb 16" in res.output, res.output
    assert digest(out) == before and leftovers(tmp_path) == []
    load_model(out)
    # a new folder: nothing is created
    res = cli(checkpoint, tmp_path / "new", "--max-mb", "1")
    assert res.exit_code == 2 and "raise --max-mb" in res.output, res.output
    assert not (tmp_path / "new").exists() and leftovers(tmp_path) == []


def test_overwrite_replaces_the_export_and_keeps_other_files(checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert cli(checkpoint, out).exit_code == 0
    (out / "README.md").write_text("model card")
    shutil.copy(out / "model.safetensors", out / "model-old.safetensors")
    res = cli(checkpoint, out, "--dtype", "bf16")
    assert res.exit_code == 2 and "already holds an export" in res.output and "--overwrite" in res.output, res.output
    res = cli(checkpoint, out, "--dtype", "bf16", "--overwrite")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "model-tpg.safetensors", "model.safetensors"]
    assert (out / "README.md").read_text() == "model card" and leftovers(tmp_path) == []
    state, meta = read_weights(out)
    assert meta["dtype"] == "bf16" and all(v.dtype == torch.bfloat16 for v in state.values() if v.is_floating_point())
    load_model(out)


def test_out_that_would_be_damaged_is_refused(checkpoint: Path, tmp_path: Path) -> None:
    before = digest(checkpoint)
    link = tmp_path / "link"
    link.symlink_to(checkpoint)
    (tmp_path / "file").write_text("x")
    cases = [
        (checkpoint, "the checkpoint's own folder"),
        (link, "the checkpoint's own folder"),
        (checkpoint / "export", "inside the checkpoint's own folder"),
        (checkpoint.parent, "holds the checkpoint"),
        (tmp_path / "file", "not a folder (a file of that name exists)"),
    ]
    for out, words in cases:
        for extra in ([], ["--overwrite"]):
            res = cli(checkpoint, out, *extra)
            assert res.exit_code == 2 and words in res.output, (out, res.output)
    assert digest(checkpoint) == before and not (checkpoint / "export").exists()
    assert (tmp_path / "file").read_text() == "x"
    # another run's training checkpoint is not an export, --overwrite or not
    other = write_checkpoint(tmp_path / "other", *read_weights(checkpoint), resume={"step": 1})
    res = cli(checkpoint, other, "--overwrite")
    assert res.exit_code == 2 and "training checkpoint" in res.output, res.output


@pytest.mark.parametrize("value", ["-5", "0", "nan", "inf"])
def test_max_mb_must_be_a_size(checkpoint: Path, tmp_path: Path, value: str) -> None:
    res = cli(checkpoint, tmp_path / "out", "--max-mb", value)
    assert res.exit_code == 2 and "--max-mb" in res.output, res.output
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="max_mb"):
        sr_export.export(checkpoint, tmp_path / "out", max_mb=float(value))


def test_weights_that_do_not_fit_their_configuration_are_refused(checkpoint: Path, tmp_path: Path) -> None:
    other = build_model(SRConfig(**{**TINY, "n_blocks": 3})).state_dict()
    bad = write_checkpoint(tmp_path / "bad", other, read_weights(checkpoint)[1])
    res = cli(bad, tmp_path / "out")
    assert res.exit_code == 2 and "does not fit" in res.output and "unexpected" in res.output, res.output
    assert not (tmp_path / "out").exists()


def test_reader_takes_only_the_parts_the_format_names(checkpoint: Path, tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    shutil.copytree(checkpoint, ck)
    state, meta = read_weights(ck)
    # a stray backup beside the weights, with other values: not a part, never read
    stray = {k: torch.zeros_like(v) for k, v in load_file(ck / "model.safetensors").items()}
    save_file(stray, ck / "model-old.safetensors", metadata={"glyphsr": json.dumps({"format": 1, **meta})})
    shutil.copy(ck / "model-old.safetensors", ck / "ema-old.safetensors")
    for stem in ("model", "ema"):
        got, _ = read_weights(ck, stem)
        assert all(torch.equal(got[k], v) for k, v in state.items())
    load_model(ck)
    # a defined part holding tensors the main file holds too: refused, naming the folder and both files
    for stem in ("model", "ema"):
        shutil.copy(ck / f"{stem}.safetensors", ck / f"{stem}-tpg.safetensors")
        with pytest.raises(CheckpointError, match=rf"{ck}: {stem}-tpg.safetensors holds \d+ tensors that "
                                                  rf"{stem}.safetensors holds too"):
            read_weights(ck, stem)
    res = cli(ck, tmp_path / "out")
    assert res.exit_code == 2 and "model-tpg.safetensors" in res.output, res.output


def test_reader_refuses_parts_of_different_exports_and_parts_alone(checkpoint: Path, tmp_path: Path) -> None:
    state, meta = read_weights(checkpoint)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    save_weights(a, "model", state, {**meta, "step": 1}, split={"tpg.": "tpg"})
    save_weights(b, "model", state, {**meta, "step": 2}, split={"tpg.": "tpg"})
    shutil.copy(b / "model-tpg.safetensors", a / "model-tpg.safetensors")
    with pytest.raises(CheckpointError, match="different metadata"):
        read_weights(a)
    (b / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        read_weights(b)
    assert not has_ema(a)
    with pytest.raises(ValueError, match="PARTS"):
        save_weights(tmp_path, "model", state, meta, split={"tpg.": "old"})


def test_weights_are_readable_by_all(tmp_path: Path) -> None:
    """safetensors writes its files 0600; shipped weights in a wheel, or a run shared on a server, must not be."""
    import stat

    from glyphsr.sr.checkpoint import save_weights

    paths = save_weights(tmp_path, "model", {"a.w": torch.zeros(2), "tpg.w": torch.ones(2)}, {"step": 1},
                         split={"tpg.": "tpg"})
    assert [p.name for p in paths] == ["model.safetensors", "model-tpg.safetensors"]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in paths)


def test_export_into_the_current_folder_keeps_it(checkpoint: Path, tmp_path: Path, monkeypatch) -> None:
    """OUT is written in place (its inode kept), so a shell sitting in it, or a mount point, is not pulled away."""
    out = tmp_path / "here"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    inode = out.stat().st_ino
    monkeypatch.chdir(out)
    res = cli(checkpoint, ".")
    assert res.exit_code == 0, res.output
    assert out.stat().st_ino == inode and (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in out.iterdir()) == ["model-tpg.safetensors", "model.safetensors", "notes.txt"]
    assert cli(checkpoint, ".", "--overwrite").exit_code == 0 and out.stat().st_ino == inode
    assert leftovers(out) == []


@pytest.fixture(scope="module")
def residual_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny network with the global skip whose last convolution is not zero (a difference to scale)."""
    torch.manual_seed(1)
    cfg = SRConfig(**TINY, residual=True, stn=False)
    model = build_model(cfg)
    with torch.no_grad():
        model.out.weight.normal_(0, 0.05)
        model.out.bias.normal_(0, 0.05)
    meta = {"config": RunConfig(model=cfg).to_dict(), "step": 5}
    return write_checkpoint(tmp_path_factory.mktemp("res") / "last", model.state_dict(), meta)


def test_residual_gain_scales_the_difference_and_is_recorded(residual_checkpoint: Path, tmp_path: Path,
                                                             checkpoint: Path) -> None:
    res = cli(residual_checkpoint, tmp_path / "half", "--residual-gain", "0.5", "--dtype", "fp32", "--max-mb", "64")
    assert res.exit_code == 0, res.output
    src, _ = read_weights(residual_checkpoint)
    got, meta = read_weights(tmp_path / "half")
    torch.testing.assert_close(got["out.weight"][:3], src["out.weight"][:3] * 0.5)
    torch.testing.assert_close(got["out.bias"][3:], src["out.bias"][3:])  # the mask channel as it was
    assert torch.equal(got["tail.0.weight"], src["tail.0.weight"])
    assert meta["residual_gain"] == 0.5 and meta["residual_gain_by"]["program"] == "sr-export"
    res = cli(tmp_path / "half", tmp_path / "quarter", "--residual-gain", "0.5", "--dtype", "fp32", "--max-mb", "64")
    assert res.exit_code == 0, res.output
    assert read_weights(tmp_path / "quarter")[1]["residual_gain"] == 0.25  # an export of an export: the product
    for bad, say in (("-1", "number >= 0"), ("nan", "number >= 0"), ("lots", "give a number")):
        res = cli(residual_checkpoint, tmp_path / f"bad{bad}", "--residual-gain", bad)
        assert res.exit_code != 0 and say in res.output and not (tmp_path / f"bad{bad}").exists(), res.output
    res = cli(checkpoint, tmp_path / "noskip", "--residual-gain", "0.5")
    assert res.exit_code != 0 and "without the global skip" in res.output and not (tmp_path / "noskip").exists()
    res = cli(residual_checkpoint, tmp_path / "auto", "--residual-gain", "auto")
    assert res.exit_code != 0 and "needs --calibrate-lmdb" in res.output
    res = cli(residual_checkpoint, tmp_path / "x", "--calibrate-lmdb", tmp_path)
    assert res.exit_code != 0 and "for --residual-gain auto" in res.output


def test_residual_gain_auto_is_judged_on_training_pairs(residual_checkpoint: Path, synth_dir: Path,
                                                        tmp_path: Path) -> None:
    res = cli(residual_checkpoint, tmp_path / "auto", "--residual-gain", "auto", "--calibrate-lmdb",
              synth_dir / "train", "--calibrate-n", "4", "--device", "cpu")
    assert res.exit_code == 0, res.output
    meta = read_weights(tmp_path / "auto")[1]
    cal = meta["residual_gain_by"]["calibration"]
    assert meta["residual_gain"] == cal["gain"] and cal["gain"] in (0.25, 0.5, 0.75, 1.0) and cal["n"] == 4
    assert set(cal["table"]) == {"0.25", "0.5", "0.75", "1"} and cal["on"] == str(synth_dir / "train")
    assert "residual gain: 0.25 " in res.output
    res = cli(residual_checkpoint, tmp_path / "nolmdb", "--residual-gain", "auto", "--calibrate-lmdb", tmp_path)
    assert res.exit_code != 0 and "--calibrate-lmdb" in res.output and not (tmp_path / "nolmdb").exists()
