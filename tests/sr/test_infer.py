"""sr-infer's core: loading any PIL mode, the fit/tiles decision, window planning and blending, batched inference
across images (with a stand-in network whose output is known, and with a tiny real GlyphSR)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from glyphsr.sr.evaluation import rgbm, to_uint8
from glyphsr.sr.infer import (
    MIN_OVERLAP,
    TILES_ASPECT,
    ImageError,
    LRImage,
    blend_weights,
    choose_mode,
    iter_loaded,
    load_image,
    merge_windows,
    prepare,
    super_resolve_images,
    to_rgb,
    window_starts,
)
from glyphsr.sr.modeling import SRConfig, build_model


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # the test machine is shared
    yield
    torch.set_num_threads(n)


def text_image(size: tuple[int, int], text: str = "Parking", fg=(20, 30, 40), bg=(235, 230, 220)) -> Image.Image:
    img = Image.new("RGB", size, bg)
    ImageDraw.Draw(img).text((3, size[1] // 5), text, fill=fg, font_size=max(8, size[1] * 2 // 3))
    return img


def nearest_x2(x: torch.Tensor) -> torch.Tensor:
    """A stand-in network whose output is known: RGBM (B, 4, 16, 64) -> nearest x2 (B, 4, 32, 128)."""
    return F.interpolate(x, scale_factor=2, mode="nearest")


def lr_of(rgb: np.ndarray, mode: str = "tiles") -> LRImage:
    return prepare(Image.fromarray(rgb), mode)


# -- planning ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("width", [64, 65, 70, 112, 113, 133, 160, 500, 2001])
def test_windows_cover_the_line_with_enough_overlap(width: int) -> None:
    s = window_starts(width)
    assert s[0] == 0 and s[-1] + 64 == max(width, 64)
    assert np.all(np.diff(s) > 0) and np.all(64 - np.diff(s) >= MIN_OVERLAP)
    if len(s) > 2:  # the fewest windows that do it: one less would leave neighbours too little overlap
        assert (width - 64) / (len(s) - 2) > 64 - MIN_OVERLAP


def test_blend_weights_ramp_to_one_across_overlaps() -> None:
    assert np.array_equal(blend_weights(np.array([0])), np.ones((1, 128), np.float32))
    s = window_starts(133)  # 3 windows, neighbours overlap only pairwise
    w = blend_weights(s)
    total = np.zeros(2 * 133)
    for i, start in enumerate(s):
        total[2 * start:2 * start + 128] += w[i]
    np.testing.assert_allclose(total, 1.0, atol=1e-6)
    assert w[0, 0] == 1 and w[-1, -1] == 1 and np.all(w > 0)


def test_auto_switches_past_twice_textzooms_aspect() -> None:
    assert TILES_ASPECT == 8
    assert choose_mode((128, 16)) == "fit" and choose_mode((129, 16)) == "tiles"
    assert choose_mode((10, 100)) == "fit" and choose_mode((2500, 300)) == "tiles"
    assert choose_mode((2500, 300), "fit") == "fit" and choose_mode((64, 64), "tiles") == "tiles"
    with pytest.raises(ValueError, match="mode"):
        choose_mode((64, 16), "stretch")


# -- blending ------------------------------------------------------------------------------------------------------
def test_blending_a_constant_stays_constant() -> None:
    s = window_starts(301)
    windows = torch.full((len(s), 3, 32, 128), 0.37)
    out = merge_windows(windows, s, 301)
    assert out.shape == (3, 32, 602)
    torch.testing.assert_close(out, torch.full_like(out, 0.37), rtol=0, atol=1e-6)


def test_blending_consistent_windows_gives_back_the_image() -> None:
    img = torch.rand(3, 32, 2 * 250)
    s = window_starts(250)
    windows = torch.stack([img[:, :, 2 * a:2 * a + 128] for a in s])
    torch.testing.assert_close(merge_windows(windows, s, 250), img, rtol=0, atol=1e-6)


# -- batched inference ---------------------------------------------------------------------------------------------
def test_stream_batches_windows_of_many_images_in_order() -> None:
    rng = np.random.default_rng(0)
    widths = [64, 300, 20, 64, 1000, 133, 64]
    images = [rng.integers(0, 256, (16, w, 3), dtype=np.uint8) for w in widths]
    calls = []

    def fn(x):
        calls.append(len(x))
        return nearest_x2(x)

    items = [(k, lr_of(im)) for k, im in enumerate(images)]
    out = list(super_resolve_images(fn, items, batch=5))
    assert [k for k, _ in out] == list(range(len(images)))
    assert max(calls) <= 5 and sum(calls) == sum(len(window_starts(max(w, 64))) for w in widths)
    for (_, sr), im in zip(out, images):  # blending windows that agree gives the whole line's x2
        assert sr.shape == (32, 2 * im.shape[1], 3) and sr.dtype == np.uint8
        np.testing.assert_array_equal(sr, im.repeat(2, 0).repeat(2, 1))


def test_windows_of_a_line_get_the_lines_mask() -> None:
    line = np.full((16, 200, 3), 220, np.uint8)
    line[4:12, 20:30] = 10
    line[:, 100:] = 120  # a darker right half: the whole line's threshold makes it all "text"; alone, the last
    line[4:12, 150:160] = 60  # window would keep only its own darkest part
    img = lr_of(line)
    seen = []

    def fn(x):
        seen.append(x.clone())
        return nearest_x2(x)

    list(super_resolve_images(fn, [(0, img)], batch=64))
    x = seen[0]
    expected = rgbm(torch.from_numpy(line).permute(2, 0, 1)[None])[0, 3]  # (16, 200): the whole line's
    for k, s in enumerate(window_starts(200)):
        torch.testing.assert_close(x[k, 3], expected[:, s:s + 64], rtol=0, atol=0)
    alone = rgbm(x[-1:, :3])[0, 3]
    assert x[-1, 3].mean() == 1 and 0 < alone.mean() < 0.2  # not what the last window alone gives


def test_stream_refuses_a_batch_below_one() -> None:
    with pytest.raises(ValueError, match="batch"):
        list(super_resolve_images(nearest_x2, [], batch=0))


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return build_model(SRConfig(c_sr=8, c_tp=8, n_blocks=2, n_gly=1, tpg_pretrained=False)).eval()


def test_tiles_of_a_16x64_image_is_fit_exactly(tiny_model) -> None:
    lr = np.array(text_image((64, 16)))
    fit = lr_of(lr, "fit")
    tiles = lr_of(lr, "tiles")
    assert fit.mode == "fit" and tiles.mode == "tiles"
    np.testing.assert_array_equal(fit.pixels, tiles.pixels)
    assert fit.mask is None and tiles.mask is None  # one window: rgbm() makes the mask with the batch

    def sr(x):
        return tiny_model(x).sr

    (_, a), = super_resolve_images(sr, [(0, fit)])
    (_, b), = super_resolve_images(sr, [(0, tiles)])
    direct = to_uint8(tiny_model.super_resolve(rgbm(torch.from_numpy(lr).permute(2, 0, 1)[None])))[0]
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, direct)
    assert a.shape == (32, 128, 3)


def test_a_long_line_keeps_its_shape_through_the_real_network(tiny_model, tmp_path) -> None:
    path = tmp_path / "line.jpg"
    text_image((2500, 300), "a line of text, much longer than TextZoom's words").save(path)
    img = load_image(path)
    assert img.mode == "tiles" and img.width == 133 and img.source_size == (2500, 300)
    (_, sr), = super_resolve_images(lambda x: tiny_model(x).sr, [(0, img)], batch=2)
    assert sr.shape == (32, 266, 3)
    fit = load_image(path, "fit")
    assert fit.width == 64 and fit.out_size == (128, 32)


def test_a_narrow_image_in_tiles_mode_is_padded_then_cropped() -> None:
    im = np.random.default_rng(1).integers(0, 256, (32, 40, 3), dtype=np.uint8)
    lr = lr_of(im, "tiles")
    assert lr.width == 20 and lr.pixels.shape == (3, 16, 64) and lr.mask.shape == (16, 64)
    np.testing.assert_array_equal(lr.pixels[:, :, 20:], np.repeat(lr.pixels[:, :, 19:20], 44, axis=2))
    line = rgbm(torch.from_numpy(lr.pixels[:, :, :20].copy())[None])[0, 3].numpy()  # the mask of the line itself
    np.testing.assert_array_equal(lr.mask[:, :20], line)
    np.testing.assert_array_equal(lr.mask[:, 20:], np.repeat(line[:, 19:20], 44, axis=1))
    (_, sr), = super_resolve_images(nearest_x2, [(0, lr)])
    assert sr.shape == (32, 40, 3)


# -- loading -------------------------------------------------------------------------------------------------------
def test_modes_become_rgb(tmp_path) -> None:
    base = text_image((128, 32))
    gray = base.convert("L")
    a16 = (np.asarray(gray).astype(np.uint16) * 257)
    cases = {
        "L": gray, "1": gray.convert("1"), "P": base.convert("P", palette=Image.Palette.ADAPTIVE),
        "CMYK": base.convert("CMYK"), "I;16": Image.fromarray(a16), "I": Image.fromarray(a16.astype(np.int32)),
        "F": Image.fromarray(np.asarray(gray, np.float32) / 255), "LA": gray.convert("LA"),
    }
    for mode, img in cases.items():
        assert img.mode == mode
        path = tmp_path / f"{mode.replace(';', '_')}.{'tif' if mode in ('F', 'CMYK', 'I') else 'png'}"
        img.save(path)
        lr = load_image(path)
        assert lr.source_mode == img.mode and lr.rgb.shape == (16, 64, 3), mode
        if mode in ("I;16", "I", "F", "LA"):  # high depth scaled to 8 bits, not clipped: same as the 8-bit gray
            np.testing.assert_allclose(lr.rgb.astype(int), load_image(tmp_path / "L.png").rgb.astype(int), atol=1,
                                       err_msg=mode)


def test_transparency_is_flattened_so_text_stays_readable() -> None:
    a = np.zeros((20, 40, 4), np.uint8)
    a[5:15, 10:30] = (0, 0, 0, 255)  # dark text on a transparent background: over white
    out = np.asarray(to_rgb(Image.fromarray(a, "RGBA")))
    assert out[0, 0].tolist() == [255, 255, 255] and out[10, 20].tolist() == [0, 0, 0]
    a[5:15, 10:30] = (255, 255, 255, 255)  # light text: over black
    out = np.asarray(to_rgb(Image.fromarray(a, "RGBA")))
    assert out[0, 0].tolist() == [0, 0, 0] and out[10, 20].tolist() == [255, 255, 255]
    p = Image.fromarray(a, "RGBA").convert("P")  # palette with a transparent entry
    p.info["transparency"] = int(np.asarray(p)[0, 0])
    assert np.asarray(to_rgb(p))[0, 0].tolist() == [0, 0, 0]


def test_16bit_values_are_scaled_not_clipped() -> None:
    a = np.full((16, 64), 65535, np.uint16)
    a[:, :32] = 257 * 100
    out = np.asarray(to_rgb(Image.fromarray(a)))
    assert out[0, 0].tolist() == [100] * 3 and out[0, 63].tolist() == [255] * 3


def test_exif_orientation_is_applied(tmp_path) -> None:
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    text_image((40, 300)).save(path, exif=exif)  # stored tall, displayed wide
    lr = load_image(path)
    assert lr.source_size == (300, 40) and lr.mode == "fit"


def test_bad_files_raise_with_the_reason(tmp_path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_bytes(b"hello, not an image")
    good = tmp_path / "good.png"
    text_image((128, 32)).save(good)
    (tmp_path / "cut.png").write_bytes(good.read_bytes()[:120])
    for name, reason in (("empty.png", "empty file"), ("text.png", "not an image"), ("cut.png", "unreadable"),
                         ("missing.png", "cannot read")):
        with pytest.raises(ImageError, match=reason):
            load_image(tmp_path / name)
    results = list(iter_loaded([tmp_path / "empty.png", good, tmp_path / "cut.png"], workers=2, lookahead=1))
    assert [p.name for p, _ in results] == ["empty.png", "good.png", "cut.png"]
    assert [type(r).__name__ for _, r in results] == ["ImageError", "LRImage", "ImageError"]


def test_a_huge_image_is_reduced_while_decoding(tmp_path) -> None:
    path = tmp_path / "huge.jpg"
    text_image((12000, 1440), "a very long line").save(path, quality=80)
    with Image.open(path) as im:
        im.draft("RGB", (4 * 133, 64))
        assert im.size[0] < 12000  # PIL decodes this JPEG at a reduced scale
    lr = load_image(path)
    assert lr.source_size == (12000, 1440) and lr.width == 133 and lr.mode == "tiles"
