"""Anchor-based mask selection (paper, "Anchor-based Mask Selection").

For each character: among the candidates of its anchor prompts, keep those with confidence > tau; pick the one
with the largest IoU with the character's glyph attention. Where the glyph attention is unreliable (empty, or no
kept candidate overlaps it), rank by confidence / sqrt(area) instead. Every criterion can be switched off for
the ablation the benchmarks report.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: per-character outcome codes
CHOSEN_BY_IOU, CHOSEN_BY_FALLBACK, NO_CANDIDATE = 1, 2, 0


@dataclass(frozen=True)
class SelectionConfig:
    """``use_tau`` None (auto): the tau filter applies to segmenters whose confidence is a calibrated IoU
    (SAM's predicted IoU), not to the classical segmenter's stability (see bench/bench_gem.py for the numbers)."""

    tau: float = 0.8
    use_tau: bool | None = None
    use_glyph_iou: bool = True
    use_fallback: bool = True


@dataclass
class Selection:
    chosen: np.ndarray  # int64 (L,): candidate index per character, -1 none
    how: np.ndarray  # uint8 (L,): CHOSEN_BY_IOU, CHOSEN_BY_FALLBACK or NO_CANDIDATE
    below_tau: np.ndarray  # bool (L,): no candidate passed tau (all were considered instead)
    iou: np.ndarray  # float32 (L,): IoU of the chosen mask with the glyph attention


def select_masks(masks: np.ndarray, scores: np.ndarray, char_candidates: list[np.ndarray],
                 glyph_att: np.ndarray, cfg: SelectionConfig = SelectionConfig(), *, use_tau: bool = True
                 ) -> Selection:
    """masks bool (U, H, W), scores (U,), char_candidates[k] = candidate ids of character k's prompts,
    glyph_att bool (L, H, W). ``use_tau`` is the resolved tau switch (``cfg.use_tau`` wins when not None)."""
    use_tau = cfg.use_tau if cfg.use_tau is not None else use_tau
    L = glyph_att.shape[0]
    u = masks.shape[0]
    chosen = np.full(L, -1, np.int64)
    how = np.zeros(L, np.uint8)
    below = np.zeros(L, bool)
    best_iou = np.zeros(L, np.float32)
    if u == 0:
        return Selection(chosen, how, below, best_iou)
    m = masks.reshape(u, -1).astype(np.float32)
    g = glyph_att.reshape(L, -1).astype(np.float32)
    inter = g @ m.T  # (L, U)
    area = m.sum(1)
    union = g.sum(1)[:, None] + area[None, :] - inter
    iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    rank_fb = scores / np.sqrt(np.maximum(area, 1))
    for k in range(min(L, len(char_candidates))):
        ids = np.unique(char_candidates[k][char_candidates[k] >= 0])
        if len(ids) == 0:
            continue
        keep = ids
        if use_tau:
            keep = ids[scores[ids] > cfg.tau]
            if len(keep) == 0:
                below[k] = True
                keep = ids
        if cfg.use_glyph_iou and g[k].any() and iou[k, keep].max() > 0:
            j = keep[iou[k, keep].argmax()]
            how[k] = CHOSEN_BY_IOU
        elif cfg.use_fallback or not cfg.use_glyph_iou:
            j = keep[rank_fb[keep].argmax()]
            how[k] = CHOSEN_BY_FALLBACK
        else:
            j = keep[iou[k, keep].argmax()]
            how[k] = CHOSEN_BY_IOU
        chosen[k] = j
        best_iou[k] = iou[k, j]
    return Selection(chosen, how, below, best_iou)
