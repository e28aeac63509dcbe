"""The frozen text-focus recognizer stays differentiable under cuDNN without its statistics moving.

cuDNN refuses to run an RNN's backward in eval mode ("cudnn RNN backward can only be called in training mode"): the
default loss failed on every CUDA device that way. These checks run on the CPU and fail if the regression returns.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from glyphsr.recognizers.easyocr_crnn import EasyOCRCRNN
from glyphsr.sr.losses import CRNNTextFocus, GlyphSRLoss, LossConfig
from glyphsr.sr.losses.text_focus import frozen_mode


def _recognizer() -> EasyOCRCRNN:
    torch.manual_seed(0)
    m = EasyOCRCRNN()
    for bn in (x for x in m.modules() if isinstance(x, nn.BatchNorm2d)):  # non-trivial statistics
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    return m


def test_modes_after_train_call() -> None:
    tf = CRNNTextFocus(model=_recognizer())
    crit = GlyphSRLoss(LossConfig(), text_focus=tf)
    crit.train()
    rnns = [m for m in tf.recognizer.modules() if isinstance(m, nn.RNNBase)]
    bns = [m for m in tf.recognizer.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(rnns) == 2 and len(bns) == 2
    assert all(m.training for m in rnns), "recurrent layers must be in training mode for cuDNN's backward"
    assert not any(m.training for m in bns), "frozen BatchNorm must keep its pretrained statistics"
    assert not any(p.requires_grad for p in tf.recognizer.parameters())


def test_outputs_equal_eval_mode_and_statistics_do_not_move() -> None:
    rec = _recognizer()
    reference = copy.deepcopy(rec).eval()
    tf = CRNNTextFocus(model=rec).train()
    x = torch.rand(3, 1, 64, 256) * 2 - 1
    with torch.no_grad():
        assert torch.equal(tf.recognizer(x), reference(x))
    before = {k: v.clone() for k, v in rec.state_dict().items()}
    sr = torch.rand(3, 4, 32, 128, requires_grad=True)
    loss = tf(sr, torch.rand(3, 4, 32, 128), ["abc", "Hello", "12"])
    sum(loss.values()).backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0
    after = rec.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "a frozen tensor moved"


def test_recurrent_dropout_is_refused() -> None:
    m = nn.Sequential(nn.LSTM(4, 4, num_layers=2, dropout=0.1))
    with pytest.raises(ValueError, match="dropout"):
        frozen_mode(m)


def test_precomputed_targets_give_the_same_loss() -> None:
    """The trainer computes the HR view and the CTC targets once per sample; the loss must not change for it."""
    from glyphsr.sr.losses import encode_ctc

    tf = CRNNTextFocus(model=_recognizer()).train()
    sr, hr = torch.rand(3, 4, 32, 128), torch.rand(3, 4, 32, 128)
    labels = ["abc", "Hello!", "x€y"]
    direct = tf(sr, hr, labels)
    pre = tf(sr, None, None, target_p=tf.hr_target(hr), ctc_targets=encode_ctc(labels, width=20))
    for k in direct:
        torch.testing.assert_close(direct[k], pre[k])
    targets, lengths = encode_ctc(labels)
    assert lengths.tolist() == [3, 6, 3] and targets.shape == (3, 6)
