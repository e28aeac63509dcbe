"""The Triton kernels of :mod:`glyphsr.sr.modeling.gru_triton` (imported only when they run: Triton reads
``TRITON_INTERPRET`` when its functions are defined)."""

import triton
import triton.language as tl


@triton.jit
def _gates(whh, bhh, d, H: tl.constexpr):
    """Direction d's recurrent weights as the three gate blocks of W_hh^T, (H_k, H_j): element [k, j] =
    weight_hh[d][g * H + j, k]; and the three gate blocks of b_hh, (1, H_j)."""
    j = tl.arange(0, H)
    k = tl.arange(0, H)
    w = whh + d * 3 * H * H
    wr = tl.load(w + (0 * H + j[None, :]) * H + k[:, None])
    wz = tl.load(w + (1 * H + j[None, :]) * H + k[:, None])
    wn = tl.load(w + (2 * H + j[None, :]) * H + k[:, None])
    br = tl.load(bhh + d * 3 * H + 0 * H + j)[None, :]
    bz = tl.load(bhh + d * 3 * H + 1 * H + j)[None, :]
    bn = tl.load(bhh + d * 3 * H + 2 * H + j)[None, :]
    return wr, wz, wn, br, bz, bn


@triton.jit
def gru_fwd(xi, whh, bhh, hs, N, T, D: tl.constexpr, H: tl.constexpr, BLOCK: tl.constexpr, PREC: tl.constexpr):
    pid = tl.program_id(0)
    d = tl.program_id(1)
    rows = pid * BLOCK + tl.arange(0, BLOCK)
    j = tl.arange(0, H)
    live = rows[:, None] < N
    wr, wz, wn, br, bz, bn = _gates(whh, bhh, d, H)
    h = tl.zeros((BLOCK, H), dtype=tl.float32)
    xrow = rows[:, None].to(tl.int64) * (T * D * 3 * H) + d * 3 * H + j[None, :]
    hrow = rows[:, None].to(tl.int64) * (T * D * H) + d * H + j[None, :]
    for s in range(T):
        t = s + d * (T - 1 - 2 * s)  # the reverse direction walks the steps backwards
        xo = xrow + t * (D * 3 * H)
        xr = tl.load(xi + xo, mask=live, other=0.0).to(tl.float32)
        xz = tl.load(xi + xo + H, mask=live, other=0.0).to(tl.float32)
        xn = tl.load(xi + xo + 2 * H, mask=live, other=0.0).to(tl.float32)
        r = 1.0 / (1.0 + tl.exp(-(xr + tl.dot(h, wr, input_precision=PREC) + br)))
        z = 1.0 / (1.0 + tl.exp(-(xz + tl.dot(h, wz, input_precision=PREC) + bz)))
        n = 2.0 / (1.0 + tl.exp(-2.0 * (xn + r * (tl.dot(h, wn, input_precision=PREC) + bn)))) - 1.0  # tanh
        h = n + z * (h - n)
        tl.store(hs + hrow + t * (D * H), h, mask=live)


@triton.jit
def gru_bwd(xi, whh, bhh, hs, dy, dxi, dw, db, N, T, D: tl.constexpr, H: tl.constexpr, BLOCK: tl.constexpr,
            PREC: tl.constexpr):
    pid = tl.program_id(0)
    d = tl.program_id(1)
    rows = pid * BLOCK + tl.arange(0, BLOCK)
    j = tl.arange(0, H)
    k = tl.arange(0, H)
    live = rows[:, None] < N
    wr, wz, wn, br, bz, bn = _gates(whh, bhh, d, H)  # (k, j): W_g^T
    wr_t = tl.trans(wr)  # (j, k): W_g
    wz_t = tl.trans(wz)
    wn_t = tl.trans(wn)
    dh = tl.zeros((BLOCK, H), dtype=tl.float32)
    dwr = tl.zeros((H, H), dtype=tl.float32)  # (k, j), as W_g^T
    dwz = tl.zeros((H, H), dtype=tl.float32)
    dwn = tl.zeros((H, H), dtype=tl.float32)
    dbr = tl.zeros((H,), dtype=tl.float32)
    dbz = tl.zeros((H,), dtype=tl.float32)
    dbn = tl.zeros((H,), dtype=tl.float32)
    xrow = rows[:, None].to(tl.int64) * (T * D * 3 * H) + d * 3 * H + j[None, :]
    hrow = rows[:, None].to(tl.int64) * (T * D * H) + d * H + j[None, :]
    for u in range(T):
        s = T - 1 - u  # the forward's step, last first
        t = s + d * (T - 1 - 2 * s)
        tp = t - 1 + 2 * d  # the time of the previous state (read only when s > 0)
        hp = tl.load(hs + hrow + tp * (D * H), mask=live & (s > 0), other=0.0)
        xo = xrow + t * (D * 3 * H)
        xr = tl.load(xi + xo, mask=live, other=0.0).to(tl.float32)
        xz = tl.load(xi + xo + H, mask=live, other=0.0).to(tl.float32)
        xn = tl.load(xi + xo + 2 * H, mask=live, other=0.0).to(tl.float32)
        ghn = tl.dot(hp, wn, input_precision=PREC) + bn
        r = 1.0 / (1.0 + tl.exp(-(xr + tl.dot(hp, wr, input_precision=PREC) + br)))
        z = 1.0 / (1.0 + tl.exp(-(xz + tl.dot(hp, wz, input_precision=PREC) + bz)))
        n = 2.0 / (1.0 + tl.exp(-2.0 * (xn + r * ghn))) - 1.0  # tanh
        dh += tl.load(dy + hrow + t * (D * H), mask=live, other=0.0).to(tl.float32)
        dan = dh * (1.0 - z) * (1.0 - n * n)  # through n = tanh(a_n)
        daz = dh * (hp - n) * z * (1.0 - z)
        dar = dan * ghn * r * (1.0 - r)
        dgn = dan * r  # the gradient of W_hn h + b_hn
        tl.store(dxi + xo, dar, mask=live)
        tl.store(dxi + xo + H, daz, mask=live)
        tl.store(dxi + xo + 2 * H, dan, mask=live)
        dh = (dh * z + tl.dot(dar, wr_t, input_precision=PREC) + tl.dot(daz, wz_t, input_precision=PREC)
              + tl.dot(dgn, wn_t, input_precision=PREC))
        hpt = tl.trans(hp)
        dwr += tl.dot(hpt, dar, input_precision=PREC)
        dwz += tl.dot(hpt, daz, input_precision=PREC)
        dwn += tl.dot(hpt, dgn, input_precision=PREC)
        dbr += tl.sum(dar, axis=0)
        dbz += tl.sum(daz, axis=0)
        dbn += tl.sum(dgn, axis=0)
    part = d * tl.num_programs(0) + pid
    wo = dw + part * 3 * H * H + (j[None, :] * H + k[:, None])  # stored as (g, j, k): weight_hh's layout
    tl.store(wo, dwr)
    tl.store(wo + H * H, dwz)
    tl.store(wo + 2 * H * H, dwn)
    bo = db + part * 3 * H + j
    tl.store(bo, dbr)
    tl.store(bo + H, dbz)
    tl.store(bo + 2 * H, dbn)

