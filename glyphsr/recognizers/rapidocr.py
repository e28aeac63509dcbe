"""RapidOCR (PP-OCRv4 recognition, ONNX weights shipped in the ``rapidocr-onnxruntime`` wheel).

It took no part in any of glyphsr's training, which makes it the independent judge: it calibrates the
synthetic tiers and sits beside the paper's recognizers in evaluation. Recognition only (no detection, no
angle classifier): the input is a cropped text line.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class RapidOCRRecognizer:
    """``recognize(images)`` -> one string per image. Images are RGB uint8 (H, W, 3) of any size."""

    name = "rapidocr-ppocrv4"

    def __init__(self, threads: int | None = None) -> None:
        """``threads``: onnxruntime's intra-op threads (default: its own choice, every core)."""
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as exc:  # pragma: no cover - a dependency of glyphsr
            raise ImportError("RapidOCR needs the rapidocr-onnxruntime package (pip install glyphsr)") from exc
        from importlib.metadata import version

        self.cache_key = f"{self.name}-{version('rapidocr-onnxruntime')}"
        self._engine = RapidOCR(**({"intra_op_num_threads": threads} if threads else {}))

    def recognize(self, images: Sequence[np.ndarray]) -> list[str]:
        if len(images) == 0:
            return []
        bgr = []
        for i, img in enumerate(images):
            if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                raise ValueError(f"image {i}: expected RGB uint8 (H, W, 3), got {img.dtype} {img.shape}")
            bgr.append(np.ascontiguousarray(img[:, :, ::-1]))  # the engine takes OpenCV's BGR order
        results, _ = self._engine.text_rec(bgr)
        return [text.strip() for text, _score in results]
