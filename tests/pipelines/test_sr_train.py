"""sr-train end to end on a real LMDB and a real mask store (gem-extract's), a tiny network on the CPU: the run
folder, validation by the real judge, resume through the command line, refusals, and two processes under torchrun
(gloo)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from glyphsr.pipelines import sr_train
from glyphsr.sr.checkpoint import load_model, read_weights

TINY = ["--set", "model.c_sr=8", "--set", "model.c_tp=8", "--set", "model.n_blocks=2", "--set", "model.n_gly=1",
        "--set", "model.tpg_pretrained=false", "--set", "train.workers=1", "--set", "train.log_every=1",
        "--set", "train.warmup_steps=1", "--batch", "2", "--device", "cpu"]


def run(*args: str):
    return CliRunner().invoke(sr_train.main, list(args), catch_exceptions=False)


def test_run_folder_validation_and_checkpoints(synth_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = run("--masks", str(synth_store), "--out", str(out), "--steps", "3", "--val-limit", "6",
              "--set", "train.val_every=2", "--set", "train.ema=0.5", "--judge-threads", "1", *TINY)
    assert res.exit_code == 0, res.output
    assert "validating on the test tiers" in res.output  # the fixture's data has no val/: the user is told
    for f in ("config.yaml", "run.json", "metrics.jsonl", "summary.json", "curves.png"):
        assert (out / f).is_file(), f
    assert list((out / "tb").iterdir())
    events = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    vals = [e for e in events if e["kind"] == "val"]
    assert [e["step"] for e in vals] == [0, 2, 3] and vals[-1]["final"]
    sets = vals[-1]["results"]["sets"]
    assert set(sets) == {"easy", "medium", "hard"}  # the tiers beside the textzoom-synth training set
    for rows in sets.values():
        assert set(rows) == {"bicubic", "sr", "hr"} and rows["hr"]["n"] == 6
        assert rows["hr"]["psnr"] == 100.0 and rows["hr"]["ssim"] == pytest.approx(1.0)
    assert "ema" in vals[-1]["results"]
    vs = vals[-1]["results"]["versus_bicubic"]  # the SR row against bicubic, image by image
    assert set(vs) == {"easy", "medium", "hard"} and all(set(v) == {"sr"} and v["sr"]["n"] == 6 for v in vs.values())
    assert f"(bicubic {sets['hard']['bicubic']['accuracy'] * 100:.1f}%, +{vs['hard']['sr']['fixed']}/-" \
        f"{vs['hard']['sr']['broken']} images)" in res.output
    ema = vals[-1]["results"]["ema"]  # the EMA row against bicubic too, on the same images
    assert set(ema["versus_bicubic"]) == {"easy", "medium", "hard"}
    assert all(v["n"] == 6 and v["fixed"] + v["broken"] <= 6 for v in ema["versus_bicubic"].values())
    ev = ema["versus_bicubic"]["hard"]
    assert f"EMA: easy {ema['sets']['easy']['accuracy'] * 100:.1f}%" in res.output
    assert f"hard {ema['sets']['hard']['accuracy'] * 100:.1f}% (+{ev['fixed']}/-{ev['broken']} images)" in res.output
    assert [e["step"] for e in events if e["kind"] == "train"] == [1, 2, 3]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 3 and summary["samples_seen"] == 6 and summary["data"]["used"] == 40
    model, meta = load_model(out / "checkpoints" / "last")
    assert meta["step"] == 3 and model.config.n_blocks == 2
    assert read_weights(out / "checkpoints" / "last", "ema")[1]["step"] == 3
    assert (out / "checkpoints" / "best" / "model.safetensors").is_file()
    assert "run folder" in res.output
    assert "text-focus targets: 40 images" in res.output  # computed once before the first step, with progress


def test_short_recipe_judges_the_residual_gain_on_training_pairs(synth_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = run("--masks", str(synth_store), "--out", str(out), "--recipe", "short", "--steps", "2", "--val-limit", "4",
              "--set", "train.val_every=0", "--set", "train.calibrate_n=6", "--set", "train.calibrate_gains=[0.5, 1]",
              "--judge-threads", "1", *TINY)
    assert res.exit_code == 0, res.output
    assert "the residual gain on the first 6 training pairs" in res.output
    assert "residual gain: judging the gains 0.5, 1 on 6 training pairs" in res.output
    cal = json.loads((out / "summary.json").read_text())["result"]["calibrated"]
    assert cal["residual_gain"] in (0.5, 1.0) and cal["calibration"]["n"] == 6 and cal["calibration"]["on"] == ["train"]
    table = cal["calibration"]["table"]
    assert set(table) == {"best", "last"}  # the best checkpoint's weights and the last EMA
    assert cal["calibration"]["accuracy"] == max(a for row in table.values() for a in row.values())
    assert table[cal["calibrated_from"]["checkpoint"]][f"{cal['residual_gain']:g}"] == cal["calibration"]["accuracy"]
    assert f"chose {cal['residual_gain']:g} on the {cal['calibrated_from']['checkpoint']} weights" in res.output
    model, meta = load_model(out / "checkpoints" / "calibrated")  # what sr-eval, sr-infer and sr-export read
    assert meta["residual_gain"] == cal["residual_gain"] and model.residual
    assert 0 <= meta["validation"] <= 1  # judged on the validation images like the other checkpoints
    assert "checkpoints/calibrated" in res.output


def test_default_validation_prefers_held_out_tiers(synth_dir: Path, tmp_path: Path) -> None:
    """DIR/val/* when textzoom-synth wrote them, else DIR/test/* (TextZoom's layout), else nothing."""
    root = tmp_path / "d"
    (root / "val").mkdir(parents=True)
    (root / "test").symlink_to(synth_dir / "test")
    assert sr_train.default_val(str(root / "train")) == (
        [str(root / "test" / t) for t in ("easy", "medium", "hard")], "test")
    for t in ("easy", "medium", "hard"):
        (root / "val" / t).symlink_to(synth_dir / "test" / t)
    assert sr_train.default_val(str(root / "train")) == (
        [str(root / "val" / t) for t in ("easy", "medium", "hard")], "val")
    assert sr_train.default_val(str(tmp_path / "alone" / "train")) == ([], None)
    (root / "val" / "hard").unlink()  # a val/ without all three tiers is named, not passed over for the test tiers
    (root / "val" / "hard.partial").mkdir()
    with pytest.raises(FileNotFoundError, match=r"lacks the validation tier\(s\) hard"):
        sr_train.default_val(str(root / "train"))


@pytest.mark.parametrize("summary", ['{"result": [], "steps": 4}', '{"result": "done", "steps": 4}',
                                     '{"result": null}', '[]', '{"result": {"finished": true}}',
                                     '{"result": {"finished": true, "calibration_error": "x"}, "steps": 4}',
                                     '{"result": {"finished": false}, "steps": 4}', 'not json'])
def test_a_resume_goes_on_unless_the_summary_says_the_run_ended(summary: str, tmp_path: Path) -> None:
    from glyphsr.sr.checkpoint import write_checkpoint

    write_checkpoint(tmp_path / "checkpoints" / "last", {"w": __import__("torch").zeros(1)}, {"step": 4})
    (tmp_path / "summary.json").write_text(summary)
    sr_train._exit_if_finished(tmp_path)  # returns: the resume goes on
    for best in ("0.5", "true", "NaN"):
        (tmp_path / "summary.json").write_text(f'{{"result": {{"finished": true, "best": {best}}}, "steps": 4}}')
        with pytest.raises(SystemExit) as ended:
            sr_train._exit_if_finished(tmp_path)
        assert ended.value.code == 0


def test_stop_and_resume_from_the_command_line(synth_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = run("--masks", str(synth_store), "--out", str(out), "--steps", "4", "--stop-after", "2", "--judge", "none",
              *TINY)
    assert res.exit_code == 0, res.output
    assert read_weights(out / "checkpoints" / "last")[1]["step"] == 2
    res = run("--out", str(out), "--resume", "--batch", "4")
    assert res.exit_code == 2 and "configuration options cannot be given" in res.output
    shutil.copytree(out, tmp_path / "copy")  # stopped at step 2, for the corrupt state below
    res = run("--out", str(out), "--resume")
    assert res.exit_code == 0, res.output
    assert read_weights(out / "checkpoints" / "last")[1]["step"] == 4
    history = (out / "metrics.jsonl").read_text()
    steps = [json.loads(x)["step"] for x in history.splitlines() if json.loads(x)["kind"] == "train"]
    assert steps == [1, 2, 3, 4]
    assert '"kind": "val"' not in history  # the run's own --judge none, kept in run.json
    # a finished run has nothing to resume: said, and nothing written
    res = run("--out", str(out), "--resume")
    said = " ".join(res.output.split())
    assert res.exit_code == 0 and "the run finished at step 4" in said and "nothing to resume" in said
    assert (out / "metrics.jsonl").read_text() == history
    res = run("--out", str(out), "--resume", "--val-limit", "2")  # the run's --judge none cannot validate
    assert res.exit_code == 2 and "--judge none" in res.output and "add --judge rapidocr" in res.output
    res = run("--out", str(out), "--resume", "--init", str(out / "checkpoints" / "last"))
    assert res.exit_code == 2 and "--init starts a new run" in res.output
    res = run("--out", str(out), "--resume", "--judge", "rapidocr", "--val-limit", "2", "--judge-threads", "1")
    assert res.exit_code == 0 and "nothing to resume" not in res.output and "validation step 4" in res.output
    # an existing run is not overwritten by accident
    res = run("--masks", str(synth_store), "--out", str(out), "--steps", "1", "--judge", "none", *TINY)
    assert res.exit_code == 2 and "already holds a run" in res.output
    # a corrupt resume state is named
    (tmp_path / "copy" / "checkpoints" / "last" / "state.pt").write_bytes(b"garbage")
    res = run("--out", str(tmp_path / "copy"), "--resume")
    assert res.exit_code == 2 and "corrupt resume state" in res.output


def test_a_run_from_other_weights_says_which_in_every_checkpoint(synth_store: Path, tmp_path: Path) -> None:
    """--init: the checkpoints (and so sr-export's files and the model card) name the weights the run started from,
    with their step and their own start; a resume keeps it."""
    first = tmp_path / "first"
    assert run("--masks", str(synth_store), "--out", str(first), "--steps", "1", "--judge", "none",
               *TINY).exit_code == 0
    second = tmp_path / "second"
    res = run("--masks", str(synth_store), "--out", str(second), "--steps", "2", "--stop-after", "1", "--judge",
              "none", "--init", str(first / "checkpoints" / "last"), *TINY)
    assert res.exit_code == 0, res.output
    init = read_weights(second / "checkpoints" / "last")[1]["init"]
    assert init["name"] == str(first / "checkpoints" / "last") and init["step"] == 1 and "init" not in init
    assert init["path"] == str((first / "checkpoints" / "last").resolve()) and init["code_version"]
    assert run("--out", str(second), "--resume").exit_code == 0
    meta = read_weights(second / "checkpoints" / "last")[1]
    assert meta["step"] == 2 and meta["init"] == init
    third = tmp_path / "third"  # a chain: the start's own start comes along
    assert run("--masks", str(synth_store), "--out", str(third), "--steps", "1", "--judge", "none", "--init",
               str(second / "checkpoints" / "last"), *TINY).exit_code == 0
    chain = read_weights(third / "checkpoints" / "last")[1]["init"]
    assert chain["step"] == 2 and chain["init"] == init
    assert "init" not in read_weights(first / "checkpoints" / "last")[1]


def test_refusals(synth_store: Path, synth_dir: Path, tmp_path: Path) -> None:
    res = run("--masks", str(synth_store), "--lmdb", str(synth_dir / "test" / "easy"), "--out", str(tmp_path / "a"),
              "--judge", "none", *TINY)
    assert res.exit_code == 2 and "does not belong to" in res.output
    res = run("--masks", str(tmp_path / "nope.zarr"), "--out", str(tmp_path / "b"), *TINY)
    assert res.exit_code == 2 and "no such mask store" in res.output
    res = run("--masks", str(synth_store), "--out", str(tmp_path / "c"), "--set", "train.nope=1", *TINY)
    assert res.exit_code == 2 and "unknown keys in train" in res.output
    res = run("--masks", str(synth_store), "--out", str(tmp_path / "d"), "--batch", "64", "--judge", "none",
              *TINY[:-4], "--device", "cpu")
    assert res.exit_code == 2 and "cannot fill one batch" in res.output


def test_a_partial_val_folder_is_refused_before_the_training_set_is_decoded(
        synth_store: Path, synth_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "d"
    (root / "val").mkdir(parents=True)
    shutil.copytree(synth_dir / "train", root / "train")  # a copy: the LMDB's path is resolved, links followed
    (root / "val" / "easy").symlink_to(synth_dir / "test" / "easy")
    (root / "val" / "hard.partial").mkdir()

    def decode(*args, **kwargs):
        raise AssertionError("the training set was decoded before the validation tiers were checked")

    monkeypatch.setattr(sr_train, "load_training_data", decode)
    res = run("--masks", str(synth_store), "--lmdb", str(root / "train"), "--out", str(tmp_path / "a"), *TINY)
    assert res.exit_code == 2, res.output
    assert "lacks the validation tier(s) medium, hard" in " ".join(res.output.split())
    assert not (tmp_path / "a" / "checkpoints").exists()


def test_checkpoints_name_the_commit_the_run_started_from(
        synth_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A commit made while a run trains (the checkout's HEAD moves) is not the code the run executes."""
    import glyphsr._version as version

    head = ["a1b2c3d4e5f6"]
    monkeypatch.delenv("GLYPHSR_CODE_VERSION", raising=False)
    monkeypatch.setattr(version, "git_commit", lambda root=None: (head[0], False))
    real_load = sr_train.load_training_data

    def load_then_commit(*args, **kwargs):  # HEAD moves once the run has started
        loaded = real_load(*args, **kwargs)
        head[0] = "0f0f0f0f0f0f"
        return loaded

    monkeypatch.setattr(sr_train, "load_training_data", load_then_commit)
    version.code_version.cache_clear()
    try:
        out = tmp_path / "run"
        res = run("--masks", str(synth_store), "--out", str(out), "--steps", "2", "--judge", "none", *TINY)
        assert res.exit_code == 0, res.output
        assert head[0] == "0f0f0f0f0f0f"  # the commit did happen during the run
        assert read_weights(out / "checkpoints" / "last")[1]["code_version"] == f"{version.__version__}+ga1b2c3d4e5f6"
    finally:
        version.code_version.cache_clear()


def test_baseline2_learns_kmeans_line_maps(synth_store: Path, tmp_path: Path) -> None:
    res = run("--masks", str(synth_store), "--out", str(tmp_path / "b2"), "--steps", "1", "--judge", "none",
              "--variant", "baseline2", *TINY)
    assert res.exit_code == 0, res.output
    model, _ = load_model(tmp_path / "b2" / "checkpoints" / "last")
    assert model.gpm is not None and model.gfm is None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_processes_with_gloo(synth_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(_free_port()), "-m", "glyphsr.pipelines.sr_train", "--masks", str(synth_store),
           "--out", str(out), "--steps", "2", "--judge", "none", *TINY]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["samples_seen"] == 2 * 2 * 2  # steps x batch per process x processes
    events = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [e["step"] for e in events if e["kind"] == "train"] == [1, 2]  # logged once, by rank 0
    model, meta = load_model(out / "checkpoints" / "last")
    assert not any(k.startswith("module.") for k in model.state_dict())


def test_torchrun_with_a_time_budget_stops_every_rank_at_the_same_step(synth_store: Path, tmp_path: Path) -> None:
    # each rank's own clock would end the ranks at different steps (the one left waiting in an all-reduce) and give
    # them different learning rates; they share rank 0's clock, which moves at log points
    out = tmp_path / "ddp-minutes"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(_free_port()), "-m", "glyphsr.pipelines.sr_train", "--masks", str(synth_store),
           "--out", str(out), "--minutes", "0.04", "--judge", "none", *TINY, "--set", "train.log_every=5"]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    steps = summary["steps"]
    assert steps >= 5 and steps % 5 == 0  # the budget is looked at where the ranks share their clock
    assert summary["samples_seen"] == steps * 2 * 2


@pytest.mark.parametrize(("local", "local_world", "gpus", "plan"), [
    (0, 2, 0, ("gloo", None)), (1, 2, 0, ("gloo", None)),  # CPUs
    (0, 4, 4, ("nccl", 0)), (3, 4, 4, ("nccl", 3)), (1, 2, 8, ("nccl", 1)),  # a process per GPU
    (0, 2, 1, ("gloo", 0)), (1, 2, 1, ("gloo", 0)), (3, 4, 2, ("gloo", 1)),  # processes sharing GPUs
])
def test_dist_plan(local: int, local_world: int, gpus: int, plan: tuple) -> None:
    assert sr_train.dist_plan(local, local_world, gpus) == plan


def test_streaming_gives_the_batches_memory_gives(synth_store: Path, tmp_path: Path) -> None:
    """A set too big for memory streams from the LMDB and the store; for the same indices its batches equal the
    in-memory ones, and a run trains from it through DataLoader workers."""
    import torch

    mem, info_m = sr_train.load_training_data(str(synth_store), None, None, 1, "ok", mode="memory")
    stream, info_s = sr_train.load_training_data(str(synth_store), None, None, 1, "ok", mode="auto", budget=1000)
    assert (info_m["mode"], info_s["mode"]) == ("memory", "stream") and info_s["used"] == info_m["used"] == 40
    idx = torch.tensor([7, 0, 31, 12])
    a, b = mem.batch(idx), stream.batch(idx)
    for k in ("lr", "hr", "line", "char", "cls", "glyph_ok"):
        assert torch.equal(a[k], b[k]), k
    assert torch.equal(a["ctc"][0], b["ctc"][0]) and torch.equal(a["ctc"][1], b["ctc"][1])
    got = list(stream.batches(iter([idx, idx.flip(0)])))  # through spawned workers, in order
    assert torch.equal(got[0]["hr"], a["hr"]) and torch.equal(got[1]["hr"], a["hr"].flip(0))
    res = run("--masks", str(synth_store), "--out", str(tmp_path / "s"), "--steps", "2", "--judge", "none",
              "--set", "train.data=stream", *TINY)
    assert res.exit_code == 0, res.output
    assert "data (stream)" in res.output
    assert json.loads((tmp_path / "s" / "summary.json").read_text())["steps"] == 2


def test_overwrite_puts_the_old_run_back_when_the_new_one_does_not_start(synth_store: Path, tmp_path: Path) -> None:
    """A weight file that exists but does not load fails only when the trainer builds its loss, after every check:
    the run that was there comes back as it was."""
    out = tmp_path / "run"
    assert run("--masks", str(synth_store), "--out", str(out), "--steps", "1", "--judge", "none", *TINY).exit_code == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    (tmp_path / "junk.pth").write_bytes(b"junk")
    res = run("--masks", str(synth_store), "--out", str(out), "--steps", "1", "--judge", "none", "--overwrite",
              "--set", f"loss.crnn_weights={tmp_path / 'junk.pth'}", *TINY)
    assert res.exit_code == 2 and "not a PyTorch checkpoint" in res.output, res.output
    assert "the run that was there is back as it was" in res.output
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
