"""gem-extract on a real Dask cluster of local processes, a real LMDB and a real Zarr store: equivalence with an
in-process loop, bad records, resume after an interruption, a worker killed mid-task, refusals."""

from __future__ import annotations

import functools
import os
import signal
import sys
from pathlib import Path

import cloudpickle
import lmdb
import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from glyphsr.data.mask_store import (
    STATUS_FAILED,
    STATUS_NO_GLYPH,
    STATUS_OK,
    MaskStore,
    StoreError,
    check_store_source,
)
from glyphsr.data.textzoom import TextZoomError, TextZoomLMDB, textzoom_resize
from glyphsr.gem.extractor import GEMConfig, GlyphExtractor
from glyphsr.pipelines import gem_extract as ge
from glyphsr.pipelines._cli import BadInput
from glyphsr.pipelines.cluster import local_cluster
from glyphsr.pipelines.gem_job import run_job
from glyphsr.pipelines.gem_store import build_meta, prepare_store
from glyphsr.pipelines.gem_task import ShardJob, run_shard
from tests.conftest import build_lmdb

ARRAYS = ("char", "line", "status", "scores", "0", "1", "labels/glyphs/0", "labels/glyphs/1", "labels/line/0",
          "labels/line/1", "done")
BAD = {5: "truncated", 17: "empty label"}  # 1-based LMDB indices
SHARD = 8


@pytest.fixture(scope="module")
def mixed_lmdb(synth_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic training split (40 records) with two records broken."""
    env = lmdb.open(str(synth_dir / "train"), readonly=True, lock=False)
    with env.begin() as txn:
        entries = {k.decode(): v for k, v in txn.cursor() if k != b"num-samples"}
    env.close()
    entries[f"image_hr-{5:09d}"] = entries[f"image_hr-{5:09d}"][:40]
    entries[f"label-{17:09d}"] = b"   "
    return build_lmdb(tmp_path_factory.mktemp("mixed") / "train", entries, "40")


def cli(*args: str):
    return CliRunner().invoke(ge.main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def extracted(mixed_lmdb: Path, tmp_path_factory: pytest.TempPathFactory):
    """One full run of the command on a local cluster of two worker processes."""
    out = tmp_path_factory.mktemp("ref") / "masks.zarr"
    res = cli("--lmdb", str(mixed_lmdb), "--out", str(out), "--shard-size", str(SHARD), "--workers", "2",
              "--dashboard", ":0")
    return out, res


def assert_same_arrays(a: Path, b: Path) -> None:
    ra, rb = zarr.open_group(a, mode="r"), zarr.open_group(b, mode="r")
    for name in ARRAYS:
        np.testing.assert_array_equal(ra[name][:], rb[name][:], err_msg=name)


def test_cli_run_matches_in_process_loop(extracted, mixed_lmdb: Path) -> None:
    out, res = extracted
    assert res.exit_code == 1, res.output  # two records failed and --skip-bad was not given
    assert "2 record(s) failed" in res.output and "LMDB index 5" in res.output and "LMDB index 17" in res.output
    store = MaskStore.open(out)
    assert store.done().all() and store.meta["complete"]
    status = store.status()
    assert (status[[4, 16]] == STATUS_FAILED).all() and (status == STATUS_OK).sum() >= 36
    assert "label" in store.reasons()[16] and store.reasons()[4]
    assert store.meta["source"]["fingerprint"] == TextZoomLMDB(mixed_lmdb).fingerprint()
    assert store.meta["segmenter"] == "classical" and store.meta["summary"]["failed"] == 2
    check_store_source(store, mixed_lmdb, config=GEMConfig().to_dict())  # what sr-train asks; device is runtime
    with pytest.raises(StoreError, match="sample count"):
        check_store_source(store, mixed_lmdb, count=12)

    # the same extractor in this process, over the readable records in one pass
    ds = TextZoomLMDB(mixed_lmdb)
    rows, imgs, labels, natives = [], [], [], []
    for i in range(1, len(ds) + 1):
        try:
            rec = ds.read_raw(i)
        except TextZoomError:
            continue
        rows.append(i - 1)
        imgs.append(textzoom_resize(rec.hr))
        labels.append(rec.label)
        natives.append(np.asarray(rec.hr))
    cfg = GEMConfig.from_dict({**store.meta["config"], "device": "cpu"})
    ref = GlyphExtractor(cfg).extract(np.stack(imgs), labels, native=natives)
    got = store.read(0, len(store))
    np.testing.assert_array_equal(got["char"][rows], ref.char)
    np.testing.assert_array_equal(got["line"][rows], ref.line)
    np.testing.assert_array_equal(got["status"][rows], ref.status)
    np.testing.assert_allclose(got["scores"][rows], ref.scores)
    np.testing.assert_array_equal(store.root["0"][rows], np.stack(imgs).transpose(0, 3, 1, 2))
    assert not got["char"][[4, 16]].any() and not store.root["0"][4].any()


def test_rerun_of_a_complete_store_runs_nothing(extracted, mixed_lmdb: Path) -> None:
    out, _ = extracted
    res = cli("--lmdb", str(mixed_lmdb), "--out", str(out), "--shard-size", str(SHARD), "--skip-bad")
    assert res.exit_code == 0, res.output
    assert "nothing to run" in res.output


def test_mismatches_refuse_before_any_cluster(extracted, mixed_lmdb: Path, synth_dir: Path, tmp_path: Path) -> None:
    out, _ = extracted
    res = cli("--lmdb", str(mixed_lmdb), "--out", str(out), "--shard-size", "16")
    assert res.exit_code == 2 and "shard size" in res.output and "--shard-size 8" in res.output
    res = cli("--lmdb", str(mixed_lmdb), "--out", str(out), "--shard-size", str(SHARD), "--coverage", "resized")
    assert res.exit_code == 2 and "coverage mode" in res.output
    res = cli("--lmdb", str(mixed_lmdb), "--out", str(out), "--shard-size", str(SHARD), "--limit", "12")
    assert res.exit_code == 2 and "sample count" in res.output
    res = cli("--lmdb", str(synth_dir / "test" / "easy"), "--out", str(out), "--shard-size", str(SHARD),
              "--limit", "40")
    assert res.exit_code == 2 and "LMDB's contents" in res.output
    # --overwrite replaces only mask stores, never an arbitrary folder
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    res = cli("--lmdb", str(mixed_lmdb), "--out", str(other), "--overwrite")
    assert res.exit_code == 2 and "not a glyphsr mask store" in res.output and (other / "keep.txt").exists()
    res = cli("--lmdb", str(tmp_path / "missing"), "--out", str(tmp_path / "x.zarr"))
    assert res.exit_code == 2 and "no such file" in res.output


def test_overwrite_replaces_a_store(extracted, mixed_lmdb: Path, tmp_path: Path) -> None:
    out, _ = extracted
    ds = TextZoomLMDB(mixed_lmdb)
    meta = build_meta(ds, 12, GEMConfig(device="auto"))
    store = prepare_store(tmp_path / "o.zarr", meta, 12, 4, overwrite=False)
    store.root["done"][0] = 1
    with pytest.raises(StoreError, match="shard size"):
        prepare_store(tmp_path / "o.zarr", meta, 12, 6, overwrite=False)
    fresh = prepare_store(tmp_path / "o.zarr", meta, 12, 6, overwrite=True)
    assert fresh.shard_size == 6 and not fresh.done().any()


def test_checkpoints_are_checked_before_any_cluster(mixed_lmdb: Path, tmp_path: Path, monkeypatch) -> None:
    out = str(tmp_path / "x.zarr")
    res = cli("--lmdb", str(mixed_lmdb), "--out", out, "--segmenter", "sam")
    assert res.exit_code == 2 and "--sam-checkpoint" in res.output
    monkeypatch.setenv("GLYPHSR_SAM_CHECKPOINT", str(tmp_path / "sam_vit_b.pth"))
    res = cli("--lmdb", str(mixed_lmdb), "--out", out, "--sam-model", "vit_b")  # auto -> sam, from the env
    assert res.exit_code == 2 and "SAM vit_b checkpoint not found" in res.output
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    monkeypatch.setenv("GLYPHSR_SAM_CHECKPOINT", str(garbage))
    res = cli("--lmdb", str(mixed_lmdb), "--out", out)
    assert res.exit_code == 2 and "cannot read SAM vit_h checkpoint" in res.output
    monkeypatch.delenv("GLYPHSR_SAM_CHECKPOINT")
    res = cli("--lmdb", str(mixed_lmdb), "--out", out, "--attention", "stt")
    assert res.exit_code == 2 and "--stt-checkpoint" in res.output
    assert not Path(out).exists()


def test_check_checkpoint_compares_keys_and_shapes(tmp_path: Path) -> None:
    import torch

    from glyphsr.recognizers.stt import STTTransformer

    model = STTTransformer()
    good = tmp_path / "stt.pth"
    torch.save({"module." + k: v for k, v in model.state_dict().items()}, good)  # DataParallel names
    ge.check_checkpoint(str(good), "STT", STTTransformer)
    state = model.state_dict()
    state.pop(next(iter(state)))
    torch.save(state, tmp_path / "short.pth")
    with pytest.raises(BadInput, match="1 missing keys"):
        ge.check_checkpoint(str(tmp_path / "short.pth"), "STT", STTTransformer)
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(BadInput, match="not a state dict"):
        ge.check_checkpoint(str(tmp_path / "list.pth"), "STT", STTTransformer)


# -- interruption and faults -------------------------------------------------------------------------------------
def _only(shards: set[int], job: ShardJob) -> dict:
    if job.shard not in shards:
        raise RuntimeError("interrupted")
    return run_shard(job)


def _die_once(marker: str, job: ShardJob) -> dict:
    """Kill this worker process the first time any task runs (the marker file remembers)."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return run_shard(job)
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need not import the tests package


def test_interrupted_then_resumed_equals_uninterrupted(extracted, mixed_lmdb: Path, tmp_path: Path) -> None:
    from distributed import Client, LocalCluster

    ref, _ = extracted
    out = tmp_path / "resumed.zarr"
    ds = TextZoomLMDB(mixed_lmdb)
    meta = build_meta(ds, len(ds), GEMConfig(device="auto"))  # what the command builds with its defaults
    store = prepare_store(out, meta, len(ds), SHARD, overwrite=False)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        part = run_job(client, store, str(mixed_lmdb), meta["config"], retries=0,
                          task=functools.partial(_only, {0, 2}))
    assert set(part.shard_errors) == {1, 3, 4} and store.done().tolist() == [1, 0, 1, 0, 0]
    # shard 1 written by a task whose completion the client never recorded; shard 3 half-written garbage
    run_shard(ShardJob(str(mixed_lmdb), str(out), 1, 8, 16, meta["config"]))
    store.root["char"][24:28] = 1
    store.root["status"][24:32] = 7
    res = cli("--lmdb", str(mixed_lmdb), "--out", str(out), "--shard-size", str(SHARD), "--workers", "1",
              "--dashboard", ":0", "--skip-bad")
    assert res.exit_code == 0, res.output
    assert "resuming" in res.output and "2 of 5 shards already done" in res.output
    assert_same_arrays(ref, out)
    assert MaskStore.open(out).reasons() == MaskStore.open(ref).reasons()


def test_killed_worker_is_retried_and_the_store_completes(extracted, mixed_lmdb: Path, tmp_path: Path) -> None:
    ref, _ = extracted
    out = tmp_path / "killed.zarr"
    ds = TextZoomLMDB(mixed_lmdb)
    meta = build_meta(ds, len(ds), GEMConfig(device="auto"))
    store = prepare_store(out, meta, len(ds), SHARD, overwrite=False)
    marker = tmp_path / "killed-once"
    from distributed import Client

    with local_cluster(2, [], ":0") as cluster, Client(cluster) as client:
        result = run_job(client, store, str(mixed_lmdb), meta["config"],
                            task=functools.partial(_die_once, str(marker)))
    # 5 tasks; every process that ran one built its extractor once (the killed one ran none)
    assert sum(p["tasks"] for p in result.processes.values()) == 5
    assert [p["extractor_builds"] for p in result.processes.values()] == [1] * len(result.processes)
    assert marker.exists()  # a worker did die
    assert not result.shard_errors and store.done().all()
    assert_same_arrays(ref, out)


# -- clusters ------------------------------------------------------------------------------------------------------
def test_gpu_cluster_pins_one_gpu_per_worker() -> None:
    """The GPU layout, started on this CPU machine with made-up ids: one single-threaded worker process per id,
    CUDA_VISIBLE_DEVICES set to it, resource GPU=1 (a task asking for it is scheduled)."""
    from distributed import Client

    with local_cluster(None, ["0", "1"], ":0") as cluster, Client(cluster) as client:
        client.wait_for_workers(2)
        env = client.run(lambda: os.environ.get("CUDA_VISIBLE_DEVICES"))
        assert sorted(env.values()) == ["0", "1"]
        info = client.scheduler_info()["workers"].values()
        assert all(w["resources"] == {"GPU": 1} and w["nthreads"] == 1 for w in info)
        pinned = client.gather([client.submit(lambda: os.environ.get("CUDA_VISIBLE_DEVICES"), resources={"GPU": 1},
                                              pure=False) for _ in range(4)])
        assert set(pinned) <= {"0", "1"}


def test_gpus_without_cuda_are_refused(mixed_lmdb: Path, tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    res = cli("--lmdb", str(mixed_lmdb), "--out", str(tmp_path / "g.zarr"), "--gpus", "0")
    assert res.exit_code == 2 and "no CUDA device is visible" in " ".join(res.output.split())
    assert not (tmp_path / "g.zarr").exists()


def test_existing_scheduler(mixed_lmdb: Path, tmp_path: Path) -> None:
    from distributed import LocalCluster

    out = tmp_path / "sched.zarr"
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        res = cli("--lmdb", str(mixed_lmdb), "--out", str(out), "--scheduler", cluster.scheduler_address,
                  "--limit", "12", "--shard-size", "4")
        assert len(cluster.scheduler.workers) == 1  # the cluster outlives the command
    assert res.exit_code == 1 and "workers at" in " ".join(res.output.split())  # record 5 is bad
    store = MaskStore.open(out)
    assert len(store) == 12 and store.done().all() and store.status()[4] == STATUS_FAILED


def test_unreachable_scheduler_is_a_clear_error(mixed_lmdb: Path, tmp_path: Path) -> None:
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        res = cli("--lmdb", str(mixed_lmdb), "--out", str(tmp_path / "u.zarr"), "--scheduler", "tcp://127.0.0.1:9")
    assert res.exit_code == 2 and "cannot connect to the Dask scheduler at tcp://127.0.0.1:9" in res.output


def test_ctrl_c_says_how_to_resume(mixed_lmdb: Path, tmp_path: Path, monkeypatch) -> None:
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ge, "_run_on_cluster", interrupted)
    res = cli("--lmdb", str(mixed_lmdb), "--out", str(tmp_path / "i.zarr"), "--shard-size", "8")
    assert res.exit_code == 130 and "0 of 5 shards are complete" in res.output and "rerun" in res.output
    assert MaskStore.open(tmp_path / "i.zarr").meta["complete"] is False


def test_stt_attention_runs_through_the_job(mixed_lmdb: Path, tmp_path: Path) -> None:
    """The paper's attention wired end to end (random STT weights: the masks mean nothing, the plumbing does)."""
    import torch
    from distributed import LocalCluster

    from glyphsr.recognizers.stt import STTTransformer

    ckpt = tmp_path / "pretrain_transformer.pth"
    torch.save({"module." + k: v for k, v in STTTransformer().state_dict().items()}, ckpt)
    out = tmp_path / "stt.zarr"
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        res = cli("--lmdb", str(mixed_lmdb), "--out", str(out), "--scheduler", cluster.scheduler_address,
                  "--attention", "stt", "--stt-checkpoint", str(ckpt), "--limit", "8", "--shard-size", "4")
    assert res.exit_code == 1, res.output  # record 5 is bad
    store = MaskStore.open(out)
    assert store.meta["attention"] == "stt" and store.meta["config"]["stt_checkpoint"] == str(ckpt.resolve())
    status = store.status()  # record 5 failed, every other one went through GEM (random weights: ok or no glyph)
    assert store.done().all() and status[4] == STATUS_FAILED
    assert set(np.delete(status, 4).tolist()) <= {STATUS_OK, STATUS_NO_GLYPH}


@pytest.mark.slow  # a real ViT-B encoder pass on the CPU: about half a minute
def test_sam_runs_through_the_job_when_a_checkpoint_is_given(mixed_lmdb: Path, tmp_path: Path, monkeypatch) -> None:
    """--segmenter auto picks SAM from GLYPHSR_SAM_CHECKPOINT (random vit_b weights: the plumbing, not the masks)."""
    import torch
    from distributed import LocalCluster
    from segment_anything import sam_model_registry

    ckpt = tmp_path / "sam_vit_b.pth"
    torch.save(sam_model_registry["vit_b"](checkpoint=None).state_dict(), ckpt)
    monkeypatch.setenv("GLYPHSR_SAM_CHECKPOINT", str(ckpt))
    out = tmp_path / "sam.zarr"
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        res = cli("--lmdb", str(mixed_lmdb), "--out", str(out), "--scheduler", cluster.scheduler_address,
                  "--sam-model", "vit_b", "--limit", "1", "--shard-size", "1")
    assert res.exit_code == 0, res.output
    store = MaskStore.open(out)
    assert store.meta["segmenter"] == "sam" and store.meta["config"]["sam_model"] == "vit_b"
    assert store.done().all() and store.status()[0] in (STATUS_OK, STATUS_NO_GLYPH)


def test_empty_lmdb_gives_an_empty_store(tmp_path: Path) -> None:
    empty = build_lmdb(tmp_path / "empty", {}, "0")
    res = cli("--lmdb", str(empty), "--out", str(tmp_path / "e.zarr"))
    assert res.exit_code == 0 and "has no records" in " ".join(res.output.split())
    store = MaskStore.open(tmp_path / "e.zarr")
    assert len(store) == 0 and store.meta["complete"] and store.meta["summary"]["images"] == 0
