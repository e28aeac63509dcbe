"""Text focus loss L_tf (paper, equation 6): a frozen recognizer's view of SR pulled towards its view of HR.

Two forms behind one call, ``loss(sr, hr, labels) -> {"tf_att": ..., "tf_rec": ...}`` (weighted terms):
- ``STTTextFocus`` (the paper's): the Scene Text Telescope transformer, teacher-forced with the label on the gray
  32x128 SR and HR images; L1 between their cross-attention maps (B, 16, T, 256) plus the weighted cross-entropy
  (WCE) of SR's predictions against the label. Needs ``pretrain_transformer.pth`` (not obtainable here; tested
  with random weights). The WCE table is the Telescope's inverted confusion matrix (37 x 37), built from its
  ``confuse.pkl`` by :func:`load_wce_table` exactly as the Telescope code builds it; without it every weight is 1
  and WCE is plain cross-entropy.
- ``CRNNTextFocus`` (the offline default): EasyOCR's pretrained english_g2 CRNN, frozen; L1 between the per-step
  class probabilities of SR and HR (B, 63, 97) plus CTC of SR against the label (characters outside the CRNN's
  charset dropped from the target).
Default weights are the Telescope code's: 10 for the attention/probability L1, 0.0005 for the recognition term.
The recognizer's parameters never train; gradients reach SR through its input.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from glyphsr.data.textzoom import HR_SIZE
from glyphsr.recognizers.easyocr_crnn import CHARSET, load_easyocr_crnn
from glyphsr.recognizers.images import luma
from glyphsr.recognizers.stt import STT_CHARSET, STTTransformer, encode_labels, load_stt
from glyphsr.sr.modeling.resize import resize
from glyphsr.sr.modeling.tpg import crnn_input

_CRNN_INDEX = {c: i + 1 for i, c in enumerate(CHARSET)}


def _freeze(model: nn.Module) -> nn.Module:
    for p in model.parameters():
        p.requires_grad_(False)
    return frozen_mode(model)


def frozen_mode(model: nn.Module) -> nn.Module:
    """Put a frozen recognizer in the mode it is used in: eval (BatchNorm keeps its pretrained statistics,
    dropout is off), except its recurrent layers, which go to training mode: cuDNN refuses to differentiate an
    RNN in eval mode ("cudnn RNN backward can only be called in training mode"), and gradients must reach SR
    through the recognizer. A recurrent layer with dropout would then drop units, so one is refused."""
    model.eval()
    for m in model.modules():
        if isinstance(m, nn.RNNBase):
            if m.dropout:
                raise ValueError(f"frozen recognizer has a recurrent layer with dropout {m.dropout}: training mode "
                                 "(needed for cuDNN's backward) would change its outputs")
            m.train()
    return model


_TELESCOPE_ORDER = "-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def wce_table_from_confusion(data: np.ndarray) -> torch.Tensor:
    """The Scene Text Telescope's WCE table from its 62 x 62 confusion matrix (rows and columns in the order
    ``0-9A-Za-z``), as its ``load_confuse_matrix`` builds it: rows reordered to end, digits, lower, upper (the
    columns keep the file's order behind a prepended end column: the original reorders rows only), an end row and
    column of ones, the reciprocal (1 / 0 -> 1), each lowercase column off the diagonal raised to the maximum of
    itself and the column 26 places on, then the top-left 37 x 37 (end, digits, a-z)."""
    data = np.asarray(data, dtype=np.float64)
    if data.shape != (62, 62):
        raise ValueError(f"the Telescope's confusion matrix is 62 x 62, got {data.shape}")
    rows = np.concatenate([np.ones((1, 62)), data[:10], data[36:], data[10:36]], axis=0)  # (63, 62)
    m = np.concatenate([np.ones((63, 1)), rows], axis=1)  # (63, 63)
    with np.errstate(divide="ignore"):
        m = 1.0 / m
    m[np.isinf(m)] = 1.0
    lower = np.array([c.islower() for c in _TELESCOPE_ORDER])
    cols = np.flatnonzero(lower)  # 11..36
    raised = np.maximum(m[:, cols], m[:, cols + 26])
    off_diag = np.arange(63)[:, None] != cols[None, :]
    m[:, cols] = np.where(off_diag, raised, m[:, cols])
    return torch.tensor(m[:37, :37], dtype=torch.float32)


class _NumpyOnly(pickle.Unpickler):
    """Unpickle numpy arrays and nothing else (``confuse.pkl`` is a pickle: never run what a file says)."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only numpy arrays are expected)")
        return super().find_class(module, name)


def load_wce_table(path: str | os.PathLike) -> torch.Tensor:
    """The WCE table (37 x 37) from the Telescope's ``confuse.pkl``."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"confusion matrix not found: {p}")
    try:
        with p.open("rb") as f:
            data = _NumpyOnly(f).load()
    except Exception as exc:
        raise ValueError(f"cannot read {p} as the Telescope's confuse.pkl: {exc}") from None
    return wce_table_from_confusion(data)


def weighted_cross_entropy(logits: torch.Tensor, target: torch.Tensor, table: torch.Tensor | None) -> torch.Tensor:
    """STT's WCE over N predictions: logits (N, D), target (N,) -> mean of
    -log(W[y, y] e^{z_y} / sum_j W[y, j] e^{z_j}); W = 1 everywhere gives cross-entropy."""
    if table is None:
        return F.cross_entropy(logits, target)
    logw = torch.log(table.to(logits.dtype))[target]  # (N, D)
    z = logits + logw
    return (torch.logsumexp(z, dim=1) - z.gather(1, target[:, None])[:, 0]).mean()


def smooth_nyquist(images: torch.Tensor) -> torch.Tensor:
    """A [1, 2, 1] / 4 filter along the height and then along the width, reflect-padded: it removes exactly the
    patterns that alternate from row to row and from column to column (the Nyquist frequencies) and so keeps any
    gradient through it free of them."""
    x = F.pad(images, (0, 0, 1, 1), mode="reflect")
    x = 0.25 * x[..., :-2, :] + 0.5 * x[..., 1:-1, :] + 0.25 * x[..., 2:, :]
    x = F.pad(x, (1, 1, 0, 0), mode="reflect")
    return 0.25 * x[..., :-2] + 0.5 * x[..., 1:-1] + 0.25 * x[..., 2:]


class CRNNTextFocus(nn.Module):
    """``smooth``: the SR and HR images pass :func:`smooth_nyquist` before the recognizer. Its max-pools halve the
    height four times and the width twice and pass the gradient to one pixel of each pair; without the filter the
    loss drew stripes on alternate rows in short CPU runs (README, the demo), and on alternate columns in 3.6 minutes
    on an H200 (2026-11-28), where 58% of its gradient on the SR image alternated from column to column."""

    def __init__(self, weights: str | None = None, w_att: float = 10.0, w_rec: float = 0.0005,
                 model: nn.Module | None = None, smooth: bool = False):
        super().__init__()
        self.recognizer = _freeze(model if model is not None else load_easyocr_crnn(weights))
        self.w_att, self.w_rec = w_att, w_rec
        self.smooth = smooth

    def _input(self, images: torch.Tensor) -> torch.Tensor:
        rgb = images[:, :3]
        return crnn_input(smooth_nyquist(rgb) if self.smooth else rgb)

    def train(self, mode: bool = True) -> CRNNTextFocus:
        super().train(mode)
        frozen_mode(self.recognizer)  # BN statistics stay the pretrained ones; LSTMs differentiable by cuDNN
        return self

    @torch.no_grad()
    def hr_target(self, hr: torch.Tensor) -> torch.Tensor:
        """The recognizer's per-step probabilities of HR (B, T, D): what SR is pulled towards. It depends on HR
        alone, so a trainer computes it once per sample and passes it back as ``target_p``."""
        return self.recognizer(self._input(hr)).float().softmax(-1)

    def forward(self, sr: torch.Tensor, hr: torch.Tensor | None, labels: list[str] | None, *,
                target_p: torch.Tensor | None = None,
                ctc_targets: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """``target_p``: precomputed :meth:`hr_target` (else computed from ``hr``); ``ctc_targets``: precomputed
        :func:`encode_ctc` of the labels, (B, S) padded indices and (B,) lengths (else encoded from ``labels``)."""
        logits = self.recognizer(self._input(sr))  # (B, T, D)
        if target_p is None:
            target_p = self.hr_target(hr)
        att = F.l1_loss(logits.float().softmax(-1), target_p.float())
        if ctc_targets is None:
            ctc_targets = encode_ctc(labels)
        targets, lengths = ctc_targets
        b, t = logits.shape[:2]
        ctc = F.ctc_loss(logits.float().log_softmax(-1).permute(1, 0, 2), targets.to(sr.device),
                         torch.full((b,), t, dtype=torch.long, device=sr.device), lengths.to(sr.device),
                         blank=0, reduction="mean", zero_infinity=True)
        return {"tf_att": self.w_att * att, "tf_rec": self.w_rec * ctc}


def encode_ctc(labels: list[str], width: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels -> the CRNN text focus's CTC targets: (B, S) indices padded with 0 and (B,) lengths; characters
    outside the CRNN's charset are dropped. ``width`` pads to a fixed S (at least the longest label)."""
    seqs = [[_CRNN_INDEX[c] for c in label if c in _CRNN_INDEX] for label in labels]
    s = max([len(q) for q in seqs] + [1, width or 0])
    out = torch.zeros(len(seqs), s, dtype=torch.long)
    for i, q in enumerate(seqs):
        out[i, :len(q)] = torch.tensor(q, dtype=torch.long)
    return out, torch.tensor([len(q) for q in seqs], dtype=torch.long)


class STTTextFocus(nn.Module):
    def __init__(self, checkpoint: str | None = None, w_att: float = 10.0, w_rec: float = 0.0005,
                 wce_table: torch.Tensor | None = None, model: STTTransformer | None = None):
        super().__init__()
        if model is None:
            if checkpoint is None:
                raise ValueError("the paper's text focus loss needs the STT checkpoint (pretrain_transformer.pth)")
            model = load_stt(checkpoint)
        self.model = _freeze(model)
        self.w_att, self.w_rec = w_att, w_rec
        n = len(STT_CHARSET)
        if wce_table is not None and tuple(wce_table.shape) != (n, n):
            raise ValueError(f"WCE table must be {n}x{n}, got {tuple(wce_table.shape)}")
        self.register_buffer("wce_table", wce_table, persistent=False)

    def train(self, mode: bool = True) -> STTTextFocus:
        super().train(mode)
        frozen_mode(self.model)
        return self

    def forward(self, sr: torch.Tensor, hr: torch.Tensor, labels: list[str]) -> dict[str, torch.Tensor]:
        tokens, targets = encode_labels(labels)
        tokens = tokens.to(sr.device)
        g_sr = resize(luma(sr), HR_SIZE, "bilinear")
        g_hr = resize(luma(hr), HR_SIZE, "bilinear")
        logits, attn = self.model(g_sr, tokens)  # (B, T, 37), (B, 16, T, 256)
        with torch.no_grad():
            _, attn_hr = self.model(g_hr, tokens)
        # step t predicts character t, and after the last character the end symbol '-' (index 0)
        b, t = tokens.shape
        tgt = torch.full((b, t), -1, dtype=torch.long)
        for i, s in enumerate(targets):  # characters outside the charset stay -1: not supervised
            tgt[i, :len(s)] = torch.tensor(s, dtype=torch.long)
            if len(s) < t:
                tgt[i, len(s)] = 0
        valid = (tgt >= 0).to(sr.device)
        step_valid = valid[:, None, :, None].to(attn.dtype)  # attention of steps that stand for something
        count = (step_valid.sum() * attn.shape[1] * attn.shape[-1]).clamp_min(1)  # valid steps x heads x 256
        att = (torch.abs(attn - attn_hr) * step_valid).sum() / count
        tgt = tgt.to(sr.device)
        rec = weighted_cross_entropy(logits[valid], tgt[valid], self.wce_table) if valid.any() else logits.sum() * 0
        return {"tf_att": self.w_att * att, "tf_rec": self.w_rec * rec}
