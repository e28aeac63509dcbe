"""The mask store: layout, OME-NGFF 0.5 metadata (validated by ome-zarr-models and read by ome-zarr), label
levels, atomic creation, the reader's errors and the check that a store belongs to an LMDB."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr

from glyphsr.data.mask_store import (
    MaskStore,
    StoreError,
    create_store,
    halve_images,
    is_mask_store,
    label_levels,
    n_shards,
    write_shard,
)
from tests.conftest import build_lmdb


def _fill(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    char = np.zeros((n, 15, 32, 128), np.uint8)
    for i in range(n):
        for k in range(3):
            char[i, k, 8:24, 10 + 30 * k:30 + 30 * k] = 1
    return {"hr": rng.integers(0, 256, (n, 32, 128, 3), dtype=np.uint8), "char": char,
            "line": char.any(axis=1, keepdims=True).astype(np.uint8), "status": np.ones(n, np.uint8),
            "scores": rng.random((n, 15)).astype(np.float32)}


def test_create_write_read_round_trip(tmp_path: Path) -> None:
    out = tmp_path / "m.zarr"
    create_store(out, 10, 4, {"source": {"path": "x", "count": 10}})
    assert is_mask_store(out) and not list(tmp_path.glob(".m.zarr.creating-*"))
    root = zarr.open_group(out, mode="r+")
    assert root["char"].shards == (4, 15, 32, 128) and root["char"].chunks == (4, 15, 32, 128)  # gcd(16, 4)
    assert root["done"].shape == (n_shards(10, 4),) == (3,)
    data = _fill(4)
    write_shard(root, 4, **data)
    store = MaskStore.open(out)
    got = store.read(4, 8)
    np.testing.assert_array_equal(got["char"], data["char"])
    np.testing.assert_array_equal(got["scores"], data["scores"])
    assert (store.status() == [0, 0, 0, 0, 1, 1, 1, 1, 0, 0]).all()  # the rest still pending
    np.testing.assert_array_equal(store.root["0"][4:8], data["hr"].transpose(0, 3, 1, 2))
    lab = store.root["labels/glyphs/0"][4:8, 0]
    assert set(np.unique(lab)) == {0, 1, 2, 3} and (lab[:, 16, 15] == 1).all() and (lab[:, 16, 75] == 3).all()
    assert store.meta["source"]["count"] == 10 and store.meta["shard_size"] == 4


def test_label_levels_and_halving_known_answers() -> None:
    char = np.zeros((1, 15, 32, 128), np.uint8)
    char[0, 0, 0:2, 0:2] = 1  # a full 2x2 block -> text at level 1
    char[0, 1, 0:1, 4:6] = 1  # half a block: coverage 0.5 -> text (>= half)
    char[0, 2, 0:1, 8:9] = 1  # a quarter block -> background
    line = char.any(axis=1, keepdims=True).astype(np.uint8)
    lv = label_levels(char, line)
    assert lv["labels/glyphs/0"][0, 0, 0, 0] == 1 and lv["labels/glyphs/0"][0, 0, 0, 8] == 3
    assert lv["labels/glyphs/1"][0, 0, 0, :5].tolist() == [1, 0, 2, 0, 0]
    assert lv["labels/line/1"][0, 0, 0, :5].tolist() == [1, 0, 1, 0, 0]
    hr = np.zeros((1, 3, 32, 128), np.uint8)
    hr[0, :, 0, 0], hr[0, :, 0, 1], hr[0, :, 1, 0] = 255, 255, 1
    assert halve_images(hr)[0, 0, 0, 0] == 128  # (255 + 255 + 1 + 0) / 4 = 127.75


def test_ome_metadata_is_valid_ngff_05(tmp_path: Path) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader
    from ome_zarr_models.v05 import Image, ImageLabel, Labels

    out = tmp_path / "m.zarr"
    create_store(out, 6, 4, {})
    root = zarr.open_group(out, mode="r")
    img = Image.from_zarr(root)
    axes = [a.name for a in img.attributes.ome.multiscales[0].axes]
    assert axes == ["t", "c", "y", "x"]
    ImageLabel.from_zarr(root["labels/glyphs"])
    ImageLabel.from_zarr(root["labels/line"])
    assert Labels.from_zarr(root["labels"]).attributes.ome.labels == ["glyphs", "line"]
    nodes = list(Reader(parse_url(str(out)))())
    shapes = {nd.zarr.basename(): [tuple(d.shape) for d in nd.data] for nd in nodes if nd.data}
    assert shapes["m.zarr"] == [(6, 3, 32, 128), (6, 3, 16, 64)]
    assert shapes["glyphs"] == [(6, 1, 32, 128), (6, 1, 16, 64)]
    # the validator is not a formality: the same store with axes that do not match its arrays is refused
    meta = json.loads((out / "zarr.json").read_text())
    meta["attributes"]["ome"]["multiscales"][0]["axes"] = meta["attributes"]["ome"]["multiscales"][0]["axes"][1:]
    (out / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="axes"):  # pydantic's ValidationError
        Image.from_zarr(zarr.open_group(out, mode="r"))


def test_open_errors_and_refusals(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no such mask store"):
        MaskStore.open(tmp_path / "nope.zarr")
    plain = zarr.open_group(tmp_path / "plain.zarr", mode="w")
    plain.attrs["x"] = 1
    assert not is_mask_store(tmp_path / "plain.zarr")
    with pytest.raises(StoreError, match="not a glyphsr mask store"):
        MaskStore.open(tmp_path / "plain.zarr")
    create_store(tmp_path / "m.zarr", 3, 2, {})
    with pytest.raises(FileExistsError):
        create_store(tmp_path / "m.zarr", 3, 2, {})
    with pytest.raises(ValueError, match="shard size"):
        create_store(tmp_path / "z.zarr", 3, 0, {})
    assert not (tmp_path / "z.zarr").exists() and not list(tmp_path.glob(".z.zarr*"))
    root = zarr.open_group(tmp_path / "m.zarr", mode="r+")
    meta = dict(root.attrs["glyphsr"])
    meta["schema_version"] = 99
    root.attrs["glyphsr"] = meta
    with pytest.raises(StoreError, match="schema 99"):
        MaskStore.open(tmp_path / "m.zarr")


def test_empty_store(tmp_path: Path) -> None:
    create_store(tmp_path / "e.zarr", 0, 8, {})
    store = MaskStore.open(tmp_path / "e.zarr")
    assert len(store) == 0 and store.done().size == 0


def test_check_store_source_names_what_differs(good_lmdb: Path, tmp_path: Path) -> None:
    """What sr-train asks of a store before training: same LMDB contents, every record, the GEM configuration."""
    from glyphsr.data.mask_store import check_store_source
    from glyphsr.data.textzoom import TextZoomLMDB

    ds = TextZoomLMDB(good_lmdb)
    cfg = {"segmenter": "classical", "tau": 0.8, "device": "cpu", "batch_size": 64}
    source = {"path": str(good_lmdb), "num_samples": 5, "count": 5, "fingerprint": ds.fingerprint()}
    create_store(tmp_path / "m.zarr", 5, 4, {"source": source, "config": cfg})
    store = MaskStore.open(tmp_path / "m.zarr")
    check_store_source(store, good_lmdb)
    check_store_source(store, ds, config={**cfg, "device": "cuda", "batch_size": 8})  # runtime keys do not count
    with pytest.raises(StoreError, match=r"the GEM configuration \(keys: tau\) differ"):
        check_store_source(store, good_lmdb, config={**cfg, "tau": 0.5})
    with pytest.raises(StoreError, match=r"the sample count \(store: 5, expected: 3\) differ"):
        check_store_source(store, good_lmdb, count=3)
    other = build_lmdb(tmp_path / "other", {}, "5")
    with pytest.raises(StoreError) as err:
        check_store_source(store, other)
    msg = str(err.value)
    assert "does not belong to" in msg and "the LMDB's contents" in msg and "sample count" not in msg
    assert f"made from {good_lmdb}" in msg and f"gem-extract --lmdb {other}" in msg
