"""The judging metrics against direct computations: PSNR, SSIM (per image and the TextZoom code's per-batch form),
accuracy on the ``lower`` forms, the paper's weighted average, the bicubic row's kernel and the reference cache."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from glyphsr.sr import evaluation as ev
from glyphsr.sr.evaluation import (
    EvalSet,
    bicubic_up,
    is_correct,
    legacy_psnr,
    legacy_ssim,
    psnr,
    reference_rows,
    ssim,
    super_resolve,
    weighted_average,
)

# -- direct computations (numpy/scipy, float64), written from the formulas ------------------------------------------


def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size) - size // 2
    g = np.exp(-(x ** 2) / (2 * sigma ** 2))
    g /= g.sum()
    return np.outer(g, g)


def ssim_map_reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SSIM map of two (C, H, W) images in [0, 1]: Gaussian 11x11, sigma 1.5, zero padding, C1 = .01^2, C2 = .03^2."""
    w = gaussian_window()
    out = np.empty_like(a, dtype=np.float64)
    for c in range(a.shape[0]):
        x, y = a[c].astype(np.float64), b[c].astype(np.float64)

        def blur(im: np.ndarray) -> np.ndarray:
            return ndimage.correlate(im, w, mode="constant", cval=0.0)

        mx, my = blur(x), blur(y)
        vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
        c1, c2 = 0.01 ** 2, 0.03 ** 2
        out[c] = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    return out


def textzoom_psnr_reference(batches: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """TextZoom's ``calculate_psnr`` per batch (one MSE over the batch, images x 255), averaged over batches."""
    vals = []
    for a, b in batches:
        mse = np.mean((a.astype(np.float64) * 255 - b.astype(np.float64) * 255) ** 2)
        vals.append(20 * math.log10(255.0 / math.sqrt(mse)))
    return float(np.mean(vals))


def textzoom_ssim_reference(batches: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """TextZoom's ``SSIM()`` per batch (the mean of the batch's SSIM map), averaged over batches."""
    return float(np.mean([np.mean([ssim_map_reference(x, y) for x, y in zip(a, b)]) for a, b in batches]))


def pair(n: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """HR-like images (smooth shapes) and a degraded copy (blur and noise), (n, 3, 32, 128) in [0, 1]."""
    rng = np.random.default_rng(seed)
    a = ndimage.gaussian_filter(rng.random((n, 3, 32, 128)), sigma=(0, 0, 2, 2))
    a = (a - a.min()) / (a.max() - a.min())
    b = np.clip(ndimage.gaussian_filter(a, sigma=(0, 0, 1, 1)) + rng.normal(0, 0.05, a.shape), 0, 1)
    return torch.from_numpy(a).float(), torch.from_numpy(b).float()


# -- PSNR and SSIM --------------------------------------------------------------------------------------------------


def test_psnr_known_values() -> None:
    a = torch.full((3, 3, 32, 128), 0.5)
    b = a + torch.tensor([0.1, 0.01, 0.0]).view(3, 1, 1, 1)  # MSE 1e-2, 1e-4, 0
    np.testing.assert_allclose(psnr(a, b).numpy(), [20.0, 40.0, 100.0], atol=1e-3)


def test_ssim_identical_images_is_one() -> None:
    a, _ = pair()
    np.testing.assert_allclose(ssim(a, a).numpy(), 1.0, atol=1e-6)


def test_ssim_matches_direct_computation() -> None:
    a, b = pair()
    ref = [ssim_map_reference(x, y).mean() for x, y in zip(a.numpy(), b.numpy())]
    ours = ssim(a, b).numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    assert 0.2 < ours.min() and ours.max() < 0.99  # a pair that exercises the formula, not a trivial one
    # per pixel, float32's E[x^2] - E[x]^2 loses about 1e-4; the means above agree far better
    np.testing.assert_allclose(ev.ssim_map(a, b).numpy(),
                               np.stack([ssim_map_reference(x, y) for x, y in zip(a.numpy(), b.numpy())]), atol=5e-4)


def test_legacy_metrics_match_the_textzoom_code_form() -> None:
    a, b = pair(7)
    batches = [(b[i:i + 3], a[i:i + 3]) for i in range(0, 7, 3)]  # batches of 3, 3, 1
    np_batches = [(x.numpy(), y.numpy()) for x, y in batches]
    assert legacy_psnr(batches) == pytest.approx(textzoom_psnr_reference(np_batches), abs=1e-4)
    assert legacy_ssim(batches) == pytest.approx(textzoom_ssim_reference(np_batches), abs=1e-5)


def test_legacy_form_depends_on_batch_size_per_image_form_does_not() -> None:
    hr = torch.full((4, 3, 32, 128), 0.5)
    sr = hr + torch.tensor([0.01, 0.01, 0.2, 0.2]).view(4, 1, 1, 1)  # two good images, two bad

    def per_image(batch: int) -> float:
        return float(torch.cat([psnr(sr[i:i + batch], hr[i:i + batch]) for i in range(0, 4, batch)]).mean())

    def legacy(batch: int) -> float:
        return legacy_psnr([(sr[i:i + batch], hr[i:i + batch]) for i in range(0, 4, batch)])

    assert legacy(2) == pytest.approx((40 + 20 * math.log10(5)) / 2, abs=1e-3)  # 40 dB and 13.98 dB batches
    assert legacy(4) == pytest.approx(10 * math.log10(1 / ((1e-4 + 4e-2) / 2)), abs=1e-3)  # one MSE: 16.99 dB
    assert abs(legacy(2) - legacy(4)) > 9
    assert per_image(1) == pytest.approx(per_image(2), abs=1e-4) == pytest.approx(per_image(4), abs=1e-4)
    sr_ssim = [float(torch.cat([ssim(sr[i:i + k], hr[i:i + k]) for i in range(0, 4, k)]).mean()) for k in (1, 4)]
    assert sr_ssim[0] == pytest.approx(sr_ssim[1], abs=1e-6)
    assert legacy_ssim([(sr[:1], hr[:1]), (sr[1:], hr[1:])]) != pytest.approx(
        legacy_ssim([(sr[:3], hr[:3]), (sr[3:], hr[3:])]), abs=1e-3)


# -- accuracy and the weighted average -------------------------------------------------------------------------------


def test_accuracy_is_exact_match_of_lower_forms() -> None:
    preds = ["Caf-e!", "cafe", "PARKING", "parkin", "", "0pen"]
    labels = ["cafe", "CAFE!", "parking", "parking", "!!!", "open"]
    np.testing.assert_array_equal(is_correct(preds, labels), [True, True, True, False, True, False])


def test_weighted_average_uses_textzoom_sizes_for_the_tiers() -> None:
    # the paper's GlyphSR CRNN row: 71.4 / 64.8 / 48.0 -> 62.1 (the unweighted mean would be 61.4)
    tiers = {"easy": 71.4, "medium": 64.8, "hard": 48.0}
    results = {t: {"sr": {"accuracy": v, "n": 10}} for t, v in tiers.items()}
    assert weighted_average(results, "sr") == pytest.approx((71.4 * 1619 + 64.8 * 1411 + 48.0 * 1343) / 4373)
    assert round(weighted_average(results, "sr"), 1) == 62.1
    # other sets: their own sizes
    other = {"a": {"sr": {"accuracy": 1.0, "n": 10}}, "b": {"sr": {"accuracy": 0.0, "n": 30}}}
    assert weighted_average(other, "sr") == pytest.approx(0.25)
    mixed = {"easy": {"sr": {"accuracy": 1.0, "n": 10}}, "b": {"sr": {"accuracy": 0.0, "n": 30}}}
    assert weighted_average(mixed, "sr") == pytest.approx(0.25)


# -- the bicubic row and SR images -----------------------------------------------------------------------------------


def test_bicubic_row_uses_pils_kernel() -> None:
    """The data are read with PIL's bicubic and bench/calibrate_tiers.py upsamples LR with it: so does the row."""
    rng = np.random.default_rng(1)
    smooth = ndimage.gaussian_filter(rng.random((4, 3, 16, 64)), sigma=(0, 0, 1, 1))
    lr = (smooth / smooth.max() * 255).astype(np.uint8)
    pil = np.stack([np.asarray(Image.fromarray(x.transpose(1, 2, 0)).resize((128, 32), Image.BICUBIC))
                    for x in lr]).transpose(0, 3, 1, 2)
    ours = bicubic_up(torch.from_numpy(lr))
    assert ours.shape == (4, 3, 32, 128) and ours.dtype == torch.float32
    np.testing.assert_array_equal((ours * 255).round().numpy().astype(np.uint8), pil)
    noise = rng.integers(0, 256, (4, 3, 16, 64), dtype=np.uint8)  # overshoot everywhere: PIL's clipping
    pil = np.stack([np.asarray(Image.fromarray(x.transpose(1, 2, 0)).resize((128, 32), Image.BICUBIC))
                    for x in noise]).transpose(0, 3, 1, 2)
    diff = np.abs((bicubic_up(torch.from_numpy(noise)) * 255).round().numpy() - pil)
    assert diff.max() <= 1


def test_super_resolve_returns_png_values() -> None:
    lr = torch.randint(0, 256, (5, 3, 16, 64), dtype=torch.uint8)
    out = super_resolve(lambda x: torch.sigmoid(torch.randn(x.shape[0], 4, 32, 128)), lr, torch.device("cpu"),
                        batch=2)
    assert out.shape == (5, 3, 32, 128)
    np.testing.assert_array_equal(out * 255, (out * 255).round())


# -- the reference rows and their cache ------------------------------------------------------------------------------


class CountingJudge:
    """Reads every image as ``text``; counts the images it was given."""

    name = "counting"

    def __init__(self, text: str = "cafe", cache_key: str | None = "counting-v1"):
        self.text, self.images = text, 0
        if cache_key is not None:
            self.cache_key = cache_key

    def recognize(self, images: list[np.ndarray]) -> list[str]:
        assert all(x.dtype == np.uint8 and x.shape == (32, 128, 3) for x in images)
        self.images += len(images)
        return [self.text] * len(images)


def make_set(labels: list[str], key: str | None = "lmdb-fp-n4", seed: int = 0) -> EvalSet:
    g = torch.Generator().manual_seed(seed)
    return EvalSet("easy", torch.randint(0, 256, (len(labels), 3, 16, 64), dtype=torch.uint8, generator=g),
                   torch.randint(0, 256, (len(labels), 3, 32, 128), dtype=torch.uint8, generator=g), labels, key=key)


LABELS = ["cafe", "Cafe!", "open", "exit"]


def test_reference_rows(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("GLYPHSR_CACHE", str(tmp_path))
    judge = CountingJudge()
    rows = reference_rows(make_set(LABELS), judge)
    assert judge.images == 8  # bicubic and HR, 4 each
    for r in ("bicubic", "hr"):
        assert rows[r]["n"] == 4 and rows[r]["accuracy"] == 0.5 and rows[r]["readings"] == ["cafe"] * 4
        np.testing.assert_array_equal(rows[r]["correct"], [True, True, False, False])
    assert rows["hr"]["psnr"] == pytest.approx(100.0) and rows["hr"]["ssim"] == pytest.approx(1.0)
    assert rows["bicubic"]["psnr"] < 20


def test_reference_cache_reads_from_disk(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("GLYPHSR_CACHE", str(tmp_path))
    judge = CountingJudge()
    first = reference_rows(make_set(LABELS), judge)
    assert judge.images == 8
    again = reference_rows(make_set(LABELS), judge)  # a new set object: nothing in memory, so from disk
    assert judge.images == 8
    for r in ("bicubic", "hr"):
        assert {k: v for k, v in again[r].items() if k != "correct"} == \
               {k: v for k, v in first[r].items() if k != "correct"}
        np.testing.assert_array_equal(again[r]["correct"], first[r]["correct"])
    files = sorted(p.name for p in (tmp_path / "eval").iterdir())
    assert len(files) == 1 and files[0].endswith(".json") and "counting-v1" in files[0]  # no .tmp left behind
    # another judge version, another LMDB: other entries
    reference_rows(make_set(LABELS), CountingJudge(cache_key="counting-v2"))
    reference_rows(make_set(LABELS, key="other-fp-n4"), judge)
    assert judge.images == 16 and len(list((tmp_path / "eval").iterdir())) == 3
    assert not list((tmp_path / "eval").glob("*.tmp*"))


def test_reference_cache_is_invalidated_by_changed_labels(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("GLYPHSR_CACHE", str(tmp_path))
    judge = CountingJudge()
    reference_rows(make_set(LABELS), judge)
    rows = reference_rows(make_set(["cafe", "cafe", "cafe", "cafe"]), judge)
    assert judge.images == 16 and rows["hr"]["accuracy"] == 1.0
    assert reference_rows(make_set(["cafe"] * 4), judge)["hr"]["accuracy"] == 1.0 and judge.images == 16


def test_reference_cache_ignores_a_corrupt_file(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("GLYPHSR_CACHE", str(tmp_path))
    judge = CountingJudge()
    reference_rows(make_set(LABELS), judge)
    (path,) = (tmp_path / "eval").iterdir()
    path.write_text(path.read_text()[:50])  # as if a writer had died half way (writes are atomic, but still)
    assert reference_rows(make_set(LABELS), judge)["hr"]["accuracy"] == 0.5 and judge.images == 16


def test_judge_without_cache_key_is_never_cached(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("GLYPHSR_CACHE", str(tmp_path))
    judge = CountingJudge(cache_key=None)
    s = make_set(LABELS)
    reference_rows(s, judge)
    reference_rows(s, judge)  # the same set keeps the rows in memory
    assert judge.images == 8
    reference_rows(make_set(LABELS), judge)
    assert judge.images == 16 and not (tmp_path / "eval").exists()
    # nor a set without a key (no LMDB fingerprint)
    reference_rows(make_set(LABELS, key=None), CountingJudge())
    assert not (tmp_path / "eval").exists()


def test_two_judges_of_one_name_do_not_share_rows(monkeypatch, tmp_path) -> None:
    """``--recognizer crnn:a.pth,crnn:b.pth``: two judges named alike, without a cache key, on the same sets."""
    monkeypatch.setenv("GLYPHSR_CACHE", str(tmp_path))
    s = make_set(LABELS)
    a, b = CountingJudge("cafe", cache_key=None), CountingJudge("open", cache_key=None)
    assert reference_rows(s, a)["hr"]["readings"] == ["cafe"] * 4
    assert reference_rows(s, b)["hr"]["readings"] == ["open"] * 4
    assert a.images == b.images == 8


# -- the protocol: sr-eval's reference rows are bench/calibrate_tiers.py's figures ---------------------------------


class RecordingJudge:
    """RapidOCR, keeping every batch of images it was given (no cache key: never cached)."""

    def __init__(self, judge):
        self.judge, self.name, self.seen = judge, judge.name, []

    def recognize(self, images):
        self.seen.append(np.stack(images))
        return self.judge.recognize(images)


def test_reference_rows_agree_with_calibrate_tiers(synth_dir) -> None:
    """The same judge (RapidOCR) on the same data (30 per synthetic tier): equal bicubic and HR accuracies, because
    the judge sees the same pixels."""
    from bench.calibrate_tiers import judge_tier
    from glyphsr.recognizers.rapidocr import RapidOCRRecognizer
    from glyphsr.sr.evaluation import evaluate, load_sets

    n = 30
    rapid = RapidOCRRecognizer()
    sets, bad = load_sets([str(synth_dir)], limit=n, workers=1)
    assert [s.name for s in sets] == ["easy", "medium", "hard"] and not any(bad.values())
    for s in sets:
        calib, ours = RecordingJudge(rapid), RecordingJudge(rapid)
        expected = judge_tier(synth_dir / "test" / s.name, calib, n)  # its HR images, then its bicubic ones
        rows = evaluate(None, [s], ours, torch.device("cpu"), use_cache=False)[s.name]  # bicubic, then HR
        got = {"n": len(s), "hr": round(100 * rows["hr"]["accuracy"], 1),
               "bicubic": round(100 * rows["bicubic"]["accuracy"], 1)}
        assert got == expected, s.name
        np.testing.assert_array_equal(ours.seen[0], calib.seen[1], err_msg=f"{s.name}: bicubic images")
        np.testing.assert_array_equal(ours.seen[1], calib.seen[0], err_msg=f"{s.name}: HR images")


def test_paired_counts_and_interval_by_hand() -> None:
    #                     model:   1  1  1  0  0  1  0  1
    #                     bicubic: 0  0  1  1  0  1  0  0  -> fixed 3, broken 1
    model = np.array([1, 1, 1, 0, 0, 1, 0, 1], dtype=bool)
    bicubic = np.array([0, 0, 1, 1, 0, 1, 0, 0], dtype=bool)
    v = ev.paired(model, bicubic)
    assert (v["n"], v["fixed"], v["broken"]) == (8, 3, 1)
    assert v["delta"] == pytest.approx(model.mean() - bicubic.mean()) == pytest.approx(0.25)
    # var = (b + c) / n^2 - (b - c)^2 / n^3 = 4/64 - 4/512 = 0.0546875; 1.959964 * sqrt(0.0546875) = 0.458345
    assert v["ci95"] == pytest.approx([0.25 - 0.458345, 0.25 + 0.458345], abs=1e-6)
    assert v["p"] == pytest.approx(2 * (1 + 4) / 16)  # P(X <= 1), X ~ Bin(4, 1/2), doubled
    same = ev.paired(model, model)
    assert (same["fixed"], same["broken"], same["delta"], same["p"]) == (0, 0, 0.0, 1.0)
    assert ev.paired(np.zeros(0, bool), np.zeros(0, bool)) == {"n": 0, "fixed": 0, "broken": 0, "delta": None,
                                                                "ci95": None, "p": 1.0}
    assert ev.paired(np.array([True, False]), np.array([False, False]))["ci95"][1] == 1.0  # clipped to [-1, 1]
    assert [ev.format_p(x) for x in (0.0, 0.0004, 0.0123, 0.5)] == ["< 0.001", "< 0.001", "0.012", "0.50"]
    with pytest.raises(ValueError, match="reference readings"):
        ev.paired(model, bicubic[:5])


def test_paired_p_is_the_exact_binomial_test() -> None:
    from scipy.stats import binomtest

    rng = np.random.default_rng(0)
    for n in (7, 100, 1000, 4000):
        a, b = rng.random(n) < 0.45, rng.random(n) < rng.uniform(0.3, 0.6)
        v = ev.paired(a, b)
        m = v["fixed"] + v["broken"]
        assert v["p"] == pytest.approx(binomtest(v["fixed"], m, 0.5).pvalue, rel=1e-9, abs=1e-300)
    # a clear win is significant, a near tie is not
    assert ev.paired(np.r_[np.ones(60, bool), np.zeros(40, bool)], np.zeros(100, bool))["p"] < 1e-10
    tie = ev.paired(np.r_[np.ones(10, bool), np.zeros(90, bool)], np.r_[np.zeros(10, bool), np.ones(9, bool),
                                                                       np.zeros(81, bool)])
    assert (tie["fixed"], tie["broken"]) == (10, 9) and tie["p"] == 1.0 and tie["ci95"][0] < 0 < tie["ci95"][1]


def test_summary_has_each_model_row_against_bicubic() -> None:
    results = {t: {"bicubic": {"n": 4, "accuracy": 0.25, "psnr": 1.0, "ssim": 0.5,
                               "correct": np.array([1, 0, 0, 0], bool)},
                   "sr": {"n": 4, "accuracy": 0.5, "psnr": 2.0, "ssim": 0.6, "correct": np.array([0, 1, 1, 0], bool)},
                   "hr": {"n": 4, "accuracy": 1.0, "psnr": 100.0, "ssim": 1.0, "correct": np.ones(4, bool)}}
               for t in ("easy", "hard")}
    s = ev.summary(results)
    assert list(s["versus_bicubic"]) == ["easy", "hard"] and list(s["versus_bicubic"]["easy"]) == ["sr"]
    assert (s["versus_bicubic"]["hard"]["sr"]["fixed"], s["versus_bicubic"]["hard"]["sr"]["broken"]) == (2, 1)
    for v in results.values():  # rows without per-image readings (read back from JSON) give no comparison
        for row in v.values():
            del row["correct"]
    assert "versus_bicubic" not in ev.summary(results)
