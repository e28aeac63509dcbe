"""MORAN v2 (Luo et al. 2019) as the STISR papers judge with it: Canjie-Luo/MORAN_v2's
``MORAN(1, 37, 256, 32, 100, BidirDecoder=True)`` with the parameter names of its ``demo.pth`` (saved from
DataParallel: every key starts with ``module.``, stripped on loading), so that file loads strictly.

- ``MORN`` (``models/morn.py``): a small CNN (``MORN.cnn``) predicts a coarse vertical offset map; the grey image is
  resampled along it, and once more after a second pass over the rectified image (the test-time ``enhance=1``).
- ``ASRN`` (``models/asrn_res.py``): a 5-stage ResNet (``ASRN.cnn.block0`` .. ``block5``) -> (B, 512, 1, 25), two
  BiLSTMs (``ASRN.rnn``), and two attention decoders (``attentionL2R``, ``attentionR2L``: GRU cell, additive
  attention, ``char_embeddings`` with row 0 the start token). Only left-to-right is read, as the STISR code does;
  right-to-left is kept so the file loads.
- classes: ``0-9a-z`` then ``$`` (the end, index 36); greedy decoding over 20 steps, cut at the first ``$``.
- input as the STISR evaluation code feeds it (TextZoom/TPGSR ``parse_moran_data``): RGB in [0, 1] resized bicubic to
  32x100, grey by ITU-R 601 weights, **left in [0, 1]** (MORAN's own demo normalises to [-1, 1]).

``F.grid_sample`` runs with ``align_corners=True``: the behaviour of the PyTorch MORAN was trained with (0.3) and
that TPGSR names (1.2), before the default changed in 1.3 (TextZoom allows 1.0.1 to 1.5); MORN's sampling grid, from
-1 to 1 at the pixel centres, assumes it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from glyphsr.data.labels import CHARSET_LOWER
from glyphsr.recognizers.judges.common import OfficialJudge, check_images, luma, resize
from glyphsr.recognizers.judges.crnn import BidirectionalLSTM

#: Class i is CHARSET[i]; "$" ends the text.
CHARSET = CHARSET_LOWER + "$"
END = len(CHARSET) - 1
INPUT_SIZE = (32, 100)
MAX_STEPS = 20  # the STISR code's ``max_iter``


class MORN(nn.Module):
    """MORAN's rectifier: grey (B, nc, H, W) -> (B, nc, target_h, target_w), resampled along predicted vertical
    offsets."""

    def __init__(self, nc: int = 1, target_h: int = 32, target_w: int = 100, enhance: int = 1):
        super().__init__()
        self.target_h, self.target_w, self.enhance = target_h, target_w, enhance

        def conv_bn(c_in: int, c_out: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, 1, 1), nn.BatchNorm2d(c_out)]

        self.cnn = nn.Sequential(  # 32x100 -> 16x50 -> 8x25 -> 4x12 -> offsets (B, 1, 4, 12)
            nn.MaxPool2d(2, 2),
            *conv_bn(nc, 64), nn.ReLU(True), nn.MaxPool2d(2, 2),
            *conv_bn(64, 128), nn.ReLU(True), nn.MaxPool2d(2, 2),
            *conv_bn(128, 64), nn.ReLU(True),
            *conv_bn(64, 16), nn.ReLU(True),
            *conv_bn(16, 1))
        self.pool = nn.MaxPool2d(2, 1)
        # the identity sampling grid (1, H, W, 2) as (x, y) in [-1, 1], computed as MORAN does (float64, then float32)
        xs = torch.arange(target_w, dtype=torch.float64) * 2.0 / (target_w - 1) - 1
        ys = torch.arange(target_h, dtype=torch.float64) * 2.0 / (target_h - 1) - 1
        grid = torch.stack([xs.expand(target_h, -1), ys[:, None].expand(-1, target_w)], -1)
        self.register_buffer("grid", grid[None].float(), persistent=False)

    def _offsets(self, x: torch.Tensor) -> torch.Tensor:
        """Vertical offsets (B, H, W, 1) predicted from ``x``: positive and negative parts max-pooled apart."""
        o = self.cnn(x)
        o = self.pool(F.relu(o)) - self.pool(F.relu(-o))  # (B, 1, 3, 11)
        grid = self.grid.expand(x.shape[0], -1, -1, -1)
        return F.grid_sample(o, grid, align_corners=True).permute(0, 2, 3, 1)  # (B, H, W, 1)

    def _sample(self, x: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        grid = self.grid.expand(x.shape[0], -1, -1, -1)
        return F.grid_sample(x, torch.cat([grid[..., :1], grid[..., 1:] + offsets], 3), align_corners=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        small = x
        if tuple(x.shape[-2:]) != (self.target_h, self.target_w):
            small = F.interpolate(x, (self.target_h, self.target_w), mode="bilinear", align_corners=False)
        offsets = self._offsets(small)
        rectified = self._sample(x, offsets)
        for _ in range(self.enhance):
            offsets = offsets + self._offsets(rectified)
            rectified = self._sample(x, offsets)
        return rectified


class ResidualBlock(nn.Module):
    """MORAN's ``Residual_block``: a strided block has a 3x3 first convolution and a 3x3 projection shortcut;
    a stride-1 block a 1x1 first convolution and the identity."""

    def __init__(self, c_in: int, c_out: int, stride: int | tuple[int, int]):
        super().__init__()
        strided = (stride[0] if isinstance(stride, tuple) else stride) > 1

        def conv_bn(ci: int, co: int, k: int, s: int | tuple[int, int]) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(ci, co, k, s, k // 2), nn.BatchNorm2d(co, momentum=0.01))

        self.downsample = conv_bn(c_in, c_out, 3, stride) if strided else None
        self.conv1 = conv_bn(c_in, c_out, 3 if strided else 1, stride)
        self.conv2 = conv_bn(c_out, c_out, 3, 1)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(residual + self.conv2(self.conv1(x)))


class ResNet(nn.Module):
    """ASRN's backbone: (B, c_in, 32, 100) -> (B, 512, 1, 25)."""

    def __init__(self, c_in: int = 1):
        super().__init__()
        self.block0 = nn.Sequential(nn.Conv2d(c_in, 32, 3, 1, 1), nn.BatchNorm2d(32, momentum=0.01))
        plan = [(32, 32, 2, 3), (32, 64, 2, 4), (64, 128, (2, 1), 6), (128, 256, (2, 1), 6), (256, 512, (2, 1), 3)]
        for i, (c_in_, c_out, stride, repeat) in enumerate(plan, 1):  # 16x50, 8x25, 4x25, 2x25, 1x25
            blocks = [ResidualBlock(c_in_, c_out, stride)] + [ResidualBlock(c_out, c_out, 1) for _ in range(repeat - 1)]
            setattr(self, f"block{i}", nn.Sequential(*blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block0(x)
        for i in range(1, 6):
            x = getattr(self, f"block{i}")(x)
        return x


class AttentionCell(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, num_embeddings: int = 128):
        super().__init__()
        self.i2h = nn.Linear(input_size, hidden_size, bias=False)
        self.h2h = nn.Linear(hidden_size, hidden_size)
        self.score = nn.Linear(hidden_size, 1, bias=False)
        self.rnn = nn.GRUCell(input_size + num_embeddings, hidden_size)

    def forward(self, hidden: torch.Tensor, feats: torch.Tensor, feats_proj: torch.Tensor,
                embeddings: torch.Tensor) -> torch.Tensor:
        """``hidden`` (B, h), ``feats`` (T, B, C), ``feats_proj`` = i2h(feats) (T, B, h), ``embeddings`` (B, E)
        -> the next hidden state (B, h). Test-time form: plain attention (no fractional pickup)."""
        emission = self.score(torch.tanh(feats_proj + self.h2h(hidden)[None])).squeeze(-1)  # (T, B)
        alpha = F.softmax(emission, dim=0)
        context = (feats * alpha[..., None]).sum(0)  # (B, C)
        return self.rnn(torch.cat([context, embeddings], 1), hidden)


class Attention(nn.Module):
    """One of ASRN's attention decoders; :meth:`greedy` is MORAN's test-time decoding."""

    def __init__(self, input_size: int, hidden_size: int, num_classes: int, num_embeddings: int = 128):
        super().__init__()
        self.attention_cell = AttentionCell(input_size, hidden_size, num_embeddings)
        self.generator = nn.Linear(hidden_size, num_classes)
        self.char_embeddings = nn.Parameter(torch.randn(num_classes + 1, num_embeddings))  # row 0: start
        self.hidden_size = hidden_size

    def greedy(self, feats: torch.Tensor, steps: int, end: int | None = None) -> torch.Tensor:
        """``feats`` (T, B, C) -> logits (B, steps', num_classes), each step fed the previous arg-max; stops early
        once every sequence has emitted ``end`` (what follows it is never read)."""
        b = feats.shape[1]
        proj = self.attention_cell.i2h(feats)  # (T, B, h)
        hidden = feats.new_zeros(b, self.hidden_size)
        prev = torch.zeros(b, dtype=torch.long, device=feats.device)
        ended = torch.zeros(b, dtype=torch.bool, device=feats.device)
        logits = []
        for _ in range(steps):
            hidden = self.attention_cell(hidden, feats, proj, self.char_embeddings[prev])
            logits.append(self.generator(hidden))
            best = logits[-1].argmax(1)
            prev = best + 1
            if end is not None:
                ended |= best == end
                if bool(ended.all()):
                    break
        return torch.stack(logits, 1)


class ASRN(nn.Module):
    """MORAN's recognizer. ``forward(x)``: rectified grey (B, nc, 32, 100) -> sequence features (25, B, nh)."""

    def __init__(self, img_h: int = 32, nc: int = 1, nclass: int = len(CHARSET), nh: int = 256,
                 bidir_decoder: bool = True):
        super().__init__()
        if img_h % 16:
            raise ValueError(f"img_h must be a multiple of 16, got {img_h}")
        self.cnn = ResNet(nc)
        self.rnn = nn.Sequential(BidirectionalLSTM(512, nh, nh), BidirectionalLSTM(nh, nh, nh))
        if bidir_decoder:
            self.attentionL2R = Attention(nh, nh, nclass, 256)
            self.attentionR2L = Attention(nh, nh, nclass, 256)
        else:
            self.attention = Attention(nh, nh, nclass, 256)

    @property
    def decoder(self) -> Attention:
        """The left-to-right decoder, the one the STISR code reads."""
        return self.attentionL2R if hasattr(self, "attentionL2R") else self.attention

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.cnn(x)  # (B, 512, 1, T)
        if conv.shape[2] != 1:
            raise ValueError(f"ASRN needs inputs 32 pixels high, got {tuple(x.shape)}")
        return self.rnn(conv.squeeze(2).permute(2, 0, 1).contiguous())  # (T, B, nh)


class MORAN(nn.Module):
    """``MORAN(nc, nclass, nh, targetH, targetW, BidirDecoder)``. ``forward(x)``: grey (B, nc, 32, 100) ->
    logits (B, steps, nclass) of the left-to-right decoder, greedy."""

    def __init__(self, nc: int = 1, nclass: int = len(CHARSET), nh: int = 256, target_h: int = 32,
                 target_w: int = 100, bidir_decoder: bool = True, steps: int = MAX_STEPS, end: int | None = END):
        super().__init__()
        self.steps, self.end = steps, end
        self.MORN = MORN(nc, target_h, target_w)
        self.ASRN = ASRN(target_h, nc, nclass, nh, bidir_decoder)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ASRN.decoder.greedy(self.ASRN(self.MORN(x)), self.steps, self.end)


def logits_to_text(logits: torch.Tensor) -> list[str]:
    """(B, steps, 37) -> the arg-max characters up to the first ``$``."""
    return ["".join(CHARSET[i] for i in row).split("$")[0] for row in logits.argmax(-1).tolist()]


class MORANJudge(OfficialJudge):
    """The MORAN judge: ``recognize_tensor`` on RGB (B, 3, H, W) in [0, 1] -> B strings over ``0-9a-z``."""

    name, title, weights_file = "moran", "MORAN", "demo.pth of Canjie-Luo/MORAN_v2"
    architecture = MORAN  # the file's ``module.`` prefixes are stripped by the default transform

    @torch.inference_mode()
    def recognize_tensor(self, images: torch.Tensor) -> list[str]:
        check_images(images)
        x = luma(resize(images, INPUT_SIZE))  # (B, 1, 32, 100) in [0, 1]: the STISR code's input
        return logits_to_text(self.model(x))
