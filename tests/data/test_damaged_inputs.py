"""Damaged inputs give one clear error, exit status 2 from the programs, never a crash: a truncated LMDB (a partial
copy: lmdb maps the file, and a page past its end is a SIGBUS), corrupted LMDB pages, an LMDB whose
``num-samples`` is far above the keys it holds, and a mask store with an array missing or unreadable.

Whatever could SIGBUS runs in a child process, so a regression fails the test instead of killing pytest."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import lmdb
import numpy as np
import pytest
import zarr
from click.testing import CliRunner
from PIL import Image

from glyphsr.data.decode import decode_lmdb
from glyphsr.data.mask_store import MaskStore, StoreError, create_store
from glyphsr.data.textzoom import NotTextZoomError, TextZoomLMDB
from glyphsr.pipelines import textzoom_info, view_store
from tests.conftest import build_lmdb, encode, record

ROOT = Path(__file__).resolve().parents[2]
N = 6
P_OVERFLOW = 0x04  # LMDB page flag: a page holding a value too big for a leaf


@pytest.fixture
def noisy_lmdb(tmp_path: Path) -> Path:
    """Six records of noise images (incompressible, so the file spans dozens of pages, most of them overflow)."""
    rng = np.random.default_rng(0)
    entries: dict[str, bytes] = {}
    for i in range(1, N + 1):
        hr = Image.fromarray(rng.integers(0, 256, (32, 128, 3), np.uint8))
        lr = Image.fromarray(rng.integers(0, 256, (16, 64, 3), np.uint8))
        entries.update(record(i, f"word{i}", encode(hr), encode(lr)))
    return build_lmdb(tmp_path / "lmdb", entries, str(N))


def _copy(src: Path, dst: Path, size: int | None = None) -> Path:
    shutil.copytree(src, dst)
    if size is not None:
        os.truncate(dst / "data.mdb", size)
    return dst


def _child(code: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


READ_ALL = """
import sys
from glyphsr.data.decode import decode_lmdb
from glyphsr.data.textzoom import NotTextZoomError, TextZoomLMDB
for read in (lambda p: [TextZoomLMDB(p).read_raw(i) for i in range(1, 7)], lambda p: decode_lmdb(p, workers=1)):
    try:
        read(sys.argv[1])
        print("read")
    except NotTextZoomError as exc:
        print(exc)
"""


@pytest.mark.parametrize("fraction", [0.9, 0.7, 0.5, 1 / 3])
def test_truncated_lmdb_is_refused_before_any_read(noisy_lmdb: Path, tmp_path: Path, fraction: float) -> None:
    full = (noisy_lmdb / "data.mdb").stat().st_size
    size = int(full * fraction)
    path = _copy(noisy_lmdb, tmp_path / "partial", size)
    res = _child(READ_ALL, str(path))
    assert res.returncode == 0, f"status {res.returncode} (-7 is SIGBUS): {res.stderr[-2000:]}"
    lines = res.stdout.splitlines()
    assert len(lines) == 2, res.stdout
    want = f"{path}: data.mdb is truncated ({size:,} of {full:,} bytes): a partial copy? Copy the LMDB again"
    assert lines == [want, want]  # the reader and decode_lmdb alike


def test_textzoom_info_exits_2_on_a_truncated_lmdb(noisy_lmdb: Path, tmp_path: Path) -> None:
    path = _copy(noisy_lmdb, tmp_path / "partial", int((noisy_lmdb / "data.mdb").stat().st_size * 0.9))
    cmd = [sys.executable, "-m", "glyphsr.pipelines.textzoom_info", str(path), "--json"]
    res = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 2, f"status {res.returncode} (-7 is SIGBUS): {res.stderr[-2000:]}"
    assert "data.mdb is truncated" in json.loads(res.stdout)["error"]
    assert "data.mdb is truncated" in res.stderr and "Traceback" not in res.stderr


SWEEP = """
import sys
from pathlib import Path
from glyphsr.data.textzoom import NotTextZoomError, TextZoomLMDB
src, dst = Path(sys.argv[1]).read_bytes(), Path(sys.argv[2])
for size in range(0, len(src), int(sys.argv[3])):
    (dst / "data.mdb").write_bytes(src[:size])
    try:
        TextZoomLMDB(dst).close()
        print(size, "opened")
    except NotTextZoomError as exc:
        print(size, exc.reason.split(" (")[0].split(":")[0])
"""


def test_the_size_check_cannot_sigbus_at_any_length(noisy_lmdb: Path, tmp_path: Path) -> None:
    """info() and stat() read the meta pages, which lmdb.open has read already: every prefix of the file is refused
    cleanly, as not an LMDB (too short for both meta pages) or as truncated."""
    dst = tmp_path / "prefix"
    dst.mkdir()
    res = _child(SWEEP, str(noisy_lmdb / "data.mdb"), str(dst), "211")
    assert res.returncode == 0, f"status {res.returncode} (-7 is SIGBUS): {res.stderr[-2000:]}"
    kinds = {line.split(" ", 1)[1] for line in res.stdout.splitlines()}
    assert kinds == {"cannot open as LMDB", "data.mdb is truncated"}, kinds


def _corrupt_overflow_pages(path: Path) -> None:
    """Overwrite the header of every overflow page (the images): the leaf with num-samples and the labels stays."""
    env = lmdb.open(str(path), readonly=True, lock=False)
    psize = env.stat()["psize"]
    env.close()
    data = bytearray((path / "data.mdb").read_bytes())
    hit = 0
    for off in range(2 * psize, len(data), psize):  # pages 0 and 1 are the meta pages
        if int.from_bytes(data[off + 10:off + 12], "little") & P_OVERFLOW:
            data[off:off + 16] = b"\xa5" * 16
            hit += 1
    assert hit >= N
    (path / "data.mdb").write_bytes(bytes(data))


def test_corrupted_pages_are_one_error_not_bad_records(noisy_lmdb: Path, tmp_path: Path) -> None:
    path = _copy(noisy_lmdb, tmp_path / "corrupt")
    _corrupt_overflow_pages(path)
    ds = TextZoomLMDB(path)  # num-samples still reads
    assert len(ds) == N
    for call in (ds.read_raw, ds.check, ds.inspect):
        with pytest.raises(NotTextZoomError, match=r"data\.mdb is damaged \(CorruptedError: .*copy the LMDB again"):
            call(1)
    with pytest.raises(NotTextZoomError, match="data.mdb is damaged"):
        decode_lmdb(path, workers=1)
    res = CliRunner().invoke(textzoom_info.main, [str(path)])
    assert res.exit_code == 2 and "data.mdb is damaged" in res.output and "record 1" not in res.output


def test_gem_extract_shard_fails_on_a_damaged_lmdb(noisy_lmdb: Path, tmp_path: Path) -> None:
    """A damaged file fails the shard with its message (gem-extract lists it and a rerun retries it), instead of
    marking every record of the shard failed in the store."""
    from glyphsr.pipelines.gem_task import ShardJob, run_shard

    path = _copy(noisy_lmdb, tmp_path / "corrupt")
    _corrupt_overflow_pages(path)
    with pytest.raises(NotTextZoomError, match=r"data\.mdb is damaged"):
        run_shard(ShardJob(str(path), str(tmp_path / "never-written.zarr"), 0, 0, N, {}))
    assert not (tmp_path / "never-written.zarr").exists()


def test_num_samples_far_above_the_keys_is_said_once(tmp_path: Path) -> None:
    path = build_lmdb(tmp_path / "hollow", {}, "300000")
    ds = TextZoomLMDB(path)
    assert len(ds) == 300_000  # opens: len and fingerprint still answer
    msg = "'num-samples' is 300,000 but the LMDB holds only 0 other keys"
    with pytest.raises(NotTextZoomError, match=msg):
        ds.read_raw(1)
    with pytest.raises(NotTextZoomError, match=msg):
        decode_lmdb(path, workers=1)
    res = CliRunner().invoke(textzoom_info.main, [str(path), "--json"])
    assert res.exit_code == 2
    assert msg in json.loads(res.stdout)["error"] and "missing key" not in res.output


# -- the mask store -----------------------------------------------------------------------------------------------
def _damage_store(path: Path, how: str) -> None:
    if how == "no status":
        shutil.rmtree(path / "status")
    elif how == "status metadata truncated":
        meta = path / "status" / "zarr.json"
        os.truncate(meta, meta.stat().st_size // 2)
    elif how == "no labels":
        shutil.rmtree(path / "labels" / "line")
    elif how == "scores of another length":
        root = zarr.open_group(path, mode="r+")
        root.create_array("scores", shape=(3, 15), dtype="float32", overwrite=True)
    elif how == "root metadata truncated":
        os.truncate(path / "zarr.json", 100)


@pytest.mark.parametrize("how, what", [
    ("no status", "array 'status' is missing"),
    ("status metadata truncated", "status/zarr.json cannot be read (JSONDecodeError"),
    ("no labels", "array 'labels/line/0' is missing"),
    ("scores of another length", "array 'scores' has 3 rows, expected 5"),
    ("root metadata truncated", "zarr.json cannot be read (JSONDecodeError"),
])
def test_damaged_mask_store_names_what_is_wrong(tmp_path: Path, how: str, what: str) -> None:
    path = tmp_path / "m.zarr"
    create_store(path, 5, 4, {"source": {"path": "x", "count": 5}})
    MaskStore.open(path)  # intact, it opens
    _damage_store(path, how)
    with pytest.raises(StoreError) as err:
        MaskStore.open(path)
    msg = str(err.value)
    assert msg.startswith(f"{path} is damaged: ") and what in msg and "run gem-extract again into a new store" in msg
    res = CliRunner().invoke(view_store.main, [str(path)])
    assert res.exit_code == 2 and "is damaged" in res.output


def test_sr_train_exits_2_on_a_damaged_store(tmp_path: Path) -> None:
    from glyphsr.pipelines import sr_train

    path = tmp_path / "m.zarr"
    create_store(path, 5, 4, {"source": {"path": "x", "count": 5}, "complete": True})  # past the incomplete check
    _damage_store(path, "no status")
    res = CliRunner().invoke(sr_train.main, ["--masks", str(path), "--out", str(tmp_path / "run")])
    assert res.exit_code == 2 and "array 'status' is missing" in res.output
