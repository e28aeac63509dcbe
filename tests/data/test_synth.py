"""The synthetic TextZoom generator: determinism, glyph truth that lines up with the label, tiers that differ."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from glyphsr.data.labels import str_filt
from glyphsr.data.synth.fonts import Font, available_fonts, split_fonts
from glyphsr.data.synth.generator import generate, make_sample, sample_rng
from glyphsr.data.synth.render import label_map, render_layers
from glyphsr.data.synth.words import sample_label
from glyphsr.data.textzoom import TextZoomLMDB


def test_fonts_come_from_packages_and_split_by_family() -> None:
    fonts = available_fonts()
    assert sum(f.source != "system" for f in fonts) >= 20
    train, test = split_fonts(fonts, seed=0)
    assert train and test
    assert not {f.family for f in train} & {f.family for f in test}
    assert split_fonts(fonts, seed=0) == (train, test)
    one = (Font("a.ttf", "Solo", "Regular", "x"),)
    assert split_fonts(one, seed=0) == (one, one)



def test_system_fonts_can_be_left_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--no-system-fonts: the font split of a seed does not depend on what the machine has installed."""
    import glyphsr.data.synth.fonts as fonts_mod

    packaged = available_fonts(system=False)
    assert packaged and all(f.source != "system" for f in packaged)
    src = next(f for f in packaged if Path(f.path).suffix.lower() == ".ttf")
    (tmp_path / "fonts").mkdir()
    (tmp_path / "fonts" / "ZzInstalledHere.ttf").write_bytes(Path(src.path).read_bytes())
    monkeypatch.setattr(fonts_mod, "SYSTEM_FONT_DIRS", (str(tmp_path / "fonts"),))
    available_fonts.cache_clear()
    try:
        with_system = available_fonts(system=True)
        assert any(f.source == "system" and Path(f.path).name == "ZzInstalledHere.ttf" for f in with_system)
        assert available_fonts(system=False) == packaged == available_fonts(False)
        assert len(with_system) == len(packaged) + 1
    finally:
        available_fonts.cache_clear()

def test_labels_look_like_scene_text() -> None:
    rng = np.random.default_rng(0)
    labels = [sample_label(rng) for _ in range(2000)]
    assert all(label and " " not in label and str_filt(label, "all") == label for label in labels)
    lengths = np.array([len(x) for x in labels])
    assert 4 <= np.median(lengths) <= 8 and lengths.max() > 15
    assert any(x.islower() for x in labels) and any(x.isupper() for x in labels)
    assert any(x[:1].isupper() and x[1:].islower() for x in labels)
    assert any(x.isdigit() for x in labels) and any(not x.isalnum() for x in labels)


def test_render_layers_put_each_character_in_order() -> None:
    font = next(f for f in available_fonts() if "Regular" in f.style or f.style == "Book")
    layers = render_layers("HIT", font.path, 40)
    lab = label_map(layers)
    assert set(np.unique(lab)) == {0, 1, 2, 3}
    centers = [np.nonzero(lab == k)[1].mean() for k in (1, 2, 3)]
    assert centers[0] < centers[1] < centers[2]


def test_generation_is_deterministic_for_a_seed(tmp_path: Path, synth_dir: Path) -> None:
    generate(tmp_path / "again", n_train=40, n_test=60, seed=3, workers=1)  # 1 process vs 2 in the fixture
    for split in ("train", "test/easy", "test/hard"):
        assert TextZoomLMDB(tmp_path / "again" / split).fingerprint() == TextZoomLMDB(
            synth_dir / split).fingerprint()
    generate(tmp_path / "other", n_train=40, n_test=0, seed=4, workers=1)
    assert TextZoomLMDB(tmp_path / "other" / "train").fingerprint() != TextZoomLMDB(
        synth_dir / "train").fingerprint()
    with pytest.raises(FileExistsError):
        generate(tmp_path / "other", n_train=1, n_test=0, seed=4)


def test_validation_tiers_are_held_out_and_leave_the_other_splits_alone(tmp_path: Path, synth_dir: Path) -> None:
    """n_val adds OUT/val/{easy,medium,hard} from their own streams: train and test are the same pairs as without
    them, and no validation pair is a test pair."""
    out = tmp_path / "v"
    manifest = generate(out, n_train=40, n_test=60, seed=3, workers=2, n_val=8)
    assert manifest["counts"] == {"train": 40, "easy": 60, "medium": 60, "hard": 60, "val-easy": 8,
                                  "val-medium": 8, "val-hard": 8}
    for split in ("train", "test/easy", "test/medium", "test/hard"):
        assert TextZoomLMDB(out / split).fingerprint() == TextZoomLMDB(synth_dir / split).fingerprint()
    for tier in ("easy", "medium", "hard"):
        val, test = TextZoomLMDB(out / "val" / tier), TextZoomLMDB(synth_dir / "test" / tier)
        assert len(val) == 8 and all(val.check(i) is None for i in range(1, 9))
        test_pairs = {(test.read_raw(i).label, test.read_raw(i).lr.tobytes()) for i in range(1, 61)}
        assert not {(val.read_raw(i).label, val.read_raw(i).lr.tobytes()) for i in range(1, 9)} & test_pairs
    # the validation tiers' LR images are degraded like their test tier's: hard is blurrier than easy
    sharp = {t: np.mean([np.abs(np.diff(np.asarray(TextZoomLMDB(out / "val" / t).read_raw(i).lr.convert("L"),
                                                   np.float32), axis=1)).mean() for i in range(1, 9)])
             for t in ("easy", "hard")}
    assert sharp["easy"] > sharp["hard"]
    with pytest.raises(FileExistsError, match="val"):  # data made again without them: the old ones are named
        generate(out, n_train=0, n_test=0, seed=3, workers=1)
    generate(out, n_train=0, n_test=0, seed=3, workers=1, overwrite=True)  # overwrite: they go with their data
    assert not (out / "val").exists() and "val-easy" not in json.loads((out / "synth.json").read_text())["counts"]
    with pytest.raises(ValueError, match="val=-1"):
        generate(out, n_train=0, n_test=0, n_val=-1)


def test_layout_manifest_and_records(synth_dir: Path) -> None:
    manifest = json.loads((synth_dir / "synth.json").read_text())
    assert manifest["counts"] == {"train": 40, "easy": 60, "medium": 60, "hard": 60}
    assert not set(manifest["fonts"]["train"]) & set(manifest["fonts"]["test"])
    for split, n in (("train", 40), ("test/easy", 60), ("test/medium", 60), ("test/hard", 60)):
        ds = TextZoomLMDB(synth_dir / split)
        assert len(ds) == n and all(ds.check(i) is None for i in range(1, n + 1))
    heights = {TextZoomLMDB(synth_dir / "train").read_raw(i).hr.size[1] for i in range(1, 41)}
    assert len(heights) > 10  # native sizes vary, as in TextZoom


def test_glyph_map_lines_up_with_label(synth_dir: Path) -> None:
    ds = TextZoomLMDB(synth_dir / "test" / "easy")
    complete, ordered = 0, 0
    for i in range(1, len(ds) + 1):
        rec = ds.read_raw(i)
        g = rec.glyph
        assert g.shape == (rec.hr.size[1], rec.hr.size[0])
        present = set(np.unique(g)) - {0}
        assert present <= set(range(1, len(rec.label) + 1))
        complete += present == set(range(1, len(rec.label) + 1))
        xs = [np.nonzero(g == k)[1].mean() for k in sorted(present)]
        ordered += all(a < b for a, b in zip(xs, xs[1:]))
        # glyph pixels are the text: their colour differs from the rest of the image
        hr = np.asarray(rec.hr, np.float32)
        assert np.linalg.norm(hr[g > 0].mean(axis=0) - hr[g == 0].mean(axis=0)) > 40
    assert complete >= 0.9 * len(ds) and ordered >= 0.95 * len(ds)


def _psnr_bicubic(hr: np.ndarray, lr_jpeg: bytes) -> float:
    """PSNR of the bicubic-upsampled LR against HR, both read by the TextZoom protocol."""
    hr32 = np.asarray(Image.fromarray(hr).resize((128, 32), Image.BICUBIC), np.float32) / 255
    lr = Image.open(io.BytesIO(lr_jpeg)).convert("RGB").resize((64, 16), Image.BICUBIC)
    up = np.asarray(lr.resize((128, 32), Image.BICUBIC), np.float32) / 255
    return float(10 * np.log10(1 / np.mean((up - hr32) ** 2)))


def test_tiers_differ_in_difficulty() -> None:
    """Paired samples: the same random stream in each tier gives the same word, font and scene, degraded at the
    tier's severity, so the tiers' PSNRs compare the degradations alone."""
    fonts = split_fonts(available_fonts(), 0)[1]
    psnr = {t: [] for t in ("easy", "medium", "hard")}
    for i in range(80):
        for tier in psnr:
            s = make_sample(sample_rng(11, "easy", i), fonts, tier)
            psnr[tier].append(_psnr_bicubic(s.hr, s.lr))
    mean = {t: np.mean(v) for t, v in psnr.items()}
    assert mean["easy"] > mean["medium"] > mean["hard"]
    assert np.mean(np.array(psnr["easy"]) > np.array(psnr["hard"])) > 0.8


@pytest.mark.slow
def test_tiers_differ_for_an_independent_recognizer(synth_dir: Path) -> None:
    from glyphsr.recognizers.rapidocr import RapidOCRRecognizer

    judge = RapidOCRRecognizer()
    acc = {}
    for tier in ("easy", "hard"):
        ds = TextZoomLMDB(synth_dir / "test" / tier)
        recs = [ds.read_raw(i) for i in range(1, len(ds) + 1)]
        hr = judge.recognize([np.asarray(r.hr.resize((128, 32), Image.BICUBIC)) for r in recs])
        lr = judge.recognize([np.asarray(r.lr.resize((64, 16), Image.BICUBIC).resize((128, 32), Image.BICUBIC))
                              for r in recs])
        truth = [str_filt(r.label, "lower") for r in recs]
        acc[tier] = tuple(np.mean([str_filt(p, "lower") == t for p, t in zip(preds, truth)]) for preds in (hr, lr))
    assert acc["easy"][0] >= 0.85 and acc["hard"][0] >= 0.85  # HR is readable in every tier
    assert acc["easy"][1] > acc["hard"][1] + 0.1


def test_sample_depends_only_on_seed_split_index() -> None:
    fonts = available_fonts()
    a = make_sample(sample_rng(7, "hard", 12), fonts, "hard")
    b = make_sample(sample_rng(7, "hard", 12), fonts, "hard")
    assert a.label == b.label and np.array_equal(a.hr, b.hr) and a.lr == b.lr
    lr = np.asarray(Image.open(io.BytesIO(a.lr)))
    assert lr.shape[0] < a.hr.shape[0]  # the wide shot has fewer pixels


def test_font_order_does_not_depend_on_where_python_is_installed() -> None:
    """Same seed, same bytes on any machine: the fonts' order ignores the site-packages location."""
    from glyphsr.data.synth.fonts import Font, _order

    def fonts(prefix: str) -> list[Font]:
        return [Font(f"{prefix}/lib/python3.11/site-packages/font_lato/files/Lato-Bold.ttf", "Lato", "Bold",
                     "font_lato"),
                Font("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "DejaVu Sans", "Book", "system"),
                Font(f"{prefix}/lib/python3.11/site-packages/font_caladea/Caladea-Regular.ttf", "Caladea", "Regular",
                     "font_caladea")]

    orders = [[f.family for f in sorted(fonts(p), key=_order)] for p in ("/tmp/ci/.venv", "/work/main/.venv", "/opt")]
    assert orders[0] == orders[1] == orders[2] == ["DejaVu Sans", "Caladea", "Lato"]
