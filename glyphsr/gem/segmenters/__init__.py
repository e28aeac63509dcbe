"""Promptable segmenters behind one interface: images + prompt points -> candidate masks with confidences.

``segment(images, points)``: images RGB uint8 (B, H, W, 3); points a list of B float arrays (P_b, 2) of (x, y)
pixel coordinates (NaN rows are ignored). Returns one :class:`Candidates` per image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Candidates:
    """Candidate masks of one image. Prompt p's j-th candidate is ``masks[prompt_candidates[p, j]]``
    (-1: none). Masks are deduplicated, so prompts that land on the same glyph share candidates."""

    masks: np.ndarray  # bool (U, H, W)
    scores: np.ndarray  # float32 (U,): the segmenter's confidence in each mask
    prompt_candidates: np.ndarray  # int64 (P, M)

    @staticmethod
    def empty(n_prompts: int, h: int, w: int, m: int = 1) -> Candidates:
        return Candidates(np.zeros((0, h, w), bool), np.zeros(0, np.float32), np.full((n_prompts, m), -1, np.int64))
