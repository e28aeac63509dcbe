"""RapidOCR, the independent judge, with its shipped weights."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from glyphsr.data.synth.fonts import available_fonts, load_font
from glyphsr.recognizers.rapidocr import RapidOCRRecognizer


def test_reads_clean_rendered_words() -> None:
    font = load_font(next(f.path for f in available_fonts() if f.family == "Lato" and f.style == "Regular"), 24)
    words = ["Parking", "OPEN", "2019"]
    imgs = []
    for w in words:
        img = Image.new("RGB", (128, 32), (250, 250, 250))
        ImageDraw.Draw(img).text((4, 3), w, fill=(10, 10, 10), font=font)
        imgs.append(np.asarray(img))
    assert RapidOCRRecognizer().recognize(imgs) == words


def test_rejects_wrong_input() -> None:
    judge = RapidOCRRecognizer()
    assert judge.recognize([]) == []
    with pytest.raises(ValueError, match="image 0"):
        judge.recognize([np.zeros((32, 128), np.uint8)])
