"""Foreground, key points, anchors and selection on inputs with known answers."""

from __future__ import annotations

import numpy as np

from glyphsr.gem.foreground import kmeans_foreground, text_alpha
from glyphsr.gem.keypoints import anchors, bbox_centers, cells, glyph_attention, position_keypoints_2d
from glyphsr.gem.selection import CHOSEN_BY_FALLBACK, CHOSEN_BY_IOU, NO_CANDIDATE, SelectionConfig, select_masks
from tests.gem.conftest import render_word


def test_kmeans_foreground_finds_text_either_polarity() -> None:
    a, truth = render_word("Hi")
    b, _ = render_word("Hi", dark_on_light=False)
    fg, levels = kmeans_foreground(np.stack([a, b]))
    for i in range(2):
        iou = (fg[i] & (truth > 0)).sum() / (fg[i] | (truth > 0)).sum()
        assert iou > 0.8
    assert levels[0, 0] > levels[0, 1] and levels[1, 0] < levels[1, 1]  # [background, text]
    alpha = text_alpha(np.stack([a, b]), fg, levels)
    assert alpha[0][truth == 0].mean() < 0.1 and alpha[0][truth > 0].mean() > 0.7


def test_text_alpha_matches_glyph_truth_on_generated_hr_images() -> None:
    """Coverage >= 0.5 at native resolution against the generator's own glyph truth (coverage >= 0.5 of the
    rendered glyphs), over 40 training samples: mean IoU 0.959. With the text cluster's mean as ink level (the
    version before, which made thin softened strokes a pixel too bold) it was 0.935."""
    from glyphsr.data.synth.fonts import available_fonts
    from glyphsr.data.synth.generator import make_sample, sample_rng

    fonts = available_fonts()
    ious = []
    for i in range(40):
        s = make_sample(sample_rng(1, "train", i), fonts)
        fg, levels = kmeans_foreground(s.hr[None])
        window = 15 * max(1, round(s.hr.shape[0] / 32)) | 1
        est = text_alpha(s.hr[None], fg, levels, window)[0] >= 0.5
        truth = s.glyph > 0
        ious.append((est & truth).sum() / (est | truth).sum())
    assert np.mean(ious) > 0.95


def test_cells_and_glyph_attention() -> None:
    peak = np.array([[20.0, 60.0, np.nan]], np.float32)
    valid = np.array([[True, True, False]])
    lo, hi = cells(peak, valid, 128)
    np.testing.assert_allclose(lo[0, :2], [0, 40])
    np.testing.assert_allclose(hi[0, :2], [40, 128])
    assert np.isnan(lo[0, 2])
    fg = np.ones((1, 32, 128), bool)
    g = glyph_attention(fg, lo, hi)
    assert g[0, 0].sum() == 32 * 40 and g[0, 1].sum() == 32 * 88 and not g[0, 2].any()


def test_bbox_centers_and_anchors() -> None:
    m = np.zeros((2, 32, 128), bool)
    m[0, 10:20, 30:41] = True
    c = bbox_centers(m)
    np.testing.assert_allclose(c[0], [35.5, 15.0])
    assert np.isnan(c[1]).all()
    a = anchors(np.array([[1.0, 30.0], [60.0, 16.0]], np.float32), (2, 4), 128, 32)
    assert a.shape == (2, 9, 2)
    np.testing.assert_allclose(a[1, 0], [60, 16])
    assert {tuple(p) for p in a[1]} >= {(60, 12), (60, 20), (56, 16), (64, 16), (58, 16)}
    assert a[0, :, 0].min() == 0 and a[0, :, 1].max() == 31  # clipped


def test_position_keypoint_2d_is_the_blob_center() -> None:
    pos = np.zeros((1, 1, 32, 128), np.float32)
    yy, xx = np.mgrid[:32, :128]
    pos[0, 0] = np.exp(-((xx - 70) ** 2 + (yy - 12) ** 2) / 20.0)
    pos[0, 0, 0, 0] = 0.9  # an isolated speck the morphological opening removes
    kp = position_keypoints_2d(pos)
    np.testing.assert_allclose(kp[0, 0], [70, 12], atol=0.5)


def test_selection_tau_iou_and_fallback() -> None:
    masks = np.zeros((3, 8, 8), bool)
    masks[0, :, :2] = True  # overlaps the glyph attention a little
    masks[1, :, :4] = True  # overlaps it most, but low confidence
    masks[2, :2, :2] = True  # small and confident
    scores = np.array([0.9, 0.5, 0.95], np.float32)
    g = np.zeros((2, 8, 8), bool)
    g[0, :, :4] = True
    cands = [np.array([0, 1, 2]), np.array([0, 1, 2])]
    s = select_masks(masks, scores, cands, g, use_tau=True)
    assert s.chosen[0] == 0 and s.how[0] == CHOSEN_BY_IOU  # mask 1 filtered by tau
    assert s.chosen[1] == 2 and s.how[1] == CHOSEN_BY_FALLBACK  # empty glyph attention: conf / sqrt(area)
    s = select_masks(masks, scores, cands, g, use_tau=False)
    assert s.chosen[0] == 1
    s = select_masks(masks, np.full(3, 0.1, np.float32), cands, g, use_tau=True)
    assert s.below_tau.all() and s.chosen[0] == 1  # nothing above tau: all considered, and said so
    s = select_masks(masks, scores, [np.array([-1]), np.array([], int)], g)
    assert (s.how == NO_CANDIDATE).all() and (s.chosen == -1).all()
    s = select_masks(masks, scores, cands, g, SelectionConfig(use_glyph_iou=False), use_tau=False)
    assert s.chosen[0] == 2  # fallback ranking only


def test_valley_cells_put_boundaries_where_ink_is_least() -> None:
    peak = np.array([[20.0, 40.0]], np.float32)
    valid = np.ones((1, 2), bool)
    profile = np.full((1, 128), 10.0, np.float32)
    profile[0, 33:35] = 1.0  # the glyphs meet at columns 33-34, not at the midpoint 30
    lo, hi = cells(peak, valid, 128, profile=profile)
    assert hi[0, 0] == lo[0, 1] == 34.0  # the middle of the valley run (between columns 33 and 34)
    lo_mid, hi_mid = cells(peak, valid, 128)
    assert hi_mid[0, 0] == 30.0
