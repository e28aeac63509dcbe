"""GEM's ``stt`` attention: the Scene Text Telescope transformer (:mod:`glyphsr.recognizers.stt`) teacher-forced
with the label; the cross-attention of step t (B, 16, 256), averaged over heads, reshaped to 8x32 and upsampled x4,
is character t's 2D position attention.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from glyphsr.data.labels import MAX_CHARS
from glyphsr.data.textzoom import HR_SIZE
from glyphsr.gem.attention import Attention
from glyphsr.recognizers.images import luma
from glyphsr.recognizers.stt import STTTransformer, encode_labels, load_stt

__all__ = ["STTAttention"]


class STTAttention:
    """2D position attention per character from the STT transformer (see the module docstring)."""

    name = "stt"

    def __init__(self, *, checkpoint: str | None = None, model: STTTransformer | None = None, device: str = "cpu",
                 max_chars: int = MAX_CHARS, batch_size: int = 64):
        if model is None:
            if checkpoint is None:
                raise ValueError("STTAttention needs a checkpoint (pretrain_transformer.pth) or a model")
            model = load_stt(checkpoint, device)
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.max_chars = max_chars
        self.batch_size = batch_size

    @torch.inference_mode()
    def __call__(self, images: np.ndarray, chars: list[str]) -> Attention:
        b, h, w = images.shape[:3]
        L = self.max_chars
        position = np.zeros((b, L, h, w), np.float32)
        valid = np.zeros((b, L), bool)
        reasons: list[str | None] = [None] * b
        x = torch.as_tensor(np.ascontiguousarray(images), device=self.device).float() / 255.0
        gray = luma(x.permute(0, 3, 1, 2))  # (B, 1, H, W)
        if (h, w) != HR_SIZE:  # the Telescope transformer reads 32x128
            gray = F.interpolate(gray, size=HR_SIZE, mode="bilinear", align_corners=False)
        for a in range(0, b, self.batch_size):
            sl = slice(a, a + self.batch_size)
            tokens, targets = encode_labels(chars[sl])
            if tokens.shape[1] <= 1:
                continue
            _, attn = self.model(gray[sl], tokens.to(self.device))  # (b, 16, T, 256)
            maps = attn.mean(1)[:, : tokens.shape[1] - 1]  # (b, T-1, 256): step t attends for character t
            maps = maps.reshape(maps.shape[0], maps.shape[1], 8, 32)
            maps = F.interpolate(maps, size=(h, w), mode="bilinear", align_corners=False).cpu().numpy()
            for j, tg in enumerate(targets):
                k = min(len(tg), L)
                ok = np.array([v >= 0 for v in tg[:k]], bool)
                position[a + j, :k] = maps[j, :k] * ok[:, None, None]
                valid[a + j, :k] = ok
                if len(tg) == 0:
                    reasons[a + j] = "empty label"
        mx = position.max(axis=2)  # (B, L, W): column profile
        peak_x = np.where(valid, mx.argmax(-1) + 0.5, np.nan).astype(np.float32)
        col = mx / np.maximum(mx.sum(-1, keepdims=True), 1e-12)
        return Attention(column=col.astype(np.float32), peak_x=peak_x, valid=valid, position=position,
                         reasons=reasons)
