"""Figures 10 and 8 of [G] (theory.md, Theorem B.3): one causal attention layer on i.i.d. Gaussian
queries, keys and values; the (n+1)-sequence repeats token n.

    y_n      = Σ_{j≤n}   softmax_j(s(q_n, k_j, n, j))   v_j        (query n over keys 1..n)
    y*_{n+1} = Σ_{j≤n+1} softmax_j(s(q_n, k*_j, n+1, j)) v*_j      (k*_{n+1} = k_n, v*_{n+1} = v_n)

Only these two query rows matter, so each n costs O(n·d): the two queries go through
squash_sim.attention.dense together, over the n + 1 keys at positions 0..n (the causal mask hides
key n from the first). Positional encodings act as in the model: RoPE rotates q and k by their
positions, ALiBi adds −m·(i − j) with m = 2⁻⁸ (one head), sinusoidal is added to q and k (the
values are sampled directly, as the protocol says), NoPE adds nothing. Scores are q·k/√d.

Variance. theory.md gives q, k, v ~ N(0, 1) for Figure 10 and N(0, 1/d) for Figure 8, but the
Figure 10 read-offs (≈ 0.95 at n = 5, ≈ 0.065 at 100, ≈ 0.006–0.008 at 1000) are what N(0, 1/d)
gives (measured: 0.95, 0.064, 0.0065); N(0, 1) gives values ≈ 6–8× larger (5.8, 0.47, 0.068), the
scale of ‖v‖₁. `variance="1/d"` is therefore the default; "1" is the text's literal protocol.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from squash_sim import attention, checks, positional
from squash_sim.analysis.onset import first_from
from squash_sim.precision import Numerics, Precision
from squash_sim.precision import get as get_precision

POSITIONALS = ("none", "sinusoidal", "rope", "alibi")
FIGURE10_N = (5, 10, 100, 500, 1000, 5000)
ALIBI_SLOPE = 2.0 ** -8  # the default slope of a one-head model, 2^(−8h/H) with h = H = 1
ROPE_BASE = 10_000.0


@dataclasses.dataclass
class AttentionCollapseResult:
    """‖y_n − y*_{n+1}‖₁ per seed and n for one positional encoding."""

    positional: str
    n: np.ndarray  # (N,)
    l1: np.ndarray  # (seeds, N)
    bit_identical: np.ndarray  # (seeds, N) bool: identical AND sound (nothing overflowed)
    variance: str
    precision: str
    window: int | None
    status: np.ndarray | None = None  # (seeds, N) "distinct" / "bit-identical" / "overflow" /
    #                                   "non-finite": an overflowed pair is never collapse

    @property
    def mean(self) -> np.ndarray:
        return self.l1.mean(axis=0)

    def decay_exponent(self, n_min: int = 50) -> float:
        """Slope of log(mean ‖Δ‖₁) against log n for n ≥ n_min (−1: c/n)."""
        keep = (self.n >= n_min) & (self.mean > 0)
        return float(np.polyfit(np.log(self.n[keep]), np.log(self.mean[keep]), 1)[0])

    def first_below(self, level: float) -> int | None:
        """Smallest n from which the mean distance stays below `level` (None: never)."""
        return first_from(self.mean < level, self.n)

    def rows(self) -> list[dict]:
        return [{"positional": self.positional, "window": self.window, "n": int(n),
                 "seed": seed, "l1": float(self.l1[seed, i]),
                 "bit_identical": bool(self.bit_identical[seed, i]),
                 "status": str(self.status[seed, i]) if self.status is not None else None}
                for seed in range(self.l1.shape[0]) for i, n in enumerate(self.n)]


def log_grid(max_n: int, per_decade: int = 12, extra=FIGURE10_N) -> np.ndarray:
    """About `per_decade` log-spaced n from 1 to max_n, plus the paper's n values."""
    grid = np.unique(np.round(np.logspace(0, math.log10(max_n), per_decade *
                                          max(1, round(math.log10(max_n))) + 1)).astype(int))
    return np.unique(np.concatenate([grid, [n for n in extra if n <= max_n]]))


def _bucket(n_keys: int) -> int:
    """Key arrays are padded to a power of two (≥ 16) so the n grid shares a few compiles."""
    return max(16, 1 << (n_keys - 1).bit_length())


@functools.partial(jax.jit, static_argnames=("encoding", "precision", "window", "d"))
def _pair(q, k, v, n, *, encoding: str, precision: Precision, window: int | None, d: int):
    """q, k, v: (S, B, d) per seed, the first n tokens real (B ≥ n + 1). → (y_n, y*_{n+1}) (S, d)"""
    num = Numerics(precision)
    bucket = k.shape[1]
    key_positions = jnp.arange(bucket)
    last = n - 1
    # keys/values 0..n−1, then token n−1 repeated at position n; padding after (causally hidden).
    index = jnp.where(key_positions < n, key_positions, last)
    k_star, v_star = k[:, index], v[:, index]  # (S, B, d)
    query = jnp.stack([q[:, last], q[:, last]], axis=1)  # (S, 2, d): the same token at n−1 and n
    query_positions = jnp.stack([last, n])
    if encoding in positional.ADDED:  # the protocol adds the absolute term to q and k
        query = query + positional.stream_term(encoding, query_positions, d)
        k_star = k_star + positional.stream_term(encoding, key_positions, d)
    query = positional.rotate(encoding, query[:, :, None], query_positions, ROPE_BASE)[:, :, 0]
    k_star = positional.rotate(encoding, k_star[:, :, None], key_positions, ROPE_BASE)[:, :, 0]
    query = num.act(query / math.sqrt(d))
    out, _ = attention.dense(
        query[:, :, None, None], num.act(k_star)[:, :, None], num.act(v_star)[:, :, None],
        query_positions, key_positions, causal=True, window=window,
        alibi_slopes=(ALIBI_SLOPE,) if encoding in positional.BIASED else None, num=num)
    out = out[:, :, 0, 0]  # (S, 2, d)
    return out[:, 0], out[:, 1]


def run(positional_encoding: str = "none", ns=FIGURE10_N, *, seeds: int = 5, d: int = 64,
        variance: str = "1/d", precision: Precision | str = "fp32",
        window: int | None = None) -> AttentionCollapseResult:
    """The Figure 10 protocol for one positional encoding over the n values `ns`, `seeds` draws."""
    checks.choice("attention_collapse", "positional_encoding", positional_encoding, POSITIONALS)
    checks.choice("attention_collapse", "variance", variance, ("1/d", "1"))
    ns = np.asarray(sorted(set(checks.integers("attention_collapse", "ns", ns, 1, 2**24))))
    checks.integer("attention_collapse", "seeds", seeds)
    checks.integer("attention_collapse", "d", d)
    if window is not None:
        checks.integer("attention_collapse", "window", window)
    precision = get_precision(precision)
    if precision.compute_dtype != "float32":
        raise ValueError("attention_collapse: use a float32-container precision (not fp64)")
    scale = 1.0 / math.sqrt(d) if variance == "1/d" else 1.0
    biggest = _bucket(int(ns[-1]) + 1)
    rng = np.random.default_rng(0)
    # (S, biggest, d) each: the tokens of a seed are the same for every n (prefixes of one draw).
    q, k, v = (rng.standard_normal((3, seeds, biggest, d)) * scale).astype(np.float32)
    l1 = np.empty((seeds, ns.size))
    same = np.empty((seeds, ns.size), bool)
    status = np.empty((seeds, ns.size), object)
    # Overflow: an output at or beyond the activation format's largest finite value (saturated).
    fmt = precision.activations
    limit = fmt.max if fmt is not None else float(np.finfo(np.float32).max)
    for i, n in enumerate(ns):
        bucket = _bucket(int(n) + 1)
        y, y_star = _pair(q[:, :bucket], k[:, :bucket], v[:, :bucket], jnp.int32(n),
                          encoding=positional_encoding, precision=precision, window=window,
                          d=d)
        y, y_star = np.asarray(y), np.asarray(y_star)
        l1[:, i] = np.abs(y.astype(np.float64) - y_star).sum(axis=1)
        both = np.concatenate([y, y_star], axis=1)  # (S, 2d)
        identical = np.all(y.view(np.uint32) == y_star.view(np.uint32), axis=1)
        nonfinite = ~np.all(np.isfinite(both), axis=1)
        overflow = np.any(np.abs(both) >= limit, axis=1)
        status[:, i] = np.where(nonfinite, "non-finite", np.where(
            overflow, "overflow", np.where(identical, "bit-identical", "distinct")))
        same[:, i] = identical & ~nonfinite & ~overflow
    return AttentionCollapseResult(positional_encoding, ns, l1, same, variance, str(precision),
                                   window, status.astype(str))
