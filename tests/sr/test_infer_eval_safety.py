"""sr-infer and sr-eval refuse bad outputs and options up front (exit 2, a message naming the option and the path),
never after the work: outputs named like sheets, empty paths, outputs under a file, --json and --save-sr paths that
cannot be written, empty recognizer lists, --save-sr with --sr-dir, device strings torch does not read."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image, ImageDraw

from glyphsr.pipelines import _cli, sr_eval, sr_infer
from glyphsr.sr.checkpoint import write_checkpoint
from glyphsr.sr.modeling import SRConfig, build_model
from glyphsr.sr.runtime import resolve_device
from glyphsr.sr.train.config import RunConfig
from tests.conftest import build_lmdb, encode, record, word_image
from tests.sr.test_infer import one_thread  # noqa: F401 - autouse: torch on one thread


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    cfg = RunConfig(model=SRConfig(c_sr=8, c_tp=8, n_blocks=2, n_gly=1, tpg_pretrained=False))
    path = tmp_path_factory.mktemp("ckpt") / "best"
    return write_checkpoint(path, build_model(cfg.model).state_dict(), {"config": cfg.to_dict(), "step": 0})


def word(size=(160, 40)) -> Image.Image:
    img = Image.new("RGB", size, (235, 230, 220))
    ImageDraw.Draw(img).text((6, 4), "Parking", fill=(20, 30, 40), font_size=30)
    return img


def infer(*args):
    return CliRunner().invoke(sr_infer.main, [str(a) for a in args], catch_exceptions=False)


def evaluate(tmp_path: Path, *args):
    return CliRunner().invoke(sr_eval.main, [str(a) for a in args], env={"GLYPHSR_CACHE": str(tmp_path / "cache")},
                              catch_exceptions=False)


def lmdb_at(path: Path) -> Path:
    entries = {}
    for i, label in enumerate(("Parking", "OPEN"), start=1):
        entries.update(record(i, label, encode(word_image(label, (128, 32))), encode(word_image(label, (64, 16)))))
    return build_lmdb(path, entries, "2")


# -- sr-infer --------------------------------------------------------------------------------------------------------
def test_an_output_named_like_a_sheet_is_refused(ckpt: Path, tmp_path: Path) -> None:
    sh = tmp_path / "sh"
    sh.mkdir()
    word().save(sh / "b.png")
    word().save(sh / "sheet-001.jpg")
    res = infer("--checkpoint", ckpt, sh, "--out", tmp_path / "o", "--sheet")
    assert res.exit_code == 2, res.output
    assert "sheet-001.png would be both the output of" in res.output and "sheet-001.jpg" in res.output
    assert not (tmp_path / "o").exists()
    res = infer("--checkpoint", ckpt, sh, "--out", tmp_path / "o")  # without --sheet there is nothing to collide
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["b.png", "sheet-001.png"]


def test_a_sheet_is_never_written_over_an_input_or_an_earlier_sheet(ckpt: Path, tmp_path: Path) -> None:
    o = tmp_path / "o"
    o.mkdir()
    word().save(o / "sheet-001.png")  # inputs sharing a stem: outputs sheet-001_png.png, sheet-001_jpg.png
    word().save(o / "sheet-001.jpg")
    before = (o / "sheet-001.png").read_bytes()
    res = infer("--checkpoint", ckpt, o / "sheet-001.png", o / "sheet-001.jpg", "--out", o, "--sheet", "--overwrite")
    assert res.exit_code == 2, res.output
    assert "would be replaced by the sheet" in res.output
    assert (o / "sheet-001.png").read_bytes() == before
    ins = tmp_path / "in"
    ins.mkdir()
    word().save(ins / "a.png")
    word().save(ins / "b.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "sheet-001.png").write_bytes(b"an earlier sheet")
    res = infer("--checkpoint", ckpt, ins, "--out", out, "--sheet")
    assert res.exit_code == 2 and "--overwrite" in res.output and "sheet-001.png" in res.output, res.output
    assert (out / "sheet-001.png").read_bytes() == b"an earlier sheet" and not (out / "a.png").exists()


def test_empty_paths_are_refused(ckpt: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # where "" pointed before it was refused
    word().save(tmp_path / "a.png")
    res = infer("--checkpoint", ckpt, tmp_path / "a.png", "--out", "")
    assert res.exit_code == 2 and "--out is an empty string" in res.output, res.output
    res = infer("--checkpoint", ckpt, tmp_path / "a.png", "", "--out", tmp_path / "o")
    assert res.exit_code == 2 and "input 2 is an empty string" in res.output, res.output
    assert not (tmp_path / "o").exists()


def test_out_under_a_file_or_a_folder_in_the_way(ckpt: Path, tmp_path: Path) -> None:
    word().save(tmp_path / "a.png")
    (tmp_path / "afile").write_text("a file")
    res = infer("--checkpoint", ckpt, tmp_path / "a.png", "--out", tmp_path / "afile" / "x")
    assert res.exit_code == 2, res.output
    assert f"--out {tmp_path / 'afile' / 'x'} cannot be a folder: {tmp_path / 'afile'} is a file" in res.output
    assert "Errno" not in res.output and "input(s)" not in res.output  # refused before the model loads
    out = tmp_path / "o"
    (out / "a.png").mkdir(parents=True)
    res = infer("--checkpoint", ckpt, tmp_path / "a.png", "--out", out, "--overwrite")
    assert res.exit_code == 2 and "a folder is in the way" in res.output, res.output


def test_an_unwritable_out_is_refused(tmp_path: Path, monkeypatch) -> None:
    word().save(tmp_path / "a.png")
    monkeypatch.setattr(_cli.os, "access", lambda path, mode: False)  # the tests may run as root
    with pytest.raises(ValueError, match=re.escape(f"--out {tmp_path / 'o'}: {tmp_path} is not writable")):
        sr_infer.plan_run([str(tmp_path / "a.png")], tmp_path / "o", sheet=False, overwrite=False)


@pytest.mark.parametrize(("device", "words"), [("gpu", "--device 'gpu': not a device"),
                                               ("cpu:7", "the CPU takes no index"),
                                               ("meta", "meta devices are not supported")])
def test_bad_devices_are_refused(ckpt: Path, tmp_path: Path, device: str, words: str) -> None:
    word().save(tmp_path / "a.png")
    res = infer("--checkpoint", ckpt, tmp_path / "a.png", "--out", tmp_path / "o", "--device", device)
    assert res.exit_code == 2 and words in res.output, res.output
    assert not (tmp_path / "o").exists()
    res = evaluate(tmp_path, "--checkpoint", ckpt, "--lmdb", tmp_path / "nope", "--device", device)
    assert res.exit_code == 2 and words in res.output, res.output


@pytest.mark.parametrize(("var", "value"), [("GLYPHSR_GRU", "cudnn"), ("GLYPHSR_FP32_GRU", "gpu"),
                                            ("GLYPHSR_RESIZE", "fast"), ("GLYPHSR_DEFORM", "cuda")])
def test_bad_kernel_settings_are_refused_before_any_work(ckpt: Path, tmp_path: Path, monkeypatch, var: str,
                                                      value: str) -> None:
    """A bad GLYPHSR_GRU, GLYPHSR_FP32_GRU, GLYPHSR_RESIZE or GLYPHSR_DEFORM is a clear error (exit 2) naming the
    variable, not a traceback at the first forward pass."""
    from glyphsr.pipelines import sr_train

    word().save(tmp_path / "a.png")
    monkeypatch.setenv(var, value)
    res = infer("--checkpoint", ckpt, tmp_path / "a.png", "--out", tmp_path / "o")
    assert res.exit_code == 2 and f"{var}='{value}'" in res.output, res.output
    assert not (tmp_path / "o").exists()
    res = evaluate(tmp_path, "--checkpoint", ckpt, "--lmdb", lmdb_at(tmp_path / "db"))
    assert res.exit_code == 2 and f"{var}='{value}'" in res.output, res.output
    res = CliRunner().invoke(sr_train.main, ["--masks", str(tmp_path / "none.zarr"), "--out", str(tmp_path / "run")])
    assert res.exit_code == 2 and f"{var}='{value}'" in res.output, res.output
    assert not (tmp_path / "run").exists()


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="not a device"):
        resolve_device("")
    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        with pytest.raises(ValueError, match=f"has {n} CUDA device"):
            resolve_device(f"cuda:{n}")
    else:
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda:0")


# -- sr-eval ---------------------------------------------------------------------------------------------------------
def test_eval_output_paths_are_checked_before_any_work(ckpt: Path, tmp_path: Path) -> None:
    db = lmdb_at(tmp_path / "db")
    (tmp_path / "afile").write_text("a file")
    (tmp_path / "sr").mkdir()
    (tmp_path / "jd").mkdir()
    cases = [
        (["--json", tmp_path / "jd"], f"--json {tmp_path / 'jd'}: a folder, not a file"),
        (["--json", tmp_path / "afile" / "x.json"], f"{tmp_path / 'afile'} is a file, not a folder"),
        (["--save-sr", tmp_path / "afile"], f"--save-sr {tmp_path / 'afile'}: not a folder"),
        (["--save-sr", tmp_path / "afile" / "y"], f"--save-sr {tmp_path / 'afile' / 'y'} cannot be a folder"),
        (["--json", ""], "--json is an empty string"),
        (["--save-sr", ""], "--save-sr is an empty string"),
        (["--recognizer", ","], "--recognizer ',' names no recognizer"),
        (["--recognizer", ""], "--recognizer '' names no recognizer"),
        (["--json", tmp_path / "same", "--save-sr", tmp_path / "same"], "name the same path"),
    ]
    for args, words in cases:
        res = evaluate(tmp_path, "--checkpoint", ckpt, "--lmdb", db, "--limit", "2", *args)
        assert res.exit_code == 2, (args, res.output)
        assert "error:" in res.output and words in res.output, (args, res.output)
        assert "sets:" not in res.output, (args, res.output)  # refused before the data was read
    res = evaluate(tmp_path, "--sr-dir", tmp_path / "sr", "--save-sr", tmp_path / "x", "--lmdb", db)
    assert res.exit_code == 2 and "leave out --save-sr" in res.output, res.output
    assert not (tmp_path / "x").exists()


def test_eval_save_sr_set_folder_in_the_way(ckpt: Path, tmp_path: Path) -> None:
    a, b = lmdb_at(tmp_path / "a"), lmdb_at(tmp_path / "b")
    save = tmp_path / "save"
    save.mkdir()
    (save / "b").write_text("a file where set b's PNGs would go")
    res = evaluate(tmp_path, "--checkpoint", ckpt, "--lmdb", a, "--lmdb", b, "--no-ema", "--save-sr", save)
    assert res.exit_code == 2 and f"--save-sr {save / 'b'}: not a folder" in res.output, res.output
    assert "sets:" not in res.output and not (save / "a").exists()  # before any SR image was made
