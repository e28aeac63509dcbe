"""sr-infer end to end with a tiny checkpoint on the CPU: output names and sizes per mode, PIL modes, bad files,
refusals (exit 2), shipped weights, EMA weights, sheets with the real RapidOCR's readings, and ``python -m``."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image, ImageDraw

import glyphsr.weights
from glyphsr.pipelines import sr_infer
from glyphsr.sr.checkpoint import write_checkpoint
from glyphsr.sr.modeling import SRConfig, build_model
from glyphsr.sr.train.config import RunConfig
from tests.sr.test_infer import one_thread  # noqa: F401 - autouse: torch on one thread

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny checkpoint with EMA weights that differ from the model's."""
    torch.manual_seed(0)
    cfg = RunConfig(model=SRConfig(c_sr=8, c_tp=8, n_blocks=2, n_gly=1, tpg_pretrained=False))
    state = build_model(cfg.model).state_dict()
    ema = {k: v + 0.05 if v.is_floating_point() else v for k, v in state.items()}
    path = tmp_path_factory.mktemp("ckpt") / "best"
    return write_checkpoint(path, state, {"config": cfg.to_dict(), "step": 0}, ema_state=ema)


def word(size=(160, 40), text="Parking") -> Image.Image:
    img = Image.new("RGB", size, (235, 230, 220))
    ImageDraw.Draw(img).text((6, size[1] // 8), text, fill=(20, 30, 40), font_size=size[1] * 3 // 4)
    return img


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    d = tmp_path / "in"
    d.mkdir()
    word().save(d / "word.png")
    word((2500, 300), "a long line of text that TextZoom's protocol would squash").save(d / "long.jpg")
    word().convert("L").save(d / "gray.png")
    word().convert("RGBA").save(d / "rgba.png")
    word().convert("P").save(d / "pal.png")
    Image.fromarray(np.asarray(word().convert("L")).astype(np.uint16) * 257).save(d / "g16.png")
    (d / "notes.txt").write_text("not an image, and not named like one")
    return d


def run(*args: str):
    return CliRunner().invoke(sr_infer.main, [str(a) for a in args], catch_exceptions=False)


def test_outputs_are_named_after_inputs_and_sized_by_mode(ckpt: Path, inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = run("--checkpoint", ckpt, inputs, "--out", out, "--batch", "4")
    assert res.exit_code == 0, res.output
    sizes = {p.name: Image.open(p).size for p in out.iterdir()}
    assert sizes == {"word.png": (128, 32), "gray.png": (128, 32), "rgba.png": (128, 32), "pal.png": (128, 32),
                     "g16.png": (128, 32), "long.png": (266, 32)}  # 2500x300 -> 133x16 tiles -> x2
    assert all(Image.open(p).mode == "RGB" for p in out.iterdir())
    assert "6 of 6" in res.output and "fit 5, tiles 1" in res.output and "1 non-image file" in res.output
    res = run("--checkpoint", ckpt, inputs / "long.jpg", "--out", tmp_path / "fit", "--mode", "fit")
    assert res.exit_code == 0, res.output
    assert Image.open(tmp_path / "fit" / "long.png").size == (128, 32)


def test_unreadable_and_empty_files_are_listed_and_skipped(ckpt: Path, inputs: Path, tmp_path: Path) -> None:
    (inputs / "empty.png").write_bytes(b"")
    (inputs / "junk.jpg").write_bytes(b"\xff\xd8 this is no JPEG")
    out = tmp_path / "out"
    res = run("--checkpoint", ckpt, inputs, "--out", out)
    assert res.exit_code == 1, res.output
    assert "skipped 2 input(s)" in res.output
    assert "empty.png: empty file (0 bytes)" in res.output and "junk.jpg: " in res.output
    assert len(list(out.glob("*.png"))) == 6 and not (out / "empty.png").exists()
    res = run("--checkpoint", ckpt, inputs, "--out", out, "--skip-bad", "--overwrite")
    assert res.exit_code == 0, res.output
    assert "skipped 2 input(s)" in res.output


def test_refusals_exit_2_before_any_work(ckpt: Path, inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (tmp_path / "empty").mkdir()
    other = tmp_path / "other"
    other.mkdir()
    word().save(other / "word.png")
    for args, msg in (([tmp_path / "nope.png"], "no such file or folder"),
                      ([tmp_path / "empty"], "no images in this folder"),
                      ([str(tmp_path / "*.webp")], "matches nothing"),
                      ([inputs, other], "more than one input"),
                      ([inputs / "word.png", "--out", inputs, "--mode", "fit"], "replaced by its own output")):
        res = run("--checkpoint", ckpt, *args, *([] if "--out" in args else ["--out", out]))
        assert res.exit_code == 2, (args, res.output)
        assert msg in res.output, res.output
    assert not out.exists()
    out.mkdir()
    (out / "word.png").write_bytes(b"earlier")
    res = run("--checkpoint", ckpt, inputs / "word.png", "--out", out)
    assert res.exit_code == 2 and "--overwrite" in res.output
    assert (out / "word.png").read_bytes() == b"earlier"
    res = run("--checkpoint", ckpt, inputs / "word.png", "--out", out, "--overwrite")
    assert res.exit_code == 0 and Image.open(out / "word.png").size == (128, 32)
    res = run("--checkpoint", tmp_path / "empty", inputs / "word.png", "--out", tmp_path / "o2")
    assert res.exit_code == 2 and "no model.safetensors" in res.output
    if not torch.cuda.is_available():
        res = run("--checkpoint", ckpt, inputs / "word.png", "--out", tmp_path / "o3", "--device", "cuda")
        assert res.exit_code == 2 and "CUDA is not available" in res.output


def test_globs_and_inputs_sharing_a_name(ckpt: Path, inputs: Path, tmp_path: Path) -> None:
    word().save(inputs / "word.jpg")
    res = run("--checkpoint", ckpt, str(inputs / "wor*"), inputs / "word.png", "--out", tmp_path / "out")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["word_jpg.png", "word_png.png"]


def test_weights_shipped_or_not(ckpt: Path, inputs: Path, tmp_path: Path, monkeypatch) -> None:
    shipped = tmp_path / "weights"
    shipped.mkdir()
    monkeypatch.setattr(glyphsr.weights, "WEIGHTS_DIR", shipped)
    res = run(inputs / "word.png", "--out", tmp_path / "out")
    assert res.exit_code == 2
    assert "no --checkpoint given" in res.output and "ships none yet" in res.output and "sr-train" in res.output
    res = run("--checkpoint", "mine", inputs / "word.png", "--out", tmp_path / "out")
    assert res.exit_code == 2 and "no shipped weights of that name" in res.output
    shutil.copytree(ckpt, shipped / glyphsr.weights.DEFAULT)
    res = run(inputs / "word.png", "--out", tmp_path / "out")
    assert res.exit_code == 0, res.output
    res = run("--checkpoint", glyphsr.weights.DEFAULT, inputs / "word.png", "--out", tmp_path / "out2")
    assert res.exit_code == 0, res.output


def test_ema_weights_when_present(ckpt: Path, inputs: Path, tmp_path: Path) -> None:
    res = run("--checkpoint", ckpt, inputs / "word.png", "--out", tmp_path / "model")
    assert res.exit_code == 0 and "model weights" in res.output
    res = run("--checkpoint", ckpt, inputs / "word.png", "--out", tmp_path / "ema", "--ema")
    assert res.exit_code == 0 and "EMA weights" in res.output
    a, b = (np.asarray(Image.open(tmp_path / d / "word.png")) for d in ("model", "ema"))
    assert not np.array_equal(a, b)
    no_ema = tmp_path / "no-ema"
    shutil.copytree(ckpt, no_ema, ignore=shutil.ignore_patterns("ema*"))
    res = run("--checkpoint", no_ema, inputs / "word.png", "--out", tmp_path / "x", "--ema")
    assert res.exit_code == 0 and "has no EMA weights" in res.output


def test_sheets_with_the_real_judges_readings(ckpt: Path, inputs: Path, tmp_path: Path, monkeypatch) -> None:
    from glyphsr.sr import sheet as sheet_mod

    drawn = []
    real = sheet_mod.render_sheet

    def spy(entries, judge=None, **kw):
        drawn.append((list(entries), judge))
        return real(entries, judge, **kw)

    monkeypatch.setattr(sheet_mod, "render_sheet", spy)
    out = tmp_path / "one"
    res = run("--checkpoint", ckpt, inputs / "word.png", "--out", out, "--sheet", "--recognize")
    assert res.exit_code == 0, res.output
    sheet = Image.open(out / "word.sheet.png")
    (entries, judge), = drawn
    assert judge == "rapidocr-ppocrv4" and entries[0].readings is not None
    assert "Parking" in (entries[0].readings["lr"], entries[0].readings["bicubic"])  # a clean word, read by RapidOCR
    assert "Parking" in res.output  # the readings table
    assert sheet.size[1] > 3 * 64 + 3 * 18  # three panels at 64 px and a reading under each
    drawn.clear()
    res = run("--checkpoint", ckpt, inputs, "--out", tmp_path / "many", "--sheet")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "many" / "sheet-001.png").is_file() and len(drawn) == 1 and len(drawn[0][0]) == 6
    assert drawn[0][0][0].readings is None


def test_runs_as_a_module(tmp_path: Path) -> None:
    """``python -m`` reaches the same command; refusals come before torch is even imported (fast)."""
    res = subprocess.run([sys.executable, "-m", "glyphsr.pipelines.sr_infer", str(tmp_path / "nope.png"), "--out",
                          str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert res.returncode == 2 and "no such file or folder" in res.stderr, res.stderr
    assert not (tmp_path / "out").exists()
