"""The weights shipped with the package (glyphsr/weights/): found from the package, loadable, small enough for the
device's output folder, described by a model card whose figures match the weights' own metadata, and usable by
sr-infer and sr-eval without --checkpoint."""

from __future__ import annotations

import json
import re

import numpy as np
import torch
from PIL import Image

import glyphsr.weights
from glyphsr.sr.checkpoint import load_model, read_weights
from glyphsr.sr.evaluation import bicubic_up, rgbm
from tests.conftest import word_image


def test_default_weights_are_shipped_and_load() -> None:
    found = glyphsr.weights.available()
    assert glyphsr.weights.DEFAULT in found
    folder = glyphsr.weights.shipped_path()
    assert folder.is_relative_to(glyphsr.weights.WEIGHTS_DIR)
    for f in folder.glob("*.safetensors"):
        assert f.stat().st_size <= 16 * 2**20, f  # what comes back from a lent GPU machine
    model, meta = load_model(folder)
    assert not model.training and meta["step"] > 0


def test_model_card_matches_the_weights() -> None:
    folder = glyphsr.weights.shipped_path()
    card = (folder / "README.md").read_text()
    _, meta = read_weights(folder)
    for needed in ("textzoom-synth", "seed", "sr-train", "bicubic", "HR", "PSNR", "SSIM", "RapidOCR"):
        assert needed in card, needed
    assert f"{meta['step']:,} steps" in card and f"{meta['samples']:,} samples" in card
    assert meta["code_version"].split("+g")[-1][:12] in card  # the commit that trained them
    facts = json.loads((folder / "card.json").read_text())
    assert facts["steps"] == meta["step"] and facts["samples"] == meta["samples"]
    assert facts["weights"] == meta.get("weights", "raw")  # EMA or raw, as sr-export wrote them
    assert ("- shipped: the exponential moving average" in card) == (meta.get("weights") == "ema")
    for tier in ("easy", "medium", "hard"):
        row = facts["eval"][tier]
        assert 0 <= row["bicubic"] <= 1 and 0 <= row["sr"] <= 1 and row["n"] > 0
        assert re.search(rf"\| {tier} \| {row['n']:,} \|", card), tier


def test_shipped_weights_super_resolve_text() -> None:
    """On text the weights were not trained on, the output stays close to bicubic (the skip) and changes it."""
    model, _ = load_model(glyphsr.weights.shipped_path())
    words = [word_image(w, (128, 32), dark_on_light=i % 2 == 0).resize((64, 16), Image.BICUBIC)
             for i, w in enumerate(["Hello", "street", "OPEN 24", "x-ray"])]
    lr8 = torch.from_numpy(np.stack([np.asarray(w) for w in words])).permute(0, 3, 1, 2).contiguous()
    sr = model.super_resolve(rgbm(lr8.float() / 255))
    assert sr.shape == (4, 3, 32, 128) and torch.isfinite(sr).all()
    diff = (sr - bicubic_up(lr8)).abs()
    assert 0.001 < float(diff.mean()) < 0.1
