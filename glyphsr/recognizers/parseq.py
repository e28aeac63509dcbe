"""PARSeq (Bautista and Atienza 2022), the recognizer GlyphSR's TPG uses, with the parameter names of the official
checkpoints (``parseq-bb5792a6.pt``: no network here; give the file's path), so they load strictly.

Architecture of the base model (the official ``configs/model/parseq.yaml``, ``main.yaml`` and ``94_full``):
- encoder: a ViT (timm's VisionTransformer parameter names: ``patch_embed.proj``, ``pos_embed`` (1, 128, 384),
  ``blocks.i.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}``, ``norm``) on RGB 32x128 in [-1, 1] with 4x8
  patches, width 384, depth 12, 6 heads, MLP ratio 4, LayerNorm eps 1e-6, no class token: memory (B, 128, 384);
- decoder: one pre-LN two-stream layer (``self_attn``, ``cross_attn``, ``linear1``, ``linear2``, ``norm1``,
  ``norm2``, ``norm_q``, ``norm_c``; 12 heads, FFN 1536, GELU) and a final ``norm``; ``text_embed.embedding``
  (97 tokens, scaled by sqrt(384)); ``pos_queries`` (1, 26, 384); ``head`` Linear(384, 95);
- tokens: 0 = [E] (end), 1..94 = the 94 characters of ``0-9a-zA-Z`` + punctuation (``CHARSET_ALL``), 95 = [B],
  96 = [P]. Output logits (B, 26, 95): end + 94 characters for 25 characters and the end.
Decoding as the original at test time: autoregressive (``decode_ar``) plus ``refine_iters`` cloze refinements.
The permutation-language-model training of PARSeq itself is not part of this (GlyphSR fine-tunes a pretrained one).
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from torch import nn

from glyphsr.data.labels import CHARSET_ALL
from glyphsr.recognizers.checkpoints import load_weights, strip_prefix

EOS, BOS, PAD = 0, len(CHARSET_ALL) + 1, len(CHARSET_ALL) + 2
NUM_TOKENS = len(CHARSET_ALL) + 3  # 97
NUM_CLASSES = NUM_TOKENS - 2  # 95: the head predicts neither [B] nor [P]


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.proj(y.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, patch: tuple[int, int], dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, N, dim)


class Encoder(nn.Module):
    def __init__(self, img_size=(32, 128), patch=(4, 8), dim=384, depth=12, heads=6, mlp_ratio=4.0):
        super().__init__()
        n = (img_size[0] // patch[0]) * (img_size[1] // patch[1])
        self.patch_embed = PatchEmbed(patch, dim)
        self.pos_embed = nn.Parameter(torch.randn(1, n, dim) * 0.02)
        self.blocks = nn.Sequential(*(Block(dim, heads, mlp_ratio) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.blocks(self.patch_embed(x) + self.pos_embed))


class DecoderLayer(nn.Module):
    """Pre-LN two-stream (query and content) decoder layer."""

    def __init__(self, dim: int, heads: int, ff: int, dropout: float = 0.1):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(dim, ff)
        self.linear2 = nn.Linear(ff, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm_q = nn.LayerNorm(dim)
        self.norm_c = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def stream(self, tgt, tgt_norm, kv, memory, mask, pad_mask):
        tgt = tgt + self.dropout(self.self_attn(tgt_norm, kv, kv, attn_mask=mask, key_padding_mask=pad_mask,
                                                need_weights=False)[0])
        tgt = tgt + self.dropout(self.cross_attn(self.norm1(tgt), memory, memory, need_weights=False)[0])
        return tgt + self.dropout(self.linear2(self.dropout(F.gelu(self.linear1(self.norm2(tgt))))))

    def forward(self, query, content, memory, query_mask=None, content_mask=None, pad_mask=None, update_content=True):
        content_norm = self.norm_c(content)
        query = self.stream(query, self.norm_q(query), content_norm, memory, query_mask, pad_mask)
        if update_content:
            content = self.stream(content, content_norm, content_norm, memory, content_mask, pad_mask)
        return query, content


class Decoder(nn.Module):
    def __init__(self, dim: int, heads: int, ff: int, depth: int, dropout: float):
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(dim, heads, ff, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, query, content, memory, query_mask=None, content_mask=None, pad_mask=None):
        for i, layer in enumerate(self.layers):
            query, content = layer(query, content, memory, query_mask, content_mask, pad_mask,
                                   update_content=i < len(self.layers) - 1)
        return self.norm(query)


class TokenEmbedding(nn.Module):
    def __init__(self, tokens: int, dim: int):
        super().__init__()
        self.embedding = nn.Embedding(tokens, dim)
        self.scale = math.sqrt(dim)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.scale * self.embedding(t)


class PARSeq(nn.Module):
    """``forward(images (B, 3, 32, 128) in [-1, 1])`` -> logits (B, max_len + 1, 95)."""

    def __init__(self, max_label_length: int = 25, img_size=(32, 128), patch=(4, 8), dim: int = 384,
                 enc_heads: int = 6, enc_mlp_ratio: float = 4, enc_depth: int = 12, dec_heads: int = 12,
                 dec_mlp_ratio: int = 4, dec_depth: int = 1, decode_ar: bool = True, refine_iters: int = 1,
                 dropout: float = 0.1):
        super().__init__()
        self.max_label_length = max_label_length
        self.decode_ar, self.refine_iters = decode_ar, refine_iters
        self.encoder = Encoder(img_size, patch, dim, enc_depth, enc_heads, enc_mlp_ratio)
        self.decoder = Decoder(dim, dec_heads, dim * dec_mlp_ratio, dec_depth, dropout)
        self.head = nn.Linear(dim, NUM_CLASSES)
        self.text_embed = TokenEmbedding(NUM_TOKENS, dim)
        self.pos_queries = nn.Parameter(torch.randn(1, max_label_length + 1, dim) * 0.02)
        self.dropout = nn.Dropout(dropout)

    def decode(self, tgt, memory, tgt_mask=None, pad_mask=None, query=None, query_mask=None):
        n, length = tgt.shape
        null_ctx = self.text_embed(tgt[:, :1])  # [B]: the empty context
        emb = self.dropout(torch.cat([null_ctx, self.pos_queries[:, :length - 1] + self.text_embed(tgt[:, 1:])], 1))
        query = self.pos_queries[:, :length].expand(n, -1, -1) if query is None else query
        return self.decoder(self.dropout(query), emb, memory, query_mask, tgt_mask, pad_mask)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        b, steps = images.shape[0], self.max_label_length + 1
        dev = images.device
        memory = self.encoder(images)
        queries = self.pos_queries[:, :steps].expand(b, -1, -1)
        causal = torch.triu(torch.ones(steps, steps, dtype=torch.bool, device=dev), 1)  # True = masked
        if self.decode_ar:
            tgt = torch.full((b, steps), PAD, dtype=torch.long, device=dev)
            tgt[:, 0] = BOS
            logits = []
            for i in range(steps):
                j = i + 1
                out = self.decode(tgt[:, :j], memory, causal[:j, :j], query=queries[:, i:j],
                                  query_mask=causal[i:j, :j])
                p = self.head(out)  # (B, 1, 95)
                logits.append(p)
                if j < steps:
                    tgt[:, j] = p[:, 0].argmax(-1)
            logits = torch.cat(logits, dim=1)
        else:
            tgt = torch.full((b, 1), BOS, dtype=torch.long, device=dev)
            logits = self.head(self.decode(tgt, memory, query=queries))
        if self.refine_iters:
            cloze = causal.clone()
            cloze[torch.triu(torch.ones(steps, steps, dtype=torch.bool, device=dev), 2)] = False
            bos = torch.full((b, 1), BOS, dtype=torch.long, device=dev)
            for _ in range(self.refine_iters):
                tgt = torch.cat([bos, logits[:, :-1].argmax(-1)], dim=1)
                pad = (tgt == EOS).int().cumsum(-1) > 0  # everything from the first [E] on
                logits = self.head(self.decode(tgt, memory, causal, pad, queries, cloze[:, :tgt.shape[1]]))
        return logits


def load_parseq(checkpoint: str | os.PathLike, device: str = "cpu", **kwargs) -> PARSeq:
    """PARSeq from an official checkpoint (``model.`` of the Lightning system and ``module.`` prefixes stripped)."""
    model = PARSeq(**kwargs)
    return load_weights(model, checkpoint, "PARSeq", transform=lambda s: strip_prefix(strip_prefix(s), "model."))\
        .to(device).eval()
