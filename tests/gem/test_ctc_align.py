"""Viterbi forced alignment against brute force over every path."""

from __future__ import annotations

import itertools

import numpy as np

from glyphsr.gem.ctc_align import viterbi_align


def _collapse(path) -> list[int]:
    out, prev = [], 0
    for c in path:
        if c != prev and c != 0:
            out.append(c)
        prev = c
    return out


def _brute(lp: np.ndarray, tgt: list[int]) -> float | None:
    best = None
    for path in itertools.product(range(lp.shape[1]), repeat=lp.shape[0]):
        if _collapse(path) == tgt:
            s = float(sum(lp[t, c] for t, c in enumerate(path)))
            best = s if best is None or s > best else best
    return best


def test_matches_brute_force_on_random_problems() -> None:
    rng = np.random.default_rng(0)
    problems = []
    for _ in range(25):
        lp = np.log(rng.dirichlet(np.ones(4), size=6)).astype(np.float32)
        tgt = list(rng.integers(1, 4, size=int(rng.integers(1, 4))))
        problems.append((lp, tgt))
    lps = np.stack([p[0] for p in problems])
    path, ok = viterbi_align(lps, [p[1] for p in problems])  # one batched call
    for i, (lp, tgt) in enumerate(problems):
        best = _brute(lp, tgt)
        assert ok[i] == (best is not None)
        if best is None:
            continue
        ext = [0]
        for c in tgt:
            ext += [c, 0]
        assert _collapse([ext[s] for s in path[i]]) == tgt
        score = sum(lp[t, ext[s]] for t, s in enumerate(path[i]))
        assert abs(score - best) < 1e-4


def test_repeated_characters_need_a_blank_and_infeasible_is_flagged() -> None:
    lp = np.log(np.full((1, 3, 3), 1 / 3, np.float32))
    path, ok = viterbi_align(lp, [[1, 1]])  # needs c, blank, c: exactly 3 steps
    assert ok[0] and list(path[0]) == [1, 2, 3]
    _, ok = viterbi_align(lp, [[1, 1, 1]])  # would need 5 steps
    assert not ok[0]


def test_wildcard_aligns_to_any_character() -> None:
    p = np.full((4, 3), 0.01, np.float32)
    p[0, 1] = p[1, 0] = p[2, 2] = p[3, 0] = 0.98
    path, ok = viterbi_align(np.log(p)[None], [[1, -1]])
    assert ok[0] and path[0][0] == 1 and path[0][2] == 3  # the wildcard sits where class 2 fires
