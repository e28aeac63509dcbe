"""GlyphExtractor end to end with the real pretrained CRNN and the classical segmenter."""

from __future__ import annotations

import numpy as np
import pytest

from glyphsr.data.mask_store import STATUS_NO_GLYPH, STATUS_OK
from glyphsr.gem.extractor import GEMConfig, GlyphExtractor
from glyphsr.gem.segmenters.classical import ClassicalSegmenter
from tests.gem.conftest import render_word


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.mark.parametrize("word", ["HT", "ok"])
def test_two_separated_glyphs_give_two_masks(extractor: GlyphExtractor, word: str) -> None:
    img, truth = render_word(word, size=24, spacing=10, x0=30)
    res = extractor.extract(img[None], [word])
    assert res.status[0] == STATUS_OK and res.chars == [word]
    assert res.char.shape == (1, 15, 32, 128) and res.line.shape == (1, 1, 32, 128)
    for k in range(2):
        assert _iou(res.char[0, k] > 0, truth == k + 1) > 0.9, k
    assert not res.char[0, 2:].any()
    assert _iou(res.line[0, 0] > 0, truth > 0) > 0.9
    assert (res.scores[0, :2] > 0).all() and (res.scores[0, 2:] == 0).all()
    kp = res.keypoints[0, :2]  # both key points of each character lie on or next to its glyph
    for k in range(2):
        ys, xs = np.nonzero(truth == k + 1)
        for x, y in kp[k]:
            assert xs.min() - 3 <= x <= xs.max() + 3 and ys.min() - 3 <= y <= ys.max() + 3


def test_touching_word_is_split_per_character(extractor: GlyphExtractor) -> None:
    img, truth = render_word("Parking", size=22)
    res = extractor.extract(img[None], ["Parking"])
    ious = [_iou(res.char[0, k] > 0, truth == k + 1) for k in range(7)]
    assert np.mean(ious) > 0.75 and min(ious) > 0.3, ious


def test_bad_inputs_give_defined_results(extractor: GlyphExtractor) -> None:
    img, _ = render_word("word")
    blank = np.full((32, 128, 3), 200, np.uint8)
    long = "abcdefghijklmnopqrst"
    res = extractor.extract(np.stack([img, img, blank, img]), ["", "  ", "word", long])
    assert res.status[0] == STATUS_NO_GLYPH and "empty label" in res.reasons[0]
    assert res.status[1] == STATUS_NO_GLYPH
    assert res.status[2] == STATUS_NO_GLYPH and "no candidate" in res.reasons[2]  # all background
    assert not res.char[:3].any()
    assert res.chars[3] == long[:15] and "20 characters" in res.reasons[3]
    assert res.char.shape[1] == 15
    empty = extractor.extract(np.zeros((0, 32, 128, 3), np.uint8), [])
    assert empty.char.shape == (0, 15, 32, 128)
    with pytest.raises(ValueError, match="uint8 \\(B, 32, 128, 3\\)"):
        extractor.extract(np.zeros((1, 16, 64, 3), np.uint8), ["x"])
    with pytest.raises(ValueError, match="labels"):
        extractor.extract(img[None], [])


def test_character_outside_the_charset_is_aligned_as_a_wildcard(extractor: GlyphExtractor) -> None:
    img, _ = render_word("aXb", size=24, spacing=8, x0=20)
    att = extractor.attention(img[None], ["a\u00e9b"])  # é is not in english_g2's charset
    assert att.valid[0, :3].all() and att.reasons[0] is None
    assert att.peak_x[0, 0] < att.peak_x[0, 1] < att.peak_x[0, 2]


class _Pessimist(ClassicalSegmenter):
    """A segmenter with a calibrated confidence that never trusts itself."""

    calibrated_confidence = True

    def segment(self, images, points, alpha=None):
        out = super().segment(images, points, alpha)
        for c in out:
            c.scores[:] = 0.1
        return out


def test_no_candidate_above_tau_is_reported(extractor: GlyphExtractor) -> None:
    img, truth = render_word("HT", size=24, spacing=10, x0=30)
    ex = GlyphExtractor(GEMConfig(), attention=extractor.attention, segmenter=_Pessimist())
    res = ex.extract(img[None], ["HT"])
    assert res.status[0] == STATUS_OK and "no candidate above tau" in res.reasons[0]
    assert _iou(res.char[0, 0] > 0, truth == 1) > 0.9  # all candidates were considered instead


def test_config_validation_and_round_trip() -> None:
    cfg = GEMConfig(anchor_steps=(1, 3, 5))
    assert GEMConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="attention"):
        GEMConfig(attention="nope")
    with pytest.raises(ValueError, match="sam_checkpoint"):
        GEMConfig(segmenter="sam")
    with pytest.raises(ValueError, match="stt_checkpoint"):
        GEMConfig(attention="stt")


def test_line_from_touched_components_fills_what_selection_left(extractor: GlyphExtractor) -> None:
    img, truth = render_word("Parking", size=22)
    union = GlyphExtractor(GEMConfig(line="union"), attention=extractor.attention).extract(img[None], ["Parking"])
    comps = extractor.extract(img[None], ["Parking"])
    u, c = union.line[0, 0] > 0, comps.line[0, 0] > 0
    assert (u <= c).all()  # a superset of the union
    assert _iou(c, truth > 0) >= _iou(u, truth > 0)
    with pytest.raises(ValueError, match="line"):
        GEMConfig(line="hull")


def test_native_resolution_coverage(extractor: GlyphExtractor) -> None:
    from PIL import Image

    native, truth_big = _render_native("HT")
    small = np.asarray(Image.fromarray(native).resize((128, 32), Image.BICUBIC))
    res = extractor.extract(small[None], ["HT"], native=[native])
    from glyphsr.data.glyph_truth import resample_label_map

    truth = resample_label_map(truth_big, 2)
    assert res.status[0] == 1
    for k in range(2):
        assert _iou(res.char[0, k] > 0, truth == k + 1) > 0.9
    with pytest.raises(ValueError, match="native"):
        extractor.extract(small[None], ["HT"], native=[])


def _render_native(word: str) -> tuple[np.ndarray, np.ndarray]:
    """A 64x256 native image (and its label map) of ``word`` with wide gaps."""
    from glyphsr.data.synth.fonts import available_fonts
    from glyphsr.data.synth.render import label_map, render_layers

    fonts = available_fonts()
    font = next((f for f in fonts if f.family == "DejaVu Sans" and f.style == "Book"), None) or next(
        f for f in fonts if f.family == "Lato" and f.style == "Regular")
    layers = render_layers(word, font.path, 44, tracking=40)
    canvas = np.zeros((len(word), 64, 256), np.float32)
    h, w = min(layers.shape[1], 64), min(layers.shape[2], 196)
    canvas[:, (64 - h) // 2:(64 - h) // 2 + h, 60:60 + w] = layers[:, :h, :w]
    alpha = np.clip(canvas.sum(0), 0, 1)[..., None]
    img = (np.array([230, 225, 210.0]) * (1 - alpha) + np.array([25, 30, 60.0]) * alpha).round().astype(np.uint8)
    return img, label_map(canvas)


def test_orphan_components_go_to_the_character_whose_cell_holds_them() -> None:
    from glyphsr.gem.extractor import _adopt_orphans

    text = np.zeros((32, 128), bool)
    text[8:24, 20:23] = True  # h: the stem, prompted and chosen
    text[14:24, 25:29] = True  # h: the arch, no longer joined to the stem
    text[8:24, 50:60] = True  # o, chosen
    text[0:2, :] = True  # a band along the top edge: outside the rows the masks span
    text[16:20, 70:110] = True  # a bar across two cells: under 70% in either
    masks = np.zeros((3, 32, 128), bool)
    masks[0, 8:24, 20:23] = True
    masks[1, 8:24, 50:60] = True
    lo, hi = np.array([0.0, 40.0, 90.0]), np.array([40.0, 90.0, 128.0])
    out = _adopt_orphans(masks, text, lo, hi, 0.7)
    assert out[0, 14:24, 25:29].all() and out[0].sum() == masks[0].sum() + 40  # the arch joined the h
    assert (out[1] == masks[1]).all() and not out[2].any()  # the bar, the band: nobody's
    masks[2, 20, 120] = True  # the third character has a mask now: the bar is still 50/50, stays out
    assert not _adopt_orphans(masks, text, lo, hi, 0.7)[:, 16:20, 70:110].any()
    assert (_adopt_orphans(np.zeros_like(masks), text, lo, hi, 0.7) == 0).all()
