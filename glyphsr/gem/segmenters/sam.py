"""Segment Anything as GEM's segmenter (the paper's), for a user with a SAM checkpoint.

One image-encoder pass per image (batched over images); every prompt of an image (up to 15 characters x 2 key
points x 9 anchors = 270) goes through the prompt encoder and mask decoder in chunks of ``chunk`` single-point
prompts shaped (P, 1, 2), multimask output (3 masks per prompt), confidence = SAM's predicted IoU.

Frames: a 32x128 crop is resized (longest side) to 256x1024 and zero-padded to 1024x1024, SAM's input. A prompt
at pixel (x, y) of the crop, whose center is (x + 0.5, y + 0.5), maps to pixel ((x + 0.5) * 8 - 0.5, ...) of that
frame. Masks come back as SAM's 256x256 low-resolution logits; the crop's part (64x256) is resized to 32x128 and
thresholded at 0 — SAM's own postprocessing upsamples every mask to 1024x1024 first, which for 270 prompts would
be 3 GB of floats per image for the same result up to interpolation.

The PyPI wheel's ``ResizeLongestSide.apply_image_torch`` reads the wrong dimensions (fixed upstream later); the
resize here does not use it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from glyphsr.gem.segmenters import Candidates
from glyphsr.recognizers.checkpoints import load_weights

SAM_MODELS = ("vit_h", "vit_l", "vit_b")
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)


def load_sam(checkpoint: str | os.PathLike, model_type: str = "vit_h", device: str = "cpu"):
    """Build SAM ``model_type`` and load ``checkpoint`` with ``map_location`` (segment-anything's builder loads
    without it, which fails for a CUDA checkpoint on a CPU machine)."""
    from segment_anything import sam_model_registry

    if model_type not in SAM_MODELS:
        raise ValueError(f"SAM model must be one of {', '.join(SAM_MODELS)}, got {model_type!r}")
    if not Path(checkpoint).is_file():  # before building a large random model
        raise FileNotFoundError(f"SAM {model_type} checkpoint not found: {checkpoint}")
    sam = sam_model_registry[model_type](checkpoint=None)
    return load_weights(sam, checkpoint, f"SAM {model_type}").to(device).eval()


def build_tiny_sam(dim: int = 32):
    """A SAM of SAM's own modules at toy size (one ViT block, ``dim`` channels, random weights) in eval mode: the
    SAM path's tests and benchmark run it, since no real checkpoint can be had here. Seed torch first for
    repeatable weights."""
    from functools import partial

    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    return Sam(
        image_encoder=ImageEncoderViT(img_size=1024, patch_size=16, in_chans=3, embed_dim=dim, depth=1, num_heads=2,
                                      mlp_ratio=2.0, out_chans=dim, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
                                      use_rel_pos=False, window_size=8, global_attn_indexes=()),
        prompt_encoder=PromptEncoder(embed_dim=dim, image_embedding_size=(64, 64), input_image_size=(1024, 1024),
                                     mask_in_chans=4),
        mask_decoder=MaskDecoder(num_multimask_outputs=3,
                                 transformer=TwoWayTransformer(depth=1, embedding_dim=dim, mlp_dim=64, num_heads=2),
                                 transformer_dim=dim, iou_head_depth=2, iou_head_hidden_dim=32),
    ).eval()


def to_sam_frame(points: np.ndarray, scale: float) -> np.ndarray:
    """Pixel coordinates (x, y) of the crop -> pixel coordinates in SAM's resized frame (same pixel centers)."""
    return (points + 0.5) * scale - 0.5


def low_res_to_masks(low_res: torch.Tensor, crop_hw: tuple[int, int], out_hw: tuple[int, int],
                     input_size: int = 1024) -> torch.Tensor:
    """SAM low-res logits (..., 256, 256) of a padded 1024 frame -> logits (..., *out_hw) of the original crop."""
    lr = low_res.shape[-1]
    h = round(crop_hw[0] * lr / input_size)
    w = round(crop_hw[1] * lr / input_size)
    lead = low_res.shape[:-2]
    x = low_res[..., :h, :w].reshape(-1, 1, h, w).float()
    x = F.interpolate(x, size=out_hw, mode="bilinear", align_corners=False)
    return x.reshape(*lead, *out_hw)


class SamSegmenter:
    """Promptable segmentation with Segment Anything (see the module docstring)."""

    name = "sam"
    calibrated_confidence = True  # predicted IoU: the tau filter applies

    def __init__(self, sam, *, device: str = "cpu", dtype: str = "auto", chunk: int = 64, encoder_batch: int = 8):
        from glyphsr.gem.attention import resolve_dtype

        self.sam = sam.to(device).eval()
        self.device = torch.device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.chunk = chunk
        self.encoder_batch = encoder_batch
        self.input_size = int(sam.image_encoder.img_size)
        self.mask_threshold = float(getattr(sam, "mask_threshold", 0.0))
        self.decoder_calls = 0  # counted, so benchmarks can show chunking (never one call per prompt)
        self.encoder_calls = 0

    @staticmethod
    def from_checkpoint(checkpoint: str, *, model_type: str = "vit_h", device: str = "cpu", dtype: str = "auto",
                        chunk: int = 64) -> SamSegmenter:
        return SamSegmenter(load_sam(checkpoint, model_type, device), device=device, dtype=dtype, chunk=chunk)

    def _preprocess(self, images: np.ndarray) -> tuple[torch.Tensor, float, tuple[int, int]]:
        b, h, w = images.shape[:3]
        scale = self.input_size / max(h, w)
        nh, nw = round(h * scale), round(w * scale)
        x = torch.as_tensor(np.ascontiguousarray(images), device=self.device).permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
        mean = torch.tensor(PIXEL_MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(PIXEL_STD, device=self.device).view(1, 3, 1, 1)
        x = (x - mean) / std
        x = F.pad(x, (0, self.input_size - nw, 0, self.input_size - nh))  # (B, 3, 1024, 1024)
        return x, scale, (nh, nw)

    @torch.inference_mode()
    def segment(self, images: np.ndarray, points: list[np.ndarray], alpha: np.ndarray | None = None
                ) -> list[Candidates]:
        b, h, w = images.shape[:3]
        x, scale, crop_hw = self._preprocess(images)
        amp = dict(device_type=self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32)
        embeddings = []
        for a in range(0, b, self.encoder_batch):
            with torch.autocast(**amp):
                embeddings.append(self.sam.image_encoder(x[a:a + self.encoder_batch]).float())  # (b, C, 64, 64)
            self.encoder_calls += 1
        emb = torch.cat(embeddings)
        dense_pe = self.sam.prompt_encoder.get_dense_pe()
        out = []
        for i in range(b):
            pts = points[i]
            ok = np.flatnonzero(~np.isnan(pts).any(axis=1))
            n_p = len(pts)
            if len(ok) == 0:
                out.append(Candidates.empty(n_p, h, w, 3))
                continue
            coords = torch.as_tensor(to_sam_frame(pts[ok], scale), dtype=torch.float32, device=self.device)
            masks, scores = [], []
            for a in range(0, len(ok), self.chunk):
                c = coords[a:a + self.chunk, None, :]  # (P, 1, 2)
                lab = torch.ones(c.shape[:2], dtype=torch.int64, device=self.device)  # (P, 1) positive
                with torch.autocast(**amp):
                    sparse, dense = self.sam.prompt_encoder(points=(c, lab), boxes=None, masks=None)
                    low_res, iou = self.sam.mask_decoder(
                        image_embeddings=emb[i:i + 1], image_pe=dense_pe, sparse_prompt_embeddings=sparse,
                        dense_prompt_embeddings=dense, multimask_output=True)  # (P, 3, 256, 256), (P, 3)
                self.decoder_calls += 1
                logits = low_res_to_masks(low_res, crop_hw, (h, w), self.input_size)  # (P, 3, h, w)
                masks.append((logits > self.mask_threshold).cpu().numpy())
                scores.append(iou.float().cpu().numpy())
            m = np.concatenate(masks)  # (P_ok, 3, h, w)
            s = np.concatenate(scores)
            pc = np.full((n_p, 3), -1, np.int64)
            pc[ok] = np.arange(len(ok) * 3).reshape(len(ok), 3)
            out.append(Candidates(m.reshape(-1, h, w), s.reshape(-1).astype(np.float32), pc))
        return out
