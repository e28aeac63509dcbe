"""CRNN (Shi et al. 2017) as the STISR papers judge with it: meijieru/crnn.pytorch's ``CRNN(32, 1, 37, 256)`` with
the parameter names of its ``crnn.pth`` (``models/crnn.py``), so that file loads strictly.

- network: seven 3x3/2x2 convolutions (``cnn.conv0`` .. ``cnn.conv6``, BatchNorm after conv2, conv4 and conv6 as
  ``cnn.batchnorm{i}``), four max-pools; two bidirectional LSTMs (``rnn.0``: 512 -> 256, ``rnn.1``: 256 -> 37), each
  ``rnn`` (nn.LSTM, sequence first) + ``embedding`` (Linear); grey 32x100 -> T = 26 steps of 37 logits.
- classes: 0 = CTC blank, 1..36 = ``0-9a-z``; best-path (greedy) CTC decoding.
- input as the STISR evaluation code feeds it (TextZoom/TPGSR ``parse_crnn_data``): RGB in [0, 1] resized bicubic to
  32x100, then grey by ITU-R 601 weights, **left in [0, 1]**. meijieru's own demo normalises to [-1, 1]; the STISR
  papers' CRNN numbers were measured on [0, 1] input, and we keep that quirk so they are comparable.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from glyphsr.data.labels import CHARSET_LOWER
from glyphsr.recognizers.judges.common import OfficialJudge, check_images, luma, resize

#: Logit index i is CHARSET[i]; index 0 is the CTC blank.
CHARSET = "-" + CHARSET_LOWER
INPUT_SIZE = (32, 100)


class BidirectionalLSTM(nn.Module):
    """Sequence-first BiLSTM and a linear layer: (T, B, n_in) -> (T, B, n_out). Also MORAN's (same names)."""

    def __init__(self, n_in: int, n_hidden: int, n_out: int):
        super().__init__()
        self.rnn = nn.LSTM(n_in, n_hidden, bidirectional=True)
        self.embedding = nn.Linear(n_hidden * 2, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        recurrent, _ = self.rnn(x)  # (T, B, 2 * n_hidden)
        return self.embedding(recurrent)


class CRNN(nn.Module):
    """meijieru's CRNN. ``forward(x)``: grey (B, nc, 32, W) -> logits (T, B, nclass), T = W / 4 + 1."""

    def __init__(self, img_h: int = 32, nc: int = 1, nclass: int = len(CHARSET), nh: int = 256):
        super().__init__()
        if img_h % 16:
            raise ValueError(f"img_h must be a multiple of 16, got {img_h}")
        channels = [nc, 64, 128, 256, 256, 512, 512, 512]
        batchnorm = {2, 4, 6}
        # after conv i: (name, pool); the comments give the feature size for a 32x100 input
        pools = {0: ("pooling0", nn.MaxPool2d(2, 2)),  # 64 x 16 x 50
                 1: ("pooling1", nn.MaxPool2d(2, 2)),  # 128 x 8 x 25
                 3: ("pooling2", nn.MaxPool2d((2, 2), (2, 1), (0, 1))),  # 256 x 4 x 26
                 5: ("pooling3", nn.MaxPool2d((2, 2), (2, 1), (0, 1)))}  # 512 x 2 x 27; conv6 (k2, p0): 512 x 1 x 26
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for i in range(7):
            k, p = (2, 0) if i == 6 else (3, 1)
            layers[f"conv{i}"] = nn.Conv2d(channels[i], channels[i + 1], k, 1, p)
            if i in batchnorm:
                layers[f"batchnorm{i}"] = nn.BatchNorm2d(channels[i + 1])
            layers[f"relu{i}"] = nn.ReLU(True)
            if i in pools:
                layers[pools[i][0]] = pools[i][1]
        self.cnn = nn.Sequential(layers)
        self.rnn = nn.Sequential(BidirectionalLSTM(512, nh, nh), BidirectionalLSTM(nh, nh, nclass))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.cnn(x)  # (B, 512, 1, T)
        if conv.shape[2] != 1:
            raise ValueError(f"CRNN needs inputs 32 pixels high, got {tuple(x.shape)}")
        return self.rnn(conv.squeeze(2).permute(2, 0, 1))  # (T, B, 512) -> (T, B, nclass)


def ctc_greedy_decode(logits: torch.Tensor, charset: str = CHARSET) -> list[str]:
    """Best-path CTC decoding of (B, T, C) logits, class 0 the blank: repeats merged, then blanks dropped."""
    best = logits.argmax(-1)  # (B, T)
    new = torch.ones_like(best, dtype=torch.bool)
    new[:, 1:] = best[:, 1:] != best[:, :-1]
    keep = (new & (best != 0)).cpu()
    best = best.cpu()
    return ["".join(charset[i] for i in row[k].tolist()) for row, k in zip(best, keep)]


class CRNNJudge(OfficialJudge):
    """The CRNN judge: ``recognize_tensor`` on RGB (B, 3, H, W) in [0, 1] -> B strings over ``0-9a-z``."""

    name, title, weights_file = "crnn", "CRNN", "crnn.pth of meijieru/crnn.pytorch"
    architecture = CRNN

    @torch.inference_mode()
    def recognize_tensor(self, images: torch.Tensor) -> list[str]:
        check_images(images)
        x = luma(resize(images, INPUT_SIZE))  # (B, 1, 32, 100) in [0, 1]: the STISR code's input, see the docstring
        return ctc_greedy_decode(self.model(x).transpose(0, 1))  # (T, B, 37) -> (B, T, 37)
