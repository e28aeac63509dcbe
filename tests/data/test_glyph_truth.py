"""Area resampling of the glyph ground truth."""

from __future__ import annotations

import numpy as np

from glyphsr.data.glyph_truth import area_matrix, area_resize, char_masks, resample_label_map


def test_area_matrix_rows_are_averages() -> None:
    m = area_matrix(5, 2)  # output cell 0 covers inputs 0, 1 and half of 2
    np.testing.assert_allclose(m.sum(axis=1), 1.0)
    np.testing.assert_allclose(m[0], [0.4, 0.4, 0.2, 0, 0])
    np.testing.assert_allclose(area_matrix(4, 4), np.eye(4))


def test_integer_downscale_is_block_mean() -> None:
    x = np.random.default_rng(0).random((2, 8, 12)).astype(np.float32)
    expected = x.reshape(2, 4, 2, 6, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(area_resize(x, (4, 6)), expected, rtol=1e-5)


def test_label_map_recovered_from_a_nearest_upscale() -> None:
    rng = np.random.default_rng(1)
    small = np.zeros((32, 128), np.uint8)
    for k, x0 in enumerate(range(4, 120, 24), start=1):
        small[8:24, x0:x0 + 2 + int(rng.integers(8))] = k  # 2-px and wider strokes
    big = np.kron(small, np.ones((3, 3), np.uint8))  # native 96x384
    np.testing.assert_array_equal(resample_label_map(big, 5), small)


def test_half_covered_pixels_are_text_and_majority_wins() -> None:
    native = np.zeros((2, 4), np.uint8)  # one output pixel (1x1) per 2x4 block
    native[:, :2] = 1  # half covered by char 1
    assert resample_label_map(native, 1, (1, 1))[0, 0] == 1
    native[0, 1] = 0  # less than half
    assert resample_label_map(native, 1, (1, 1))[0, 0] == 0
    native[:] = 0
    native[:, :1] = 1
    native[:, 1:3] = 2  # together 3/4 text; char 2 covers most
    assert resample_label_map(native, 2, (1, 1))[0, 0] == 2


def test_char_masks_stop_at_fifteen_channels() -> None:
    native = np.zeros((32, 20 * 6), np.uint8)
    for k in range(1, 21):
        native[:, (k - 1) * 6:(k - 1) * 6 + 4] = k
    masks = char_masks(native, 20, max_chars=15, size=(32, 120))
    assert masks.shape == (15, 32, 120) and masks.dtype == np.uint8
    assert all(masks[k].sum() > 0 for k in range(15))
