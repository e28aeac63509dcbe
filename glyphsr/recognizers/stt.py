"""The Scene Text Telescope transformer recognizer (FudanVI/FudanOCR, ``loss/transformer.py``): GEM's ``stt``
attention (the paper's 2D position attention) and the text-focus loss in the paper's form both use it.

Architecture, with the parameter names of the official ``pretrain_transformer.pth`` (saved from DataParallel,
hence a ``module.`` prefix that the loader strips):

- ``encoder.cnn``: ResNet on a 1-channel gray 32x128 image: conv 64, pool, conv 128, pool, stages of [1, 2, 5, 3]
  basic blocks (256, 256, 512, 512 channels, each followed by a 3x3 conv + BN + ReLU), a final 3x3 conv to 1024:
  features (B, 1024, 8, 32).
- ``embedding_word`` (37 x 512, scaled by sqrt(512)) concatenated with a 512-d sinusoidal ``pe``: d_model 1024.
- ``decoder``: one layer: masked self-attention, cross-attention over the 256 feature positions (16 heads), a
  2048-wide feed-forward, each with the original's LayerNorm (unbiased std, eps added to the std).
- ``generator_word``: Linear(1024, 37). Charset ``-0123456789abcdefghijklmnopqrstuvwxyz`` ('-' = end).

Teacher forcing: the decoder input is [0, c_1, ..., c_{n}] for label c_1..c_n + '-'; the cross-attention of step
t (B, 16, 256), averaged over heads, reshaped to 8x32 and upsampled x4, is character t's position attention.
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from torch import nn

from glyphsr.recognizers.checkpoints import load_weights

STT_CHARSET = "-0123456789abcdefghijklmnopqrstuvwxyz"


class STTLayerNorm(nn.Module):
    """The original's LayerNorm: (x - mean) / (unbiased std + eps) * a_2 + b_2."""

    def __init__(self, features: int, eps: float = 1e-6):
        super().__init__()
        self.a_2 = nn.Parameter(torch.ones(features))
        self.b_2 = nn.Parameter(torch.zeros(features))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a_2 * (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + self.eps) + self.b_2


class MultiHeadedAttention(nn.Module):
    """Returns (output (B, T, d), attention (B, h, T, S))."""

    def __init__(self, h: int, d_model: int, dropout: float = 0.1):
        super().__init__()
        self.d_k, self.h = d_model // h, h
        self.linears = nn.ModuleList([nn.Linear(d_model, d_model) for _ in range(4)])
        self.dropout = nn.Dropout(dropout)
        self.compress_attention_linear = nn.Linear(h, 1)  # in the checkpoint, unused by the forward pass

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None):
        b = q.shape[0]
        q, k, v = [lin(x).view(b, -1, self.h, self.d_k).transpose(1, 2) for lin, x in zip(self.linears, (q, k, v))]
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_k)  # (B, h, T, S)
        if mask is not None:
            scores = scores.masked_fill(~mask[:, None], float("-inf"))
        p = F.softmax(scores, dim=-1)
        x = (self.dropout(p) @ v).transpose(1, 2).reshape(b, -1, self.h * self.d_k)
        return self.linears[3](x), p


class BasicBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, downsample: nn.Module | None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, 1, 1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(out + (self.downsample(x) if self.downsample is not None else x))


class STTResNet(nn.Module):
    def __init__(self, layers: tuple[int, ...] = (1, 2, 5, 3)):
        super().__init__()
        self.conv1, self.bn1, self.relu1 = nn.Conv2d(1, 64, 3, 1, 1), nn.BatchNorm2d(64), nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2, self.bn2, self.relu2 = nn.Conv2d(64, 128, 3, 1, 1), nn.BatchNorm2d(128), nn.ReLU(inplace=True)
        self.layer1_pool = nn.MaxPool2d(2, 2)
        widths = [(128, 256), (256, 256), (256, 512), (512, 512)]
        for i, ((cin, cout), n) in enumerate(zip(widths, layers), start=1):
            setattr(self, f"layer{i}_pool", nn.MaxPool2d(2, 2))  # only layer1's is applied, as in the original
            setattr(self, f"layer{i}", self._stage(cin, cout, n))
            if i < 4:
                setattr(self, f"layer{i}_conv", nn.Conv2d(cout, cout, 3, 1, 1))
                setattr(self, f"layer{i}_bn", nn.BatchNorm2d(cout))
                setattr(self, f"layer{i}_relu", nn.ReLU(inplace=True))
        self.layer4_conv2 = nn.Conv2d(512, 1024, 3, 1, 1)
        self.layer4_conv2_bn = nn.BatchNorm2d(1024)
        self.layer4_conv2_relu = nn.ReLU(inplace=True)

    @staticmethod
    def _stage(cin: int, cout: int, n: int) -> nn.Sequential:
        down = nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1), nn.BatchNorm2d(cout)) if cin != cout else None
        return nn.Sequential(BasicBlock(cin, cout, down), *[BasicBlock(cout, cout, None) for _ in range(n - 1)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, 32, 128) -> (B, 1024, 8, 32)
        x = self.pool(self.relu1(self.bn1(self.conv1(x))))
        x = self.relu2(self.bn2(self.conv2(x)))
        x = self.layer1_pool(x)
        for i in (1, 2, 3):
            x = getattr(self, f"layer{i}")(x)
            x = getattr(self, f"layer{i}_relu")(getattr(self, f"layer{i}_bn")(getattr(self, f"layer{i}_conv")(x)))
        x = self.layer4(x)
        return self.layer4_conv2_relu(self.layer4_conv2_bn(self.layer4_conv2(x)))


class STTEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.cnn = STTResNet()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cnn(x)


class Embeddings(nn.Module):
    def __init__(self, d_model: int, vocab: int):
        super().__init__()
        self.lut = nn.Embedding(vocab, d_model)
        self.d_model = d_model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lut(x) * math.sqrt(self.d_model)


class PositionalEncoding(nn.Module):
    def __init__(self, d_model: int, max_len: int = 5000):
        super().__init__()
        pe = torch.zeros(max_len, d_model)
        position = torch.arange(0, max_len).unsqueeze(1).float()
        div = torch.exp(torch.arange(0, d_model, 2).float() * -(math.log(10000.0) / d_model))
        pe[:, 0::2] = torch.sin(position * div)
        pe[:, 1::2] = torch.cos(position * div)
        self.register_buffer("pe", pe.unsqueeze(0))  # (1, max_len, d_model); saved in the checkpoint

    def forward(self, length: int) -> torch.Tensor:  # -> (1, length, d_model)
        return self.pe[:, :length]


class FeedForward(nn.Module):
    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.1):
        super().__init__()
        self.w_1, self.w_2, self.dropout = nn.Linear(d_model, d_ff), nn.Linear(d_ff, d_model), nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(self.dropout(F.relu(self.w_1(x))))


class STTDecoder(nn.Module):
    def __init__(self, d_model: int = 1024, heads: int = 16, d_ff: int = 2048):
        super().__init__()
        self.mask_multihead = MultiHeadedAttention(heads, d_model)
        self.mul_layernorm1 = STTLayerNorm(d_model)
        self.multihead = MultiHeadedAttention(heads, d_model)
        self.mul_layernorm2 = STTLayerNorm(d_model)
        self.pff = FeedForward(d_model, d_ff)
        self.mul_layernorm3 = STTLayerNorm(d_model)

    def forward(self, text: torch.Tensor, feature: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = text.shape[1]
        causal = torch.ones(t, t, dtype=torch.bool, device=text.device).tril()[None]  # (1, T, T)
        x = self.mul_layernorm1(text + self.mask_multihead(text, text, text, mask=causal)[0])
        b, c, h, w = feature.shape
        mem = feature.view(b, c, h * w).permute(0, 2, 1)  # (B, 256, 1024)
        aligned, attn = self.multihead(x, mem, mem)  # attn (B, 16, T, 256)
        x = self.mul_layernorm2(x + aligned)
        return self.mul_layernorm3(x + self.pff(x)), attn


class STTTransformer(nn.Module):
    """``forward(gray (B, 1, 32, 128) in [0, 1], tokens (B, T))`` -> (logits (B, T, 37), attention (B, 16, T, 256))."""

    def __init__(self):
        super().__init__()
        n = len(STT_CHARSET)
        self.embedding_word = Embeddings(512, n)
        self.pe = PositionalEncoding(512)
        self.encoder = STTEncoder()
        self.decoder = STTDecoder()
        self.generator_word = nn.Module()
        self.generator_word.proj = nn.Linear(1024, n)

    def forward(self, image: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feature = self.encoder(image)  # (B, 1024, 8, 32)
        emb = self.embedding_word(tokens)  # (B, T, 512)
        x = torch.cat([emb, self.pe(tokens.shape[1]).expand(emb.shape[0], -1, -1)], dim=2)  # (B, T, 1024)
        x, attn = self.decoder(x, feature)
        return self.generator_word.proj(x), attn


def load_stt(checkpoint: str | os.PathLike, device: str = "cpu") -> STTTransformer:
    """The Scene Text Telescope transformer from ``pretrain_transformer.pth`` (``module.`` prefix stripped)."""
    return load_weights(STTTransformer(), checkpoint, "the Scene Text Telescope transformer").to(device).eval()


def encode_labels(chars: list[str]) -> tuple[torch.Tensor, list[list[int]]]:
    """Teacher-forcing inputs (B, T) = [0, c_1, ..., c_n] (T = longest + 1) and each label's targets; characters
    outside the 37-character charset (after lowercasing) are -1 (they get no attention)."""
    idx = {c: i for i, c in enumerate(STT_CHARSET)}
    targets = [[idx.get(c.lower(), -1) if c != "-" else -1 for c in s] for s in chars]
    t = max((len(x) for x in targets), default=0) + 1
    tokens = torch.zeros(len(chars), t, dtype=torch.long)
    for i, x in enumerate(targets):
        if x:
            tokens[i, 1:len(x) + 1] = torch.tensor([max(v, 0) for v in x])
    return tokens, targets
