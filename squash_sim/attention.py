"""Masked softmax attention, written out: score, mask, softmax, weighted sum.

Dimension letters (used in every einsum here and in model.py):
    b batch · n query position · m key position · k key/value head · g query head within a group
    h head dimension.   Queries q: (b, n, k, g, h); keys and values: (b, m, k, h).

Three evaluation paths give the same function:
  * dense            the full (n, m) score matrix; used for short sequences and whenever the
                     attention weights are asked for;
  * query-blocked    dense arithmetic one block of queries at a time (memory O(block·n)); used for
                     long sequences when the precision policy orders its reductions, because every
                     row is computed by exactly the same operations as in the dense path (same bits);
  * online softmax   flash-attention style: a running max, sum and weighted sum per query, over
                     only the (query block, key block) pairs that the causal mask and sliding window
                     leave visible; memory O(n); used for long sequences in native float32. Equal to
                     dense within float32 rounding (the sums are reassociated).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
from jax import lax

from squash_sim import positional
from squash_sim.precision import Numerics

DENSE_MAX_LEN = 1024  # longer sequences take a blocked path unless the weights are returned
BLOCK = 512
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
    scores = num.einsum("bnkgh,bmkh->bkgnm", q, k)
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
    out = num.act(num.einsum("bkgnm,bmkh->bnkgh", weights, v))
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


def _visible_block_pairs(n_blocks: int, block: int, causal: bool, window: int | None):
    """The (query block, key block) pairs holding at least one visible (query, key) pair."""
    pairs = []
    for i in range(n_blocks):
        for j in range(n_blocks):
            if causal and j > i:
                continue
            closest = max(abs(i - j) * block - (block - 1), 0)  # smallest |query − key| across
            if window is not None and closest >= window:
                continue
            pairs.append((i, j))
    return np.array(pairs, dtype=np.int32)


def online_softmax(q, k, v, positions, *, causal, window, alibi_slopes, num: Numerics,
                   block: int = BLOCK):
    """Flash-style attention in native float32 over the visible block pairs. → (b, n, k, g, h)"""
    b, n, n_kv, group, d_head = q.shape
    n_blocks = math.ceil(n / block)
    padded = n_blocks * block
    pad = padded - n
    q = jnp.pad(q, ((0, 0), (0, pad), (0, 0), (0, 0), (0, 0)))
    k = jnp.pad(k, ((0, 0), (0, pad), (0, 0), (0, 0)))
    v = jnp.pad(v, ((0, 0), (0, pad), (0, 0), (0, 0)))
    all_positions = jnp.arange(padded)
    pairs = _visible_block_pairs(n_blocks, block, causal, window)

    def step(carry, pair):
        out, row_max, row_sum = carry  # (b, N, k, g, h), (b, k, g, N), (b, k, g, N)
        i, j = pair[0] * block, pair[1] * block
        q_i = lax.dynamic_slice_in_dim(q, i, block, axis=1)  # (b, B, k, g, h)
        k_j = lax.dynamic_slice_in_dim(k, j, block, axis=1)  # (b, B, k, h)
        v_j = lax.dynamic_slice_in_dim(v, j, block, axis=1)
        query_positions = lax.dynamic_slice_in_dim(all_positions, i, block)
        key_positions = lax.dynamic_slice_in_dim(all_positions, j, block)
        scores = _scores(q_i, k_j, query_positions, key_positions, alibi_slopes, causal, num)
        ok = visible(query_positions, key_positions, causal, window) & (key_positions < n)[None]
        scores = jnp.where(ok, scores, _NEG)  # (b, k, g, B, B)
        old_max = lax.dynamic_slice_in_dim(row_max, i, block, axis=3)  # (b, k, g, B)
        old_sum = lax.dynamic_slice_in_dim(row_sum, i, block, axis=3)
        old_out = lax.dynamic_slice_in_dim(out, i, block, axis=1)  # (b, B, k, g, h)
        new_max = jnp.maximum(old_max, scores.max(axis=-1))
        exps = jnp.where(ok, jnp.exp(scores - new_max[..., None]), 0.0)
        correction = jnp.exp(old_max - new_max)  # (b, k, g, B)
        new_sum = old_sum * correction + exps.sum(axis=-1)
        new_out = (old_out * jnp.einsum("bkgn->bnkg", correction)[..., None]
                   + jnp.einsum("bkgnm,bmkh->bnkgh", exps, v_j, precision=lax.Precision.HIGHEST))
        out = lax.dynamic_update_slice_in_dim(out, new_out, i, axis=1)
        row_max = lax.dynamic_update_slice_in_dim(row_max, new_max, i, axis=3)
        row_sum = lax.dynamic_update_slice_in_dim(row_sum, new_sum, i, axis=3)
        return (out, row_max, row_sum), None

    init = (jnp.zeros_like(q), jnp.full((b, n_kv, group, padded), _NEG, q.dtype),
            jnp.zeros((b, n_kv, group, padded), q.dtype))
    (out, _, row_sum), _ = lax.scan(step, init, jnp.asarray(pairs))
    out = out / jnp.einsum("bkgn->bnkg", row_sum)[..., None]
    return num.act(out[:, :n])


def attention(q, k, v, *, causal: bool, window: int | None, alibi_slopes, num: Numerics,
              return_weights: bool, dense_max_len: int = DENSE_MAX_LEN, block: int = BLOCK):
    """Attention over positions 0..n−1, choosing the path by length (see the module docstring).
    → output (b, n, k, g, h), weights (b, k, g, n, n) or None"""
    n = q.shape[1]
    positions = jnp.arange(n)
    if return_weights or n <= dense_max_len:
        return dense(q, k, v, positions, positions, causal=causal, window=window,
                     alibi_slopes=alibi_slopes, num=num)
    if num.p.ordered_matmuls or num.p.ordered_softmax:
        return query_blocked(q, k, v, positions, causal=causal, window=window,
                             alibi_slopes=alibi_slopes, num=num, block=block), None
    return online_softmax(q, k, v, positions, causal=causal, window=window,
                          alibi_slopes=alibi_slopes, num=num, block=block), None

