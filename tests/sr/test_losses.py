"""Losses: HOG gradient against finite differences, text focus in both forms, glyph targets, the total."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from glyphsr.recognizers.stt import STTTransformer
from glyphsr.sr.losses import (
    CRNNTextFocus,
    GlyphSRLoss,
    LossConfig,
    STTTextFocus,
    class_targets,
    glyph_targets,
    hog,
    load_wce_table,
    wce_table_from_confusion,
    weighted_cross_entropy,
)
from glyphsr.sr.modeling import SRConfig, build_model


def test_hog_gradient_matches_finite_differences() -> None:
    torch.manual_seed(0)
    x = torch.rand(1, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: hog(t, cell=4), (x,), eps=1e-6, atol=1e-5)


def test_hog_sees_orientation() -> None:
    img = torch.zeros(1, 1, 32, 32)
    img[..., :, 16:] = 1.0  # a vertical edge: horizontal gradient, orientation bin 0
    h = hog(img, cell=8)
    bins = h.view(1, 4, 9, *h.shape[-2:]).sum(dim=(1, 3, 4))[0]
    assert int(bins.argmax()) == 0
    rot = hog(img.transpose(-1, -2), cell=8).view(1, 4, 9, *h.shape[-2:]).sum(dim=(1, 3, 4))[0]
    assert int(rot.argmax()) in (4, 5)  # 90 degrees: between the bins centred at 80 and 100
    torch.testing.assert_close(rot[4], rot[5])


def test_crnn_text_focus() -> None:
    tf = CRNNTextFocus()
    hr = torch.rand(2, 4, 32, 128)
    same = tf(hr, hr, ["Parking", "a1!"])
    assert float(same["tf_att"]) < 1e-6 and torch.isfinite(same["tf_rec"])
    sr = torch.rand(2, 4, 32, 128, requires_grad=True)
    out = tf(sr, hr, ["Parking", "\u00e9t\u00e9"])  # a label with characters outside the charset
    (out["tf_att"] + out["tf_rec"]).backward()
    assert sr.grad.abs().sum() > 0 and all(not p.requires_grad for p in tf.parameters())


def test_stt_text_focus_with_random_weights() -> None:
    torch.manual_seed(0)
    model = STTTransformer()
    hr = torch.rand(2, 3, 32, 128)
    tf = STTTextFocus(model=model)
    same = tf(hr, hr, ["abc", "7up"])
    assert float(same["tf_att"]) == 0 and float(same["tf_rec"]) > 0
    sr = torch.rand(2, 3, 32, 128, requires_grad=True)
    out = tf(sr, hr, ["abc", "7up"])
    (out["tf_att"] + out["tf_rec"]).backward()
    assert sr.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="37x37"):
        STTTextFocus(model=model, wce_table=torch.ones(5, 5))
    with pytest.raises(ValueError, match="checkpoint"):
        STTTextFocus()


def test_weighted_cross_entropy() -> None:
    torch.manual_seed(0)
    logits, target = torch.randn(6, 37), torch.randint(0, 37, (6,))
    torch.testing.assert_close(weighted_cross_entropy(logits, target, torch.ones(37, 37)),
                               F.cross_entropy(logits, target))
    table = torch.ones(37, 37)
    table[target[0], (target[0] + 1) % 37] = 5.0  # a confusable pair weighs more: a larger loss
    assert weighted_cross_entropy(logits, target, table) > F.cross_entropy(logits, target)


def test_targets_known_answers() -> None:
    m = torch.zeros(1, 1, 32, 128)
    m[0, 0, 0, 0:2] = 1  # half of the first 2x2 block
    t = glyph_targets(m)
    assert t.shape == (1, 1, 16, 64) and float(t[0, 0, 0, 0]) == 0.5 and float(t.sum()) == 0.5
    y = class_targets(["a b!", ""], max_chars=4)
    assert y.tolist() == [[11, 12, 63, 0], [0, 0, 0, 0]]  # 'a', 'b', '!' in the 'all' charset; 0 = none


def test_total_loss_terms_follow_the_variant() -> None:
    crit = GlyphSRLoss(LossConfig())
    lr, hr = torch.rand(2, 4, 16, 64), torch.rand(2, 4, 32, 128)
    line = (torch.rand(2, 1, 32, 128) > 0.7).float()
    char = (torch.rand(2, 15, 32, 128) > 0.95).float()
    full = crit(build_model(SRConfig()).train()(lr), hr, ["ab", "c"], line, char)
    assert set(full) == {"pix", "tf_att", "tf_rec", "hog", "line", "char", "cls", "total"}
    torch.testing.assert_close(full["total"], sum(v for k, v in full.items() if k != "total"))
    base = crit(build_model(SRConfig(variant="baseline1")).train()(lr), hr, ["ab", "c"])
    assert set(base) == {"pix", "tf_att", "tf_rec", "hog", "total"}
    with pytest.raises(ValueError, match="text_focus"):
        GlyphSRLoss(LossConfig(text_focus="ctc"))


def test_loss_weights_are_applied_as_configured() -> None:
    """Each term is its unit-weight value times the configured weight: the paper's 1, 1, 0.1, 1 and the text
    focus's 10 / 0.0005 by default, and whatever a configuration says instead."""
    torch.manual_seed(0)
    with torch.no_grad():
        out = build_model(SRConfig()).eval()(torch.rand(2, 4, 16, 64))
    hr = torch.rand(2, 4, 32, 128)
    line = (torch.rand(2, 1, 32, 128) > 0.7).float()
    char = (torch.rand(2, 15, 32, 128) > 0.95).float()
    unit_tf = CRNNTextFocus(w_att=1.0, w_rec=1.0)
    unit = GlyphSRLoss(LossConfig(w_pix=1.0, w_tf=1.0, w_hog=1.0, w_glyph=1.0), text_focus=unit_tf)
    ref = {k: float(v) for k, v in unit(out, hr, ["ab", "c!"], line, char).items() if k != "total"}
    assert all(v > 0 for v in ref.values()), ref  # a zero term would make any weight look right
    cases = [(LossConfig(), 10.0, 0.0005, {"pix": 1, "tf_att": 10, "tf_rec": 0.0005, "hog": 0.1, "line": 1,
                                          "char": 1, "cls": 1}),
             (LossConfig(w_pix=2.0, w_tf=3.0, w_hog=0.5, w_glyph=4.0), 7.0, 0.01,
              {"pix": 2, "tf_att": 21, "tf_rec": 0.03, "hog": 0.5, "line": 4, "char": 4, "cls": 4})]
    for cfg, w_att, w_rec, weight in cases:
        tf = CRNNTextFocus(w_att=w_att, w_rec=w_rec, model=unit_tf.recognizer)
        got = GlyphSRLoss(cfg, text_focus=tf)(out, hr, ["ab", "c!"], line, char)
        assert set(got) == set(weight) | {"total"}
        for k, w in weight.items():
            assert float(got[k]) == pytest.approx(w * ref[k], rel=1e-5), k


def _telescope_reference(data: np.ndarray) -> torch.Tensor:
    """The Scene Text Telescope's load_confuse_matrix, loops and all, as the reference."""
    std = "-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    r = np.concatenate((np.ones((1, 62)), data[:10], data[36:], data[10:36]), axis=0)
    r = np.concatenate((np.ones((63, 1)), r), axis=1)
    with np.errstate(divide="ignore"):
        r = 1 / r
    r[r == np.inf] = 1
    for i in range(63):
        for j in range(63):
            if i != j and std[j] in "abcdefghijklmnopqrstuvwxyz":
                r[i][j] = max(r[i][j], r[i][j + 26])
    return torch.tensor(r[:37, :37], dtype=torch.float32)


def test_wce_table_from_the_telescopes_confusion_matrix(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = rng.uniform(0.2, 3.5, (62, 62))
    data[rng.random((62, 62)) < 0.1] = 0.0  # zeros become weight 1
    np.fill_diagonal(data, 0.0)
    path = tmp_path / "confuse.pkl"
    with path.open("wb") as f:
        pickle.dump(data, f)
    table = load_wce_table(path)
    assert table.shape == (37, 37)
    torch.testing.assert_close(table, _telescope_reference(data))
    assert torch.equal(wce_table_from_confusion(data), table)
    with pytest.raises(ValueError, match="62 x 62"):
        wce_table_from_confusion(np.ones((10, 10)))
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")  # a pickle that would run a shell command
    with pytest.raises(ValueError, match="refusing to load os.system"):
        load_wce_table(evil)
    with pytest.raises(FileNotFoundError):
        load_wce_table(tmp_path / "missing.pkl")


def test_smoothed_crnn_text_focus_is_blind_to_alternating_rows_and_columns() -> None:
    """loss.tf_smooth: the [1, 2, 1] filters remove patterns alternating from row to row and from column to column
    exactly, so the smoothed text focus cannot pull SR towards stripes (the plain one sees them); HR targets are
    smoothed alike."""
    from glyphsr.sr.losses.text_focus import smooth_nyquist

    torch.manual_seed(0)
    plain = CRNNTextFocus()
    smooth = CRNNTextFocus(model=plain.recognizer, smooth=True)
    sr, hr = torch.rand(2, 4, 32, 128) * 0.5 + 0.25, torch.rand(2, 4, 32, 128)
    rows = 0.2 * (-1.0) ** torch.arange(32.0)[:, None].expand(32, 128)
    cols = 0.2 * (-1.0) ** torch.arange(128.0)[None, :].expand(32, 128)
    for stripes in (rows, cols, rows * cols * 5):  # the last: a checkerboard
        torch.testing.assert_close(smooth_nyquist(stripes[None, None]), torch.zeros(1, 1, 32, 128))
    torch.testing.assert_close(smooth_nyquist(torch.full((1, 1, 5, 3), 0.3)), torch.full((1, 1, 5, 3), 0.3))
    ramp = torch.arange(12.0).view(1, 1, 3, 4)  # linear inside: unchanged away from the borders
    torch.testing.assert_close(smooth_nyquist(ramp)[..., 1:-1, 1:-1], ramp[..., 1:-1, 1:-1])
    with torch.no_grad():
        for stripes in (rows, cols):
            for tf, blind in ((smooth, True), (plain, False)):
                a = tf(sr, hr, ["word", "text"])["tf_att"]
                b = tf(sr + stripes, hr, ["word", "text"])["tf_att"]
                assert torch.allclose(a, b, atol=1e-6) == blind
    torch.testing.assert_close(smooth.hr_target(hr), plain.hr_target(smooth_nyquist(hr)))
    assert GlyphSRLoss(LossConfig()).text_focus.smooth  # the default since the stripes of 2026-11-28
    assert not GlyphSRLoss(LossConfig(tf_smooth=False)).text_focus.smooth
