"""Masked softmax attention, written out: score, mask, softmax, weighted sum.

Dimension letters (used in every einsum here and in model.py):
    b batch · n query position · m key position · k key/value head · g query head within a group
    h head dimension.   Queries q: (b, n, k, g, h); keys and values: (b, m, k, h).

Four evaluation paths give the same function:
  * dense            the full (n, m) score matrix; used for short sequences and whenever the
                     attention weights are asked for;
  * query-blocked    dense arithmetic one block of queries at a time (memory O(block·n)); used for
                     long sequences when the precision policy orders its reductions, because every
                     row is computed by exactly the same operations as in the dense path (same bits);
  * online softmax   flash-attention style: a running max, sum and weighted sum per query, over
                     only the (query block, key block) pairs that the causal mask and sliding window
                     leave visible; memory O(n); used for long sequences in native float32. Equal to
                     dense within float32 rounding (the sums are reassociated);
  * banded           causal sliding-window attention one block of queries at a time, over only the
                     contiguous slice of keys that block can see (window + block keys): one
                     masked softmax per row, no running corrections; memory
                     O(n + block·(block + window)); used for causal windowed layers when
                     window + block ≤ n: instead of online softmax in native float32 (the blocks
                     then score 1 + block/window times the visible keys; equal to dense within
                     float32 rounding), and instead of query-blocked under an ordered policy whose
                     sums over keys ignore where the band starts (`band_keeps_bits`: then the
                     same bits as dense, for (window + block)/n of the terms).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from jax import lax

from squash_sim import positional
from squash_sim.precision import Numerics, Precision

DENSE_MAX_LEN = 1024  # longer sequences take a blocked path unless the weights are returned
BLOCK = 1024
_NEG = -1e30  # finite "minus infinity" for running maxima: exp(_NEG − _NEG) is 1, never NaN


def visible(query_positions, key_positions, causal: bool, window: int | None):
    """Whether key j may be attended from query i. → (n, m) bool"""
    offset = query_positions[:, None] - key_positions[None, :]  # i − j
    ok = offset >= 0 if causal else jnp.ones(offset.shape, bool)
    if window is not None:
        ok = ok & (jnp.abs(offset) < window)
    return ok


def _scores(q, k, query_positions, key_positions, alibi_slopes, causal, num: Numerics):
    """Scaled scores plus positional bias, rounded as attention logits. → (b, k, g, n, m)"""
    scores = num.einsum("bnkgh,bmkh->bkgnm", q, k, site="scores")
    if alibi_slopes is not None:
        n_kv, group = q.shape[2], q.shape[3]
        bias = positional.alibi_bias(query_positions, key_positions, alibi_slopes, causal, q.dtype)
        scores = scores + bias.reshape(n_kv, group, *bias.shape[1:])  # (k, g, n, m)
    return num.logits(scores)


def dense(q, k, v, query_positions, key_positions, *, causal, window, alibi_slopes,
          num: Numerics):
    """→ output (b, n, k, g, h), weights (b, k, g, n, m)"""
    scores = _scores(q, k, query_positions, key_positions, alibi_slopes, causal, num)
    weights = num.softmax(scores, visible(query_positions, key_positions, causal, window))
    out = num.act(num.einsum("bkgnm,bmkh->bnkgh", weights, v, site="values"))
    return out, weights


def query_blocked(q, k, v, positions, *, causal, window, alibi_slopes, num: Numerics,
                  block: int = BLOCK):
    """Dense arithmetic over blocks of queries, every key each time. → (b, n, k, g, h)"""
    n = q.shape[1]
    n_blocks = math.ceil(n / block)
    pad = n_blocks * block - n
    q_padded = jnp.pad(q, ((0, 0), (0, pad), (0, 0), (0, 0), (0, 0)))
    q_blocks = q_padded.reshape(q.shape[0], n_blocks, block, *q.shape[2:])  # (b, nb, B, k, g, h)
    q_blocks = jnp.moveaxis(q_blocks, 1, 0)  # (nb, b, B, k, g, h)
    block_positions = jnp.arange(n_blocks * block).reshape(n_blocks, block)

    def one_block(args):
        q_block, query_positions = args
        out, _ = dense(q_block, k, v, query_positions, positions, causal=causal, window=window,
                       alibi_slopes=alibi_slopes, num=num)
        return out

    out = lax.map(one_block, (q_blocks, block_positions))  # (nb, b, B, k, g, h)
    out = jnp.moveaxis(out, 0, 1).reshape(q.shape[0], n_blocks * block, *q.shape[2:])
    return out[:, :n]


def online_softmax(q, k, v, positions, *, causal, window, alibi_slopes, num: Numerics,
                   block: int = BLOCK):
    """Flash-style attention in native float32. → (b, n, k, g, h)

    For each block of queries (lax.map: outputs are stacked, nothing n-sized is carried), scan the
    key blocks keeping a running max, sum and weighted sum for the block's rows. A key block that
    the causal mask or window hides entirely is skipped (lax.switch); one that is entirely visible
    skips the mask. Memory O(n); reverse-differentiable (scan and switch).

    Inside, everything is 3-D: r = (batch, kv head) is the matmul batch and the rows are
    (query head in group, query position), so the loop body's matmuls need no transposes (the 5-D
    layout cost 25 % more time per block, measured).
    """
    b, n, n_kv, group, d_head = q.shape
    n_blocks = math.ceil(n / block)
    padded = n_blocks * block
    pad = padded - n
    q = jnp.pad(q, ((0, 0), (0, pad), (0, 0), (0, 0), (0, 0)))
    k = jnp.pad(k, ((0, 0), (0, pad), (0, 0), (0, 0)))
    v = jnp.pad(v, ((0, 0), (0, pad), (0, 0), (0, 0)))
    rows = group * block
    q_blocks = jnp.einsum("bNnkgh->Nbkgnh", q.reshape(b, n_blocks, block, n_kv, group, d_head))
    q_blocks = q_blocks.reshape(n_blocks, b * n_kv, rows, d_head)  # (nb, r, g·B, h)
    k_blocks = jnp.einsum("bMmkh->Mbkmh", k.reshape(b, n_blocks, block, n_kv, d_head))
    k_blocks = k_blocks.reshape(n_blocks, b * n_kv, block, d_head)  # (nb, r, B, h)
    v_blocks = jnp.einsum("bMmkh->Mbkmh", v.reshape(b, n_blocks, block, n_kv, d_head))
    v_blocks = v_blocks.reshape(n_blocks, b * n_kv, block, d_head)
    offsets = jnp.arange(block)

    def query_block(args):
        i, q_i = args  # q_i: (r, g·B, h)
        query_positions = i * block + offsets

        def update(state, j, masked: bool):
            row_max, row_sum, out = state  # (r, g·B), (r, g·B), (r, g·B, h)
            key_positions = j * block + offsets
            scores = jnp.einsum("rnh,rmh->rnm", q_i, k_blocks[j],
                                precision=lax.Precision.HIGHEST)  # (r, g·B, B)
            if alibi_slopes is not None:
                bias = positional.alibi_bias(query_positions, key_positions, alibi_slopes, causal,
                                             scores.dtype)  # (heads, B, B) = (k·g, B, B)
                scores = scores + jnp.tile(bias.reshape(n_kv, rows, block), (b, 1, 1))
            scores = num.logits(scores)
            if masked:
                ok = visible(query_positions, key_positions, causal, window) & (key_positions < n)
                ok = jnp.tile(ok, (group, 1))  # (g·B, B): the same mask for every query head
                scores = jnp.where(ok, scores, _NEG)
            new_max = jnp.maximum(row_max, scores.max(axis=-1))
            exps = jnp.exp(scores - new_max[..., None])
            if masked:
                exps = jnp.where(ok, exps, 0.0)
            correction = jnp.exp(row_max - new_max)
            row_sum = row_sum * correction + exps.sum(axis=-1)
            out = out * correction[..., None] + jnp.einsum(
                "rnm,rmh->rnh", exps, v_blocks[j], precision=lax.Precision.HIGHEST)
            return new_max, row_sum, out

        def key_step(state, j):
            # Offsets i·B − j·B ± (B − 1) between the blocks' queries and keys decide visibility.
            gap = (i - j) * block
            smallest = jnp.maximum(jnp.abs(gap) - (block - 1), 0)
            largest = jnp.abs(gap) + (block - 1)
            any_visible = (j <= i) if causal else jnp.bool_(True)
            all_visible = (j < i) if causal else jnp.bool_(True)
            if window is not None:
                any_visible = any_visible & (smallest < window)
                all_visible = all_visible & (largest < window)
            all_visible = all_visible & ((j + 1) * block <= n)  # no padded keys
            branch = jnp.where(any_visible, jnp.where(all_visible, 1, 2), 0)
            state = lax.switch(branch, [lambda s: s, lambda s: update(s, j, False),
                                        lambda s: update(s, j, True)], state)
            return state, None

        init = (jnp.full((b * n_kv, rows), _NEG, q.dtype), jnp.zeros((b * n_kv, rows), q.dtype),
                jnp.zeros_like(q_i))
        (_, row_sum, out), _ = lax.scan(key_step, init, jnp.arange(n_blocks))
        return out / row_sum[..., None]  # (r, g·B, h)

    out = lax.map(query_block, (jnp.arange(n_blocks), q_blocks))  # (nb, r, g·B, h)
    out = out.reshape(n_blocks, b, n_kv, group, block, d_head)
    out = jnp.einsum("Nbkgnh->bNnkgh", out).reshape(b, padded, n_kv, group, d_head)
    return num.act(out[:, :n])


def banded(q, k, v, positions, *, window: int, alibi_slopes, num: Numerics, block: int = BLOCK):
    """Causal sliding-window attention over only the keys each block of queries can see.
    → (b, n, k, g, h)

    Query block i holds positions i·B … i·B + B − 1; under the window W they see keys
    i·B − W + 1 … i·B + B − 1. With the keys padded at the front by W, the B + W keys starting at
    i·B hold them all (the first is never visible; it keeps the slice a round size). One masked
    softmax per row over that slice (num.softmax, as dense): no running max or sum to correct.
    Padded queries (positions ≥ n) see only padded keys past n, which the causal mask hides from
    every real query. Reverse-differentiable (lax.map, dynamic slices).

    Rows are (batch, kv head) × (query position, query head in group): with one kv head, as in
    Gemma 3 270M, the layout changes below move only size-1 axes and cost nothing.
    """
    b, n, n_kv, group, d_head = q.shape
    n_blocks = math.ceil(n / block)
    padded = n_blocks * block
    span = block + window  # keys per query block
    q = jnp.pad(q, ((0, 0), (0, padded - n), (0, 0), (0, 0), (0, 0)))
    q = jnp.einsum("bnkgh->bkngh", q).reshape(b * n_kv, padded, group, d_head)  # (r, n', g, h)
    k, v = (jnp.einsum("bmkh->bkmh", jnp.pad(x, ((0, 0), (window, padded - n), (0, 0), (0, 0))))
            .reshape(b * n_kv, window + padded, d_head) for x in (k, v))  # (r, W + n', h)
    offsets = jnp.arange(block)

    def query_block(i):
        start = i * block
        q_i = lax.dynamic_slice_in_dim(q, start, block, axis=1)  # (r, B, g, h)
        k_i = lax.dynamic_slice_in_dim(k, start, span, axis=1)  # (r, B + W, h)
        v_i = lax.dynamic_slice_in_dim(v, start, span, axis=1)
        query_positions = start + offsets
        key_positions = start - window + jnp.arange(span)
        scores = num.einsum("rngh,rmh->rngm", q_i, k_i, site="scores")  # (r, B, g, B + W)
        if alibi_slopes is not None:
            bias = positional.alibi_bias(query_positions, key_positions, alibi_slopes, True,
                                         scores.dtype)  # (heads, B, B + W) = (k·g, B, B + W)
            bias = jnp.einsum("kgnm->kngm", bias.reshape(n_kv, group, block, span))
            scores = scores + jnp.tile(bias, (b, 1, 1, 1))  # (r, B, g, B + W)
        scores = num.logits(scores)
        ok = visible(query_positions, key_positions, True, window) & (key_positions >= 0)
        weights = num.softmax(scores, ok[:, None, :])  # mask (B, 1, B + W): every head alike
        return num.einsum("rngm,rmh->rngh", weights, v_i, site="values")  # (r, B, g, h)

    out = lax.map(query_block, jnp.arange(n_blocks))  # (nb, r, B, g, h)
    out = jnp.moveaxis(out, 0, 1).reshape(b, n_kv, padded, group, d_head)
    out = jnp.einsum("bkngh->bnkgh", out)  # (b, n', k, g, h)
    return num.act(out[:, :n])


def band_keeps_bits(p: Precision, block: int, window: int) -> bool:
    """Whether the banded path gives a policy with ordered reductions the dense path's bits.

    The band drops keys the window or the causal mask hides, which add exact zeros before and
    after a row's visible keys, and shifts each row's keys by i·B − W. Both sums over keys (the
    softmax denominator, weights · values) must then be ordered (XLA's own sums may reorder with
    the length) and indifferent to that: sequential and Kahan are (0 + x = x; Kahan skips zeros),
    blocked sums are when their block K divides B and W (the same keys share a partial sum), a
    pairwise tree is not (its shape follows the indices)."""
    core = p.matmul_hardware.core if p.matmul_hardware is not None else None
    if core is not None and (block % core.mma_length or window % core.mma_length):
        return False  # tensor-core MMAs group keys from the band's start, not key 0

    def keeps(how, ordered: bool) -> bool:
        if not ordered:
            return False
        if how.mode == "blocked":
            return block % how.block == 0 and window % how.block == 0
        return how.mode in ("sequential", "kahan")

    return (keeps(p.summation("values"), p.sum_format("values") is not None)
            and keeps(p.softmax_sum, p.ordered_softmax))


def attention(q, k, v, *, causal: bool, window: int | None, alibi_slopes, num: Numerics,
              return_weights: bool, dense_max_len: int = DENSE_MAX_LEN, block: int = BLOCK):
    """Attention over positions 0..n−1, choosing the path by length (see the module docstring).
    → output (b, n, k, g, h), weights (b, k, g, n, n) or None"""
    n = q.shape[1]
    positions = jnp.arange(n)
    block = min(block, n)  # a longer block would only pad (a window-sized one can be 2³¹ − 1)
    if return_weights or n <= dense_max_len:
        return dense(q, k, v, positions, positions, causal=causal, window=window,
                     alibi_slopes=alibi_slopes, num=num)
    band = causal and window is not None and window + block <= n
    if num.p.ordered_matmuls or num.p.ordered_softmax:
        if band and band_keeps_bits(num.p, block, window):
            return banded(q, k, v, positions, window=window, alibi_slopes=alibi_slopes, num=num,
                          block=block), None
        return query_blocked(q, k, v, positions, causal=causal, window=window,
                             alibi_slopes=alibi_slopes, num=num, block=block), None
    if band:
        return banded(q, k, v, positions, window=window, alibi_slopes=alibi_slopes, num=num,
                      block=block), None
    return online_softmax(q, k, v, positions, causal=causal, window=window,
                          alibi_slopes=alibi_slopes, num=num, block=block), None

