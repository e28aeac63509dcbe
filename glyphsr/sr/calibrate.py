"""The residual gain: how much of its learned difference a network with the global skip (``model.residual``) adds to
the bicubic image, chosen after training by the judge on training pairs (not in the paper).

With the skip the network returns ``bicubic(LR) + out(features)``, and ``out`` is a convolution: scaling its weight
and bias for the RGB channels by ``g`` returns ``bicubic + g * difference`` exactly. The weights stay ordinary
weights (every program reads them as before) and ``g`` is recorded in the checkpoint's metadata.

Why: on an H200 (2026-11-28) runs with the CRNN text focus learned a difference in a direction the judge reads
better, but too large: the end-of-run EMA of a 5-minute run read 36.5% against bicubic's 39.1% (300 synthetic images
per tier, RapidOCR) and, with the difference halved, 42.3%; on 600 of its training pairs 34.8% against 39.7%, halved
43.7%. The text focus's attention term keeps falling as the difference grows, while the RGB pixel loss is lowest at
about half of it (README, "The residual gain"). ``sr-train`` judges the gains of :data:`GAINS` on the first
``train.calibrate_n`` training pairs at the end of a run and writes ``checkpoints/calibrated``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from glyphsr.sr.evaluation import EvalSet, judge_images, reference_rows, super_resolve

GAINS = (0.25, 0.5, 0.75, 1.0)
OUT_KEYS = ("out.weight", "out.bias")  # the last convolution: SR = bicubic(LR) + out(...) with the skip


def with_gain(state: Mapping[str, torch.Tensor], gain: float, channels: int = 3) -> dict[str, torch.Tensor]:
    """A copy of ``state`` (a residual network's weights) whose network adds ``gain`` times its learned difference
    to the bicubic image in the first ``channels`` output channels (RGB; the mask channel, which no judge reads, is
    left as it is). Tensors other than the last convolution's are shared, not copied."""
    if not math.isfinite(gain) or gain < 0:
        raise ValueError(f"the residual gain must be a finite number >= 0, got {gain}")
    missing = [k for k in OUT_KEYS if k not in state]
    if missing:
        raise ValueError(f"no {', '.join(missing)} in these weights: not a GlyphSR network")
    out = dict(state)
    for k in OUT_KEYS:
        t = state[k].clone()
        t[:channels] = (t[:channels].float() * gain).to(t.dtype)
        out[k] = t
    return out


def _pick(table: Mapping[str, Mapping[float, float]]) -> tuple[str, float, float]:
    """(candidate, gain, accuracy) that read best; on a tie the gain nearer 1 (the weights as trained), then the
    earlier candidate."""
    best = None
    for cand, row in table.items():
        for gain, acc in row.items():
            if math.isnan(acc):
                continue
            key = (acc, -abs(gain - 1.0))
            if best is None or key > best[0]:
                best = (key, cand, gain, acc)
    if best is None:
        raise ValueError("no candidate could be judged (every reading was NaN)")
    return best[1], best[2], best[3]


@torch.no_grad()
def calibrate(model: nn.Module, candidates: Mapping[str, Mapping[str, torch.Tensor]], sets: Sequence[EvalSet],
              judge, device: torch.device, gains: Sequence[float] = GAINS, autocast: bool = False) -> dict:
    """Judge each candidate's weights (``{name: state dict}``) at each gain on ``sets`` -> {"table": {name: {gain:
    accuracy}}, "bicubic": bicubic's accuracy, "choice": name, "gain": g, "accuracy": the choice's, "n": images};
    accuracies over all the sets' images together. ``model`` is the network the states fit (with the skip); its own
    weights are put back afterwards.

    Each candidate runs once at gain 1 and the skip once at gain 0; the images at gain g are then ``skip + g *
    (SR - skip)``, clamped and quantized as :func:`glyphsr.sr.evaluation.super_resolve` does: what the scaled
    convolution computes up to rounding (on a tiny random network, 32 images: 11 of 393,216 values one level apart
    at g = 0.75 in float32, 1 at g = 0.5; none under CPU bf16 autocast)."""
    if not getattr(model, "residual", False):
        raise ValueError("the residual gain needs a network with the global skip (model.residual=true)")
    if not candidates:
        raise ValueError("no weights to calibrate")
    if not gains or not all(math.isfinite(g) and g >= 0 for g in gains):
        raise ValueError(f"the gains must be numbers >= 0, got {list(gains)}")
    n = sum(len(s) for s in sets)
    if n == 0:
        raise ValueError("no images to calibrate on")
    was_training = model.training
    own = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.eval()

    def outputs(lr_uint8: torch.Tensor) -> torch.Tensor:  # RGB, float32, unclamped
        return super_resolve(lambda x: model(x).sr, lr_uint8, device, autocast=autocast, quantize=False)

    right: dict[str, dict[float, int]] = {name: dict.fromkeys(map(float, gains), 0) for name in candidates}
    bicubic = 0
    try:
        for s in sets:
            bicubic += int(reference_rows(s, judge)["bicubic"]["correct"].sum())
            model.load_state_dict(with_gain(next(iter(candidates.values())), 0.0))
            skip = outputs(s.lr)
            for name, state in candidates.items():
                model.load_state_dict(state)
                diff = outputs(s.lr) - skip
                for g in right[name]:
                    img = (skip + g * diff).clamp(0, 1).mul(255).round().div(255)
                    right[name][g] += int(judge_images(judge, img, s.labels)[0].sum())
    finally:
        model.load_state_dict(own)
        model.train(was_training)
    table = {name: {g: c / n for g, c in row.items()} for name, row in right.items()}
    choice, gain, acc = _pick(table)
    return {"table": table, "bicubic": bicubic / n, "choice": choice, "gain": gain, "accuracy": acc, "n": n}
