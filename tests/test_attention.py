"""The banded sliding-window path against a float64 NumPy attention written out per query, and
against the dense path; with mutants (window off by one, diagonal key dropped) the comparison must
reject."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from squash_sim import attention as attn
from squash_sim.precision import Numerics
from squash_sim.precision import get as get_precision

FP32 = Numerics(get_precision("fp32"))
# n = 23 is not a multiple of the block (4): the last block is padded; 2 kv heads × 2 query heads
# each, batch 2; windows shorter than, equal to and longer than the block.
B, N, KV, G, H = 2, 23, 2, 2, 8
BLOCK = 4
SLOPES = np.array([0.5, 0.25, 0.125, 0.0625])  # ALiBi, one slope per query head (k·g)


def _qkv(seed: int = 0):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((B, N, KV, G, H)).astype(np.float32)
    k = rng.standard_normal((B, N, KV, H)).astype(np.float32)
    v = rng.standard_normal((B, N, KV, H)).astype(np.float32)
    return q, k, v


def reference(q, k, v, window: int, slopes=None, keep_diagonal: bool = True):
    """float64, one query at a time: softmax over keys i − window < j ≤ i, weighted sum of values.
    keep_diagonal=False is a mutant (key j = i dropped)."""
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    out = np.zeros(q.shape)
    for b in range(q.shape[0]):
        for i in range(q.shape[1]):
            keys = [j for j in range(max(0, i - window + 1), i + 1) if keep_diagonal or j != i]
            if not keys:
                continue  # the mutant's query 0 sees nothing: output 0
            for kv in range(q.shape[2]):
                for g in range(q.shape[3]):
                    scores = np.array([q[b, i, kv, g] @ k[b, j, kv] for j in keys])
                    if slopes is not None:
                        scores -= slopes[kv * q.shape[3] + g] * (i - np.array(keys))
                    weights = np.exp(scores - scores.max())
                    weights /= weights.sum()
                    out[b, i, kv, g] = weights @ v[b, keys, kv]
    return out


def relative_error(got, want) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))


def _banded(q, k, v, window, slopes=None, block=BLOCK):
    return attn.banded(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v), jnp.arange(N),
                       window=window, alibi_slopes=slopes, num=FP32, block=block)


@pytest.mark.parametrize("window", [3, 4, 7])
@pytest.mark.parametrize("alibi", [False, True], ids=["no-bias", "alibi"])
def test_banded_matches_the_float64_reference_and_rejects_its_mutants(window, alibi):
    slopes = SLOPES if alibi else None
    q, k, v = _qkv()
    got = _banded(q, k, v, window, slopes)
    assert got.shape == q.shape
    assert relative_error(got, reference(q, k, v, window, slopes)) < 2e-6
    # Teeth: the same tolerance rejects a window one key too short or too long, and a lost
    # diagonal key, by orders of magnitude.
    for mutant in (reference(q, k, v, window - 1, slopes), reference(q, k, v, window + 1, slopes),
                   reference(q, k, v, window, slopes, keep_diagonal=False)):
        assert relative_error(got, mutant) > 1e-2


def test_banded_equals_dense_within_float32_rounding_and_so_do_its_gradients():
    q, k, v = (jnp.asarray(x) for x in _qkv(1))
    positions = jnp.arange(N)

    def dense(q):
        return attn.dense(q, k, v, positions, positions, causal=True, window=5, alibi_slopes=None,
                          num=FP32)[0]

    assert relative_error(_banded(q, k, v, 5), dense(q)) < 1e-6
    weights = jnp.asarray(np.random.default_rng(0).standard_normal(q.shape), jnp.float32)
    grad_banded = jax.grad(lambda q: (_banded(q, k, v, 5) * weights).sum())(q)
    grad_dense = jax.grad(lambda q: (dense(q) * weights).sum())(q)
    assert relative_error(grad_banded, grad_dense) < 1e-5


def test_attention_takes_the_banded_path_for_long_windowed_causal_layers():
    """attention() past dense_max_len with window + block ≤ n: the banded path's bits; with the
    window too long for a band it takes online softmax, still equal to the reference."""
    q, k, v = (jnp.asarray(x) for x in _qkv(2))
    out, weights = attn.attention(q, k, v, causal=True, window=5, alibi_slopes=None, num=FP32,
                                  return_weights=False, dense_max_len=8, block=BLOCK)
    assert weights is None
    np.testing.assert_array_equal(np.asarray(out), np.asarray(_banded(q, k, v, 5)))
    long, _ = attn.attention(q, k, v, causal=True, window=N, alibi_slopes=None, num=FP32,
                             return_weights=False, dense_max_len=8, block=BLOCK)
    assert relative_error(long, reference(q, k, v, N)) < 2e-6


def test_banded_jit_and_eager_give_identical_bits():
    q, k, v = _qkv(3)
    jitted = jax.jit(lambda q, k, v: _banded(q, k, v, 5, SLOPES))(q, k, v)
    with jax.disable_jit():
        eager = _banded(q, k, v, 5, SLOPES)
    np.testing.assert_array_equal(np.asarray(eager), np.asarray(jitted))


# ---- ordered policies: the band only where it keeps the dense bits ---------------------------
# Window 12, blocks of 8 queries over 23 positions: blocked sums of 4 keys line up with where the
# band starts (4 divides 8 and 12), sums of 3 do not, and a pairwise tree's shape follows indices.


def _ordered(policy: str, q, k, v, *, dense_max_len: int, window: int | None = 12,
             block: int = 8):
    num = Numerics(get_precision(policy))
    run = jax.jit(lambda q, k, v: attn.attention(
        q, k, v, causal=True, window=window, alibi_slopes=None, num=num, return_weights=False,
        dense_max_len=dense_max_len, block=block)[0])
    return np.asarray(run(q, k, v)).view(np.uint32)


def _band_and_dense(policy: str, monkeypatch):
    """(dense bits, bits past dense_max_len, whether the band ran)."""
    q, k, v = (jnp.asarray(x) for x in _qkv(4))
    calls = []
    band = attn.banded
    monkeypatch.setattr(attn, "banded", lambda *a, **kw: calls.append(1) or band(*a, **kw))
    return (_ordered(policy, q, k, v, dense_max_len=N), _ordered(policy, q, k, v, dense_max_len=8),
            bool(calls))


@pytest.mark.parametrize("policy, takes_band", [
    ("bf16-pure", True), ("bf16-pure+kahan", True), ("bf16-pure+block4", True),
    ("bf16-pure+block3", False), ("bf16-pure+pairwise", False)])
def test_ordered_policies_take_the_band_only_where_it_keeps_the_dense_bits(policy, takes_band,
                                                                           monkeypatch):
    dense, long, took = _band_and_dense(policy, monkeypatch)
    assert took == takes_band
    np.testing.assert_array_equal(dense, long)


@pytest.mark.parametrize("policy", ["bf16-pure+block3", "bf16-pure+pairwise"])
def test_the_band_would_change_the_bits_of_the_sums_it_is_refused(policy, monkeypatch):
    """The mutant: band_keeps_bits always true. Blocks of 3 keys then start elsewhere in the band
    than in the dense row, and the pairwise tree takes another shape: the bits differ."""
    monkeypatch.setattr(attn, "band_keeps_bits", lambda *args: True)
    dense, long, took = _band_and_dense(policy, monkeypatch)
    assert took and not np.array_equal(dense, long)

