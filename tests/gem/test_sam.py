"""The SAM segmenter with a tiny random SAM built from segment_anything.modeling (real SAM code, small sizes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from glyphsr.gem.extractor import GEMConfig, GlyphExtractor
from glyphsr.gem.segmenters.sam import SamSegmenter, build_tiny_sam, load_sam, low_res_to_masks, to_sam_frame
from tests.gem.conftest import render_word


def tiny_sam():
    torch.manual_seed(0)
    return build_tiny_sam()


@pytest.fixture(scope="module")
def seg() -> SamSegmenter:
    return SamSegmenter(tiny_sam(), chunk=16, dtype="float32")


def test_prompt_lands_at_the_right_place_in_sams_frame(seg: SamSegmenter) -> None:
    np.testing.assert_allclose(to_sam_frame(np.array([[0.0, 0.0], [127.0, 31.0]]), 8.0), [[3.5, 3.5],
                                                                                       [1019.5, 251.5]])
    seen = []
    orig = seg.sam.prompt_encoder.forward

    def spy(points, boxes, masks):
        seen.append(points[0].clone())
        return orig(points, boxes, masks)

    seg.sam.prompt_encoder.forward = spy
    img, _ = render_word("HI")
    pts = np.array([[10.0, 5.0], [100.0, 20.0], [np.nan, np.nan]], np.float32)
    out = seg.segment(img[None], [pts])[0]
    seg.sam.prompt_encoder.forward = orig
    coords = torch.cat(seen)  # (P, 1, 2) in SAM's 1024 frame
    assert coords.shape == (2, 1, 2)
    np.testing.assert_allclose(coords[:, 0].numpy(), [[83.5, 43.5], [803.5, 163.5]])
    assert out.masks.shape == (6, 32, 128) and out.scores.shape == (6,)
    assert (out.prompt_candidates[2] == -1).all() and (out.prompt_candidates[:2] >= 0).all()


def test_masks_come_back_in_crop_coordinates() -> None:
    low = torch.full((1, 3, 256, 256), -10.0)
    # the crop (32x128 -> 256x1024 in the 1024 frame) is the top 64x256 of the 256x256 low-res grid
    low[0, :, 8:16, 100:120] = 10.0  # rows 8-16 of 64 -> 4-8 of 32; cols 100-120 of 256 -> 50-60 of 128
    m = low_res_to_masks(low, (256, 1024), (32, 128))[0, 0] > 0
    ys, xs = np.nonzero(m.numpy())
    assert 3 <= ys.min() and ys.max() <= 8 and 49 <= xs.min() and xs.max() <= 60


def test_decoder_is_called_in_chunks(seg: SamSegmenter) -> None:
    img, _ = render_word("HI")
    pts = np.random.default_rng(0).uniform([0, 0], [127, 31], (40, 2)).astype(np.float32)
    before_dec, before_enc = seg.decoder_calls, seg.encoder_calls
    seg.segment(np.stack([img, img]), [pts, pts[:10]])
    assert seg.decoder_calls - before_dec == 3 + 1  # ceil(40/16) + ceil(10/16), never one per prompt
    assert seg.encoder_calls - before_enc == 1  # one batched encoder pass for both images


def test_selection_consumes_sam_output(seg: SamSegmenter) -> None:
    from glyphsr.gem.attention import CTCAttention

    img, _ = render_word("HT", size=24, spacing=10, x0=30)
    seen = []

    class Spy:
        calibrated_confidence = True

        def segment(self, images, points, alpha=None):
            out = seg.segment(images, points)
            seen.extend(out)
            return out

    ex = GlyphExtractor(GEMConfig(exclusive=False), attention=CTCAttention(), segmenter=Spy())
    res = ex.extract(img[None], ["HT"])
    assert res.char.shape == (1, 15, 32, 128) and len(seen) == 1
    assert seen[0].prompt_candidates.shape == (15 * 18, 3)  # 2 key points x 9 anchors per character slot
    assert (seen[0].prompt_candidates[:36] >= 0).all() and (seen[0].prompt_candidates[36:] == -1).all()
    for k in range(2):  # each character's mask and score is one of SAM's candidates for its own prompts
        ids = seen[0].prompt_candidates[18 * k:18 * (k + 1)].ravel()
        match = [j for j in ids if np.array_equal(seen[0].masks[j], res.char[0, k] > 0)]
        assert match and np.isclose(res.scores[0, k], seen[0].scores[match[0]])


def test_load_sam_errors(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        load_sam(tmp_path / "missing.pth", "vit_b")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read"):
        load_sam(bad, "vit_b")
    torch.save({"x": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="does not fit SAM vit_b"):
        load_sam(tmp_path / "other.pth", "vit_b")
    with pytest.raises(ValueError, match="must be one of"):
        load_sam(bad, "vit_x")


@pytest.mark.slow
def test_load_sam_round_trip_vit_b(tmp_path) -> None:
    from segment_anything import sam_model_registry

    sam = sam_model_registry["vit_b"](checkpoint=None)
    path = tmp_path / "sam_vit_b.pth"
    torch.save(sam.state_dict(), path)
    loaded = load_sam(path, "vit_b")
    a, b = sam.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]  # every tensor: a random rebuild differs in each weight
    assert not differ, differ[:5]
