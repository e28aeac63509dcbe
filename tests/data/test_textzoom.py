"""The TextZoom LMDB reader and writer on hand-built LMDBs, including every kind of bad input."""

from __future__ import annotations

import multiprocessing as mp
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from glyphsr.data.labels import str_filt
from glyphsr.data.textzoom import NotTextZoomError, TextZoomError, TextZoomLMDB, TextZoomWriter, encode_image
from tests.conftest import build_lmdb, encode, record, word_image


def test_reads_one_based_records_in_textzoom_protocol(good_lmdb: Path) -> None:
    ds = TextZoomLMDB(good_lmdb)
    assert len(ds) == 5
    s = ds[0]
    assert s.index == 1 and s.label == "Parking"  # ds[0] is LMDB record 1
    assert ds.sample(2).label == "OPEN24"
    assert s.hr.shape == (3, 32, 128) and s.lr.shape == (3, 16, 64)
    assert s.hr.dtype == np.float32 and 0.0 <= s.hr.min() and s.hr.max() <= 1.0
    with pytest.raises(IndexError, match="1-based"):
        ds.read_raw(0)
    with pytest.raises(IndexError):
        ds[5]


def test_native_sizes_formats_and_grayscale(good_lmdb: Path) -> None:
    ds = TextZoomLMDB(good_lmdb)
    r1, r2, r3 = ds.read_raw(1), ds.read_raw(2), ds.read_raw(3)
    assert r1.hr.size == (150, 40) and r1.lr.size == (70, 18)
    assert (r1.hr_format, r2.hr_format) == ("PNG", "JPEG")
    assert r3.hr.mode == "RGB"  # grayscale converted
    assert ds.sample(3).hr.shape == (3, 32, 128)


def test_bicubic_resize_matches_pil(good_lmdb: Path) -> None:
    ds = TextZoomLMDB(good_lmdb)
    raw = ds.read_raw(1)
    expected = np.asarray(raw.hr.resize((128, 32), Image.BICUBIC), np.float32).transpose(2, 0, 1) / 255
    np.testing.assert_allclose(ds.sample(1).hr, expected)


def test_long_labels_and_filters(good_lmdb: Path) -> None:
    assert TextZoomLMDB(good_lmdb).sample(4).label == "Internationalization"  # > 15 characters kept
    lower = TextZoomLMDB(good_lmdb, voc_type="lower")
    assert lower.sample(1).label == "parking"
    assert lower.sample(5).label == "a1" and lower.sample(5).label_raw == "a1!"
    assert str_filt("Café-Bar 2!", "all") == "Caf-Bar2!"
    with pytest.raises(ValueError, match="voc_type"):
        TextZoomLMDB(good_lmdb, voc_type="upper")  # type: ignore[arg-type]


def test_mask_channel_marks_dark_text(good_lmdb: Path) -> None:
    s = TextZoomLMDB(good_lmdb, with_mask=True).sample(1)
    assert s.hr.shape == (4, 32, 128) and s.lr.shape == (4, 16, 64)
    mask, gray = s.hr[3], s.hr[:3].mean(axis=0)
    assert set(np.unique(mask)) <= {0.0, 1.0}
    assert gray[mask == 1].mean() < gray[mask == 0].mean()  # text (dark) -> 1
    assert 0 < mask.mean() < 0.5


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda e: e.pop("image_lr-000000002"), "missing key image_lr-000000002"),
        (lambda e: e.pop("label-000000002"), "missing key label-000000002"),
        (lambda e: e.__setitem__("image_hr-000000002", e["image_hr-000000002"][:60]), "cannot be decoded"),
        (lambda e: e.__setitem__("image_hr-000000002", b"this is not an image"), "cannot be decoded"),
        (lambda e: e.__setitem__("image_lr-000000002", b""), "image_lr-000000002 is empty (0 bytes)"),
        (lambda e: e.__setitem__("label-000000002", b""), "label-000000002 is empty"),
        (lambda e: e.__setitem__("label-000000002", b"  "), "label-000000002 is empty"),
        (lambda e: e.__setitem__("label-000000002", b"\xff\xfeab"), "not UTF-8"),
        (lambda e: e.__setitem__("label-000000002", "ßü".encode()), "no digit, ASCII letter or punctuation"),
    ],
)
def test_bad_records_name_path_index_and_reason(tmp_path: Path, mutate, reason: str) -> None:
    entries = {}
    for i in (1, 2, 3):
        entries.update(record(i, f"word{i}", encode(word_image("w", (80, 30)), "JPEG"),
                              encode(word_image("w", (40, 15)), "PNG")))
    mutate(entries)
    path = build_lmdb(tmp_path / "bad", entries, "3")
    ds = TextZoomLMDB(path)
    assert ds.check(1) is None and ds.check(3) is None  # the others still read
    with pytest.raises(TextZoomError) as info:
        ds.read_raw(2)
    msg = str(info.value)
    assert str(path) in msg and "record 2" in msg and reason in msg
    assert info.value.index == 2 and reason in ds.check(2)


def test_num_samples_larger_than_records(tmp_path: Path) -> None:
    entries = record(1, "one", encode(word_image("one", (80, 30))), encode(word_image("one", (40, 15))))
    ds = TextZoomLMDB(build_lmdb(tmp_path / "short", entries, "3"))
    assert len(ds) == 3 and ds.check(1) is None
    assert ds.check(2) == "missing key label-000000002"
    assert ds.check(3) == "missing key label-000000003"


@pytest.mark.parametrize(
    "num, reason",
    [(None, "no 'num-samples' key"), ("many", "not an integer"), ("-4", "negative")],
)
def test_not_textzoom_lmdbs(tmp_path: Path, num, reason: str) -> None:
    path = build_lmdb(tmp_path / "x", {"something": b"else"}, num)
    with pytest.raises(NotTextZoomError, match=reason):
        TextZoomLMDB(path)


def test_missing_path_and_folder_of_lmdbs(tmp_path: Path, good_lmdb: Path) -> None:
    with pytest.raises(NotTextZoomError, match="no such file or directory") as info:
        TextZoomLMDB(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(info.value)
    with pytest.raises(NotTextZoomError, match="holds LMDBs: good"):
        TextZoomLMDB(tmp_path)
    (tmp_path / "file.txt").write_text("hello")
    with pytest.raises(NotTextZoomError, match="cannot open as LMDB"):
        TextZoomLMDB(tmp_path / "file.txt")


def _read_in_child(ds: TextZoomLMDB) -> str:
    return ds.sample(1).label


def test_reader_is_picklable_and_lazy_per_process(good_lmdb: Path) -> None:
    ds = TextZoomLMDB(good_lmdb)
    ds.sample(1)  # opened here
    clone = pickle.loads(pickle.dumps(ds))
    assert clone.sample(2).label == "OPEN24"
    for method in ("fork", "spawn"):
        with mp.get_context(method).Pool(1) as pool:
            assert pool.apply(_read_in_child, (ds,)) == "Parking"
    two = TextZoomLMDB(good_lmdb)  # a second reader of the same LMDB in one process
    assert two.sample(1).label == ds.sample(1).label


def test_fingerprint_follows_contents(tmp_path: Path, good_lmdb: Path) -> None:
    a = TextZoomLMDB(good_lmdb).fingerprint()
    assert a == TextZoomLMDB(good_lmdb).fingerprint()
    import lmdb

    env = lmdb.open(str(good_lmdb))
    with env.begin(write=True) as txn:
        txn.put(b"label-000000001", b"Parkinq")
    env.close()
    assert TextZoomLMDB(good_lmdb).fingerprint() != a


def test_writer_round_trip_and_atomicity(tmp_path: Path) -> None:
    hr = encode_image(np.asarray(word_image("Hi", (60, 30))), "PNG")
    lr = encode_image(word_image("Hi", (30, 15)), "JPEG", quality=80)
    with TextZoomWriter(tmp_path / "out") as w:
        assert w.add("Hi", hr, lr, glyph=encode_image(np.zeros((30, 60), np.uint8))) == 1
        w.add("there", hr, lr)
    ds = TextZoomLMDB(tmp_path / "out")
    assert len(ds) == 2 and ds.read_raw(1).glyph.shape == (30, 60) and ds.read_raw(2).glyph is None
    assert ds.read_raw(1).lr_format == "JPEG"
    with pytest.raises(FileExistsError):
        TextZoomWriter(tmp_path / "out")
    with pytest.raises(RuntimeError):
        with TextZoomWriter(tmp_path / "broken") as w:
            w.add("x", hr, lr)
            raise RuntimeError("interrupted")
    assert not (tmp_path / "broken").exists() and not (tmp_path / "broken.partial").exists()


def test_glyph_map_of_wrong_size_is_a_bad_record(tmp_path: Path) -> None:
    entries = record(1, "ab", encode(word_image("ab", (60, 30))), encode(word_image("ab", (30, 15))))
    entries["glyph_hr-000000001"] = encode(Image.new("L", (10, 10)))
    ds = TextZoomLMDB(build_lmdb(tmp_path / "g", entries, "1"))
    assert "glyph_hr-000000001 is 10x10, HR image is 60x30" in ds.check(1)
