"""sr-eval through its command line on the real synthetic tiers, a tiny checkpoint and the default judge (RapidOCR,
real weights): the paper's table, JSON, SR images saved and judged again, biased judges, bad input, bad records."""

from __future__ import annotations

import json
from pathlib import Path

import lmdb
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from glyphsr.pipelines import sr_eval
from glyphsr.sr.checkpoint import write_checkpoint
from glyphsr.sr.modeling import SRConfig, build_model
from glyphsr.sr.runtime import native_bf16
from glyphsr.sr.train.config import RunConfig
from tests.conftest import build_lmdb

LIMIT = 8
TIERS = ["easy", "medium", "hard"]
ROWS = ["bicubic", "model", "model_ema", "hr"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


def cli(cache: Path, *args: str):
    return CliRunner().invoke(sr_eval.main, list(args), env={"GLYPHSR_CACHE": str(cache)}, catch_exceptions=False)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny network (TPG: EasyOCR's CRNN, untrained here) with EMA weights that differ from the raw ones."""
    torch.manual_seed(0)
    cfg = RunConfig(model=SRConfig(c_sr=8, c_tp=8, n_blocks=2, n_gly=1, tpg_pretrained=False))
    model, ema = build_model(cfg.model), build_model(cfg.model)
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "best", model.state_dict(),
                            {"config": cfg.to_dict(), "step": 0}, ema_state=ema.state_dict())


@pytest.fixture(scope="module")
def first_run(synth_dir: Path, checkpoint: Path, cache: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("eval")
    res = cli(cache, "--checkpoint", str(checkpoint), "--lmdb", str(synth_dir), "--limit", str(LIMIT),
              "--json", str(out / "r.json"), "--save-sr", str(out / "sr"))
    return res, json.loads((out / "r.json").read_text()) if res.exit_code == 0 else None, out / "sr"


def table(output: str, title: str) -> dict[str, list[str]]:
    """The markdown table under ``title``: {first cell: the other cells}, the header row under "method"."""
    lines = output.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(title))
    rows = {}
    for ln in lines[start + 2:]:
        if not ln.startswith("|"):
            break
        cells = [c.strip() for c in ln.strip("|").split("|")]
        if cells[0] != "---":
            rows[cells[0]] = cells[1:]
    return rows


def test_table_json_and_saved_images(first_run) -> None:
    res, out, sr_dir = first_run
    assert res.exit_code == 0, res.output
    acc = table(res.output, "**Accuracy, judge rapidocr**")
    assert list(acc) == ["method", "bicubic", "model", "model (EMA)", "HR"]
    assert acc["method"] == TIERS + ["average"]
    assert all(len(v) == 4 and all(c.endswith("%") for c in v) for k, v in acc.items() if k != "method")
    metrics = table(res.output, "**PSNR / SSIM**")
    assert list(metrics) == ["method", "bicubic", "model", "model (EMA)", "HR"] and metrics["method"] == TIERS
    assert metrics["HR"] == ["100.00 / 1.0000"] * 3
    assert "biased" not in res.output  # rapidocr took no part in training
    vs = table(res.output, "**Against bicubic, image by image, judge rapidocr**")
    assert list(vs) == ["method", "model", "model (EMA)"] and vs["method"] == TIERS

    assert out["sets"] == dict.fromkeys(TIERS, LIMIT) and out["bad_records"] == {t: {} for t in TIERS}
    assert out["biased"] == {"rapidocr": None} and out["model_step"] == 0
    assert out["precision"] == ("bf16" if native_bf16("cpu") else "fp32")  # auto: bfloat16 where it is native
    for t in TIERS:
        assert list(out["metrics"][t]) == ROWS and list(out["accuracy"]["rapidocr"][t]) == ROWS
        assert out["metrics"][t]["hr"] == {"psnr": 100.0, "ssim": pytest.approx(1.0)}
        assert out["accuracy"]["rapidocr"][t]["hr"] >= 0.75  # the synthetic HR images read well
        for r in ROWS:
            assert len(out["readings"]["rapidocr"][t][r]) == LIMIT
            assert f"{out['accuracy']['rapidocr'][t][r] * 100:.1f}%" == acc[
                {"model_ema": "model (EMA)", "hr": "HR"}.get(r, r)][TIERS.index(t)]
        assert 5 < out["metrics"][t]["bicubic"]["psnr"] < 40 and out["metrics"][t]["model"]["psnr"] < 40
        for r, label in (("model", "model"), ("model_ema", "model (EMA)")):  # image by image against bicubic
            v = out["versus_bicubic"]["rapidocr"][t][r]
            assert v["n"] == LIMIT and 0 <= v["fixed"] + v["broken"] <= LIMIT and 0 <= v["p"] <= 1
            assert v["delta"] == pytest.approx(out["accuracy"]["rapidocr"][t][r] - out["accuracy"]["rapidocr"][t][
                "bicubic"]) == pytest.approx((v["fixed"] - v["broken"]) / LIMIT)
            assert v["ci95"][0] <= v["delta"] <= v["ci95"][1]
            assert vs[label][TIERS.index(t)].startswith(f"{v['delta'] * 100:+.1f} [")
            assert f", {v['fixed']} / {v['broken']}, p " in vs[label][TIERS.index(t)]
        assert set(out["versus_bicubic"]["rapidocr"][t]) == {"model", "model_ema"}
    assert out["metrics"]["easy"]["model"] != out["metrics"]["easy"]["model_ema"]  # EMA weights judged apart
    avg = out["average"]["rapidocr"]["bicubic"]
    a = out["accuracy"]["rapidocr"]
    assert avg == pytest.approx(sum(a[t]["bicubic"] * n for t, n in zip(TIERS, (1619, 1411, 1343))) / 4373)

    for t in TIERS:  # one PNG per record, named by its 1-based LMDB index
        files = sorted(p.name for p in (sr_dir / t).iterdir())
        assert files == [f"{i:09d}.png" for i in range(1, LIMIT + 1)]
        assert Image.open(sr_dir / t / files[0]).size == (128, 32)


def test_sr_dir_round_trip(first_run, synth_dir: Path, cache: Path, tmp_path: Path) -> None:
    """The saved SR images, judged with --sr-dir, give the model row's numbers."""
    res, out, sr_dir = first_run
    assert res.exit_code == 0, res.output
    again = cli(cache, "--sr-dir", str(sr_dir), "--lmdb", str(synth_dir), "--limit", str(LIMIT),
                "--json", str(tmp_path / "r.json"))
    assert again.exit_code == 0, again.output
    back = json.loads((tmp_path / "r.json").read_text())
    assert table(again.output, "**Accuracy, judge rapidocr**")["model"] == \
        table(res.output, "**Accuracy, judge rapidocr**")["model"]
    for t in TIERS:
        assert list(back["metrics"][t]) == ["bicubic", "model", "hr"]
        assert back["metrics"][t]["model"] == out["metrics"][t]["model"]
        assert back["accuracy"]["rapidocr"][t]["model"] == out["accuracy"]["rapidocr"][t]["model"]
        assert back["readings"]["rapidocr"][t]["model"] == out["readings"]["rapidocr"][t]["model"]
        for r in ("bicubic", "hr"):  # from the cache of the first run: the same figures
            assert back["metrics"][t][r] == out["metrics"][t][r]
            assert back["accuracy"]["rapidocr"][t][r] == out["accuracy"]["rapidocr"][t][r]


def test_easyocr_is_marked_biased_for_a_crnn_tpg(synth_dir: Path, checkpoint: Path, cache: Path,
                                                  tmp_path: Path) -> None:
    res = cli(cache, "--checkpoint", str(checkpoint), "--lmdb", str(synth_dir / "test" / "easy"), "--limit", "4",
              "--recognizer", "easyocr", "--no-ema", "--precision", "fp32", "--json", str(tmp_path / "r.json"))
    assert res.exit_code == 0, res.output
    assert ", float32" in res.output and json.loads((tmp_path / "r.json").read_text())["precision"] == "fp32"
    title = next(ln for ln in res.output.splitlines() if ln.startswith("**Accuracy, judge easyocr**"))
    assert "biased" in title and "text-prior generator" in title  # one line: nothing wraps the markdown
    assert list(table(res.output, "**Accuracy, judge easyocr**")) == ["method", "bicubic", "model", "HR"]
    assert json.loads((tmp_path / "r.json").read_text())["biased"]["easyocr"].startswith("text-prior generator")


def test_bad_input_exits_2(synth_dir: Path, checkpoint: Path, cache: Path, tmp_path: Path) -> None:
    easy = str(synth_dir / "test" / "easy")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "model.safetensors").write_bytes(b"not a safetensors file")
    other = RunConfig(model=SRConfig(c_sr=16, c_tp=8, n_blocks=2, n_gly=1, tpg_pretrained=False))
    from glyphsr.sr.checkpoint import read_weights

    mismatch = write_checkpoint(tmp_path / "mismatch", read_weights(checkpoint)[0],
                                {"config": other.to_dict(), "step": 0})
    cases = [
        (["--checkpoint", str(tmp_path / "nope"), "--lmdb", easy], ["nope", "no such folder"]),
        (["--checkpoint", str(corrupt), "--lmdb", easy], ["model.safetensors", "not a readable safetensors"]),
        (["--checkpoint", str(mismatch), "--lmdb", easy], ["does not fit"]),
        (["--checkpoint", str(checkpoint), "--lmdb", easy, "--recognizer", "rapidocr,tesseract"],
         ["unknown recognizer 'tesseract'", "rapidocr"]),
        (["--checkpoint", str(checkpoint), "--lmdb", easy, "--recognizer", "crnn"], ["crnn.pth", "--recognizer crnn:"]),
        (["--checkpoint", str(checkpoint), "--lmdb", easy, "--recognizer", f"crnn:{tmp_path / 'crnn.pth'}"],
         ["crnn.pth", "not found"]),
        (["--checkpoint", str(checkpoint), "--lmdb", str(tmp_path)], ["not a TextZoom LMDB"]),
        (["--sr-dir", str(tmp_path / "none"), "--lmdb", easy], ["--sr-dir", "no such folder"]),
        (["--sr-dir", str(tmp_path), "--checkpoint", str(checkpoint), "--lmdb", easy], ["no --checkpoint"]),
    ]
    for args, words in cases:
        res = cli(cache, *args, "--limit", "4")
        assert res.exit_code == 2, (args, res.output)
        assert "error:" in res.output and all(w in res.output for w in words), (args, res.output)
        assert "Traceback" not in res.output


def test_sr_dir_missing_or_unreadable_file_exits_2(first_run, synth_dir: Path, cache: Path, tmp_path: Path) -> None:
    _, _, sr_dir = first_run
    res = cli(cache, "--sr-dir", str(sr_dir), "--lmdb", str(synth_dir), "--limit", str(LIMIT + 1))
    assert res.exit_code == 2 and f"{LIMIT + 1:09d}.png is missing" in res.output, res.output
    single = tmp_path / "sr"
    single.mkdir()
    for i in range(1, 4):
        (single / f"{i:09d}.png").write_bytes((sr_dir / "easy" / f"{i:09d}.png").read_bytes())
    (single / f"{2:09d}.png").write_bytes(b"\x89PNG broken")
    res = cli(cache, "--sr-dir", str(single), "--lmdb", str(synth_dir / "test" / "easy"), "--limit", "3")
    assert res.exit_code == 2 and "000000002.png is not a readable image" in res.output, res.output


def test_bad_records_are_listed_and_left_out(synth_dir: Path, checkpoint: Path, cache: Path, tmp_path: Path) -> None:
    env = lmdb.open(str(synth_dir / "test" / "easy"), readonly=True, lock=False)
    with env.begin() as txn:
        entries = {k.decode(): v for k, v in txn.cursor() if k != b"num-samples"}
    env.close()
    entries[f"image_hr-{3:09d}"] = entries[f"image_hr-{3:09d}"][:40]  # truncated image
    entries[f"label-{6:09d}"] = b"   "  # empty label
    mixed = build_lmdb(tmp_path / "mixed", entries, "60")
    res = cli(cache, "--checkpoint", str(checkpoint), "--lmdb", str(mixed), "--limit", "10", "--no-ema",
              "--json", str(tmp_path / "r.json"), "--save-sr", str(tmp_path / "sr"))
    assert res.exit_code == 1, res.output
    assert "mixed: record 3 left out" in res.output and "mixed: record 6 left out" in res.output
    out = json.loads((tmp_path / "r.json").read_text())
    assert out["sets"] == {"mixed": 8} and sorted(out["bad_records"]["mixed"]) == ["3", "6"]
    assert all(len(v) == 8 for v in out["readings"]["rapidocr"]["mixed"].values())  # every row without them
    assert sorted(p.name for p in (tmp_path / "sr").iterdir()) == \
        [f"{i:09d}.png" for i in (1, 2, 4, 5, 7, 8, 9, 10)]


def test_empty_lmdb_exits_2(checkpoint: Path, cache: Path, tmp_path: Path) -> None:
    empty = build_lmdb(tmp_path / "empty", {}, "0")
    res = cli(cache, "--checkpoint", str(checkpoint), "--lmdb", str(empty))
    assert res.exit_code == 2 and "no readable records in empty" in res.output, res.output


def test_markdown_average_is_weighted_by_tier_size() -> None:
    results = {"rapidocr": {t: {"model": {"accuracy": a}} for t, a in zip(TIERS, (0.714, 0.648, 0.480))}}
    metrics = {t: {"model": {"psnr": 20.0, "ssim": 0.5}} for t in TIERS}
    md = sr_eval.markdown(results, TIERS, [("model", "model")], [("rapidocr", None)], metrics)
    assert "| model | 71.4% | 64.8% | 48.0% | 62.1% |" in md.splitlines()
    assert np.isclose(float(md.split("| model | 71.4% | 64.8% | 48.0% | ")[1][:4]), 62.1)
