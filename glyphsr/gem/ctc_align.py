"""CTC forced alignment (Viterbi), vectorized over a batch: the loop runs over time steps only.

Given per-step class log-probabilities and each sample's target characters, the best CTC path that emits
exactly those characters assigns every time step to a blank or to one character; a character's steps and its
most confident step give its horizontal position. A target index of -1 is a wildcard ("any non-blank"), used for
characters the recognizer's charset lacks.
"""

from __future__ import annotations

import numpy as np

NEG = np.float32(-1e30)


def emissions(logp: np.ndarray, targets: list[list[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-state emission log-probabilities for the extended label (blank, c1, blank, c2, ..., blank).

    logp float32 (B, T, C) with class 0 the blank. Returns (E (B, S, T), skip_ok bool (B, S), n_states (B,))."""
    b, t, _ = logp.shape
    lmax = max((len(x) for x in targets), default=0)
    s_max = 2 * lmax + 1
    tgt = np.full((b, max(lmax, 1)), -2, np.int64)  # -2 padding
    for i, x in enumerate(targets):
        tgt[i, : len(x)] = x
    ext = np.zeros((b, s_max), np.int64)  # 0 = blank
    ext[:, 1::2] = tgt[:, :lmax]
    p_blank = np.exp(logp[:, :, 0])
    any_char = np.log(np.clip(1.0 - p_blank, 1e-12, 1.0)).astype(np.float32)  # (B, T)
    idx = np.clip(ext, 0, None)
    e = np.take_along_axis(logp, np.broadcast_to(idx[:, None, :], (b, t, s_max)), axis=2)  # (B, T, S)
    e = np.where((ext == -1)[:, None, :], any_char[:, :, None], e)
    e = np.where((ext == -2)[:, None, :], NEG, e)
    n_states = np.array([2 * len(x) + 1 for x in targets])
    s_idx = np.arange(s_max)
    e = np.where((s_idx[None, None, :] >= n_states[:, None, None]), NEG, e)
    prev2 = np.concatenate([np.full((b, 2), -3), ext[:, :-2]], axis=1)
    skip_ok = (ext != 0) & (ext != prev2) & (s_idx[None] >= 2)
    return e.transpose(0, 2, 1).astype(np.float32), skip_ok, n_states


def viterbi_align(logp: np.ndarray, targets: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Best CTC path of each sample constrained to its target.

    Returns (path int (B, T): extended-state index per step, char k = state 2k+1; feasible bool (B,)), infeasible
    where the target needs more steps than there are (then the path is all -1)."""
    e, skip_ok, n_states = emissions(logp, targets)
    b, s_max, t_max = e.shape
    delta = np.full((b, s_max), NEG, np.float32)
    delta[:, 0] = e[:, 0, 0]
    if s_max > 1:
        delta[:, 1] = e[:, 1, 0]
    back = np.zeros((t_max, b, s_max), np.int8)
    for t in range(1, t_max):
        stay = delta
        from1 = np.concatenate([np.full((b, 1), NEG, np.float32), delta[:, :-1]], axis=1)
        from2 = np.concatenate([np.full((b, 2), NEG, np.float32), delta[:, :-2]], axis=1)
        from2 = np.where(skip_ok, from2, NEG)
        cand = np.stack([stay, from1, from2], axis=0)  # (3, B, S)
        choice = cand.argmax(axis=0)
        back[t] = choice
        delta = np.take_along_axis(cand, choice[None], axis=0)[0] + e[:, :, t]
        delta = np.maximum(delta, NEG)
    rows = np.arange(b)
    last = n_states - 1
    end_a = delta[rows, last]
    end_b = np.where(last >= 1, delta[rows, np.maximum(last - 1, 0)], NEG)
    state = np.where(end_b > end_a, last - 1, last)
    feasible = np.maximum(end_a, end_b) > NEG / 2
    path = np.empty((b, t_max), np.int64)
    path[:, t_max - 1] = state
    for t in range(t_max - 1, 0, -1):
        state = state - back[t, rows, state]
        path[:, t - 1] = state
    path[~feasible] = -1
    return path, feasible
