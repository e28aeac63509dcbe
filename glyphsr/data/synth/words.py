"""Labels for the synthetic generator: real English words (the ``english-words`` package's web2 and GCIDE
lists) with the case, digits and punctuation of scene text.

TextZoom's labels are mostly single words from shop signs and posters: lower, Title and UPPER case, numbers,
prices, codes, and a little punctuation. The length distribution below peaks at 4-6 characters with a tail
past 15 (the glyph channels stop at 15; longer labels still occur and must be handled).
"""

from __future__ import annotations

import functools
import string

import numpy as np

# P(length) for dictionary words, 1..20 characters.
_LENGTHS = np.arange(1, 21)
_LENGTH_P = np.array([2, 6, 10, 13, 14, 13, 11, 9, 7, 5, 3.5, 2.5, 1.6, 1.1, 0.8, 0.5, 0.35, 0.25, 0.2, 0.15])
_LENGTH_P = _LENGTH_P / _LENGTH_P.sum()

_SUFFIX_PUNCT = ["!", ".", ",", "'s", ":", "?", "%", ")"]
_PREFIX_PUNCT = ["#", "$", "(", "@", "&", "*"]
_INFIX_PUNCT = ["-", "'", "&", "/", "."]


@functools.lru_cache(maxsize=1)
def word_buckets() -> dict[int, tuple[str, ...]]:
    """Alphabetic words of web2 and GCIDE, lowercased, bucketed by length, sorted (deterministic)."""
    from english_words import get_english_words_set

    words = get_english_words_set(["web2", "gcide"], alpha=True, lower=True)
    buckets: dict[int, list[str]] = {}
    for w in words:
        if w.isascii() and w.isalpha() and 1 <= len(w) <= 20:
            buckets.setdefault(len(w), []).append(w)
    return {n: tuple(sorted(ws)) for n, ws in buckets.items()}


def _word(rng: np.random.Generator, length: int | None = None) -> str:
    buckets = word_buckets()
    n = int(rng.choice(_LENGTHS, p=_LENGTH_P)) if length is None else length
    while n not in buckets:
        n -= 1
    ws = buckets[n]
    return ws[int(rng.integers(len(ws)))]


def _case(rng: np.random.Generator, w: str) -> str:
    r = rng.random()
    if r < 0.45:
        return w
    if r < 0.75:
        return w[:1].upper() + w[1:]
    return w.upper()


def _digits(rng: np.random.Generator, n: int) -> str:
    return "".join(string.digits[int(d)] for d in rng.integers(0, 10, n))


def _number(rng: np.random.Generator) -> str:
    r = rng.random()
    if r < 0.4:
        return _digits(rng, int(rng.integers(1, 7)))
    if r < 0.6:
        return f"{_digits(rng, int(rng.integers(1, 4)))}.{_digits(rng, 2)}"  # price
    if r < 0.75:
        return f"{int(rng.integers(1950, 2030))}"  # year
    if r < 0.9:
        return f"{_digits(rng, 3)}-{_digits(rng, 4)}"  # phone
    return f"${int(rng.integers(1, 1000))}"


def _code(rng: np.random.Generator) -> str:
    letters = "".join(string.ascii_uppercase[int(i)] for i in rng.integers(0, 26, int(rng.integers(1, 4))))
    digits = _digits(rng, int(rng.integers(1, 4)))
    return letters + digits if rng.random() < 0.7 else digits + letters


def _punctuated(rng: np.random.Generator) -> str:
    r = rng.random()
    w = _case(rng, _word(rng))
    if r < 0.55:
        return w + _SUFFIX_PUNCT[int(rng.integers(len(_SUFFIX_PUNCT)))]
    if r < 0.75:
        return _PREFIX_PUNCT[int(rng.integers(len(_PREFIX_PUNCT)))] + w
    short = _case(rng, _word(rng, int(rng.integers(2, 6))))
    return w[:8] + _INFIX_PUNCT[int(rng.integers(len(_INFIX_PUNCT)))] + short


def sample_label(rng: np.random.Generator) -> str:
    """One label: 72% words, 10% numbers, 8% codes, 10% punctuated words. No spaces."""
    r = rng.random()
    if r < 0.72:
        return _case(rng, _word(rng))
    if r < 0.82:
        return _number(rng)
    if r < 0.90:
        return _code(rng)
    return _punctuated(rng)
