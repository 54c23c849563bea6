"""Counting (theory.md, Proposition B.9): with bidirectional attention and no positional encoding a
Transformer sees only the ratio n₁/n₀ of a sequence of n₀ zeros and n₁ ones — "01" and "0011" give
the same states at every layer, so it cannot count. A causal mask or a positional encoding breaks
the symmetry.

For each setting and scale k, the states (every layer) of the first zero and the first one of
0^(k·n₀) 1^(k·n₁) are compared with those of 0^n₀ 1^n₁ (k = 1), in float64: the maximum absolute
difference is ≈ 1e-16 where the proposition applies and O(1) where it does not.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from squash_sim import ModelConfig, checks, forward, init_params

SETTINGS = {  # label → (causal, positional)
    "bidirectional, NoPE (Prop B.9)": (False, "none"),
    "causal mask, NoPE": (True, "none"),
    "bidirectional, RoPE": (False, "rope"),
    "bidirectional, sinusoidal": (False, "sinusoidal"),
}


@dataclasses.dataclass
class CountingResult:
    n0: int
    n1: int
    scales: np.ndarray  # (K,)
    difference: dict  # setting → (seeds, K) max |state(k) − state(1)| over layers and features

    def rows(self) -> list[dict]:
        return [{"setting": label, "n0": self.n0, "n1": self.n1, "k": int(k), "seed": s,
                 "max_abs_difference": float(diff[s, i])}
                for label, diff in self.difference.items() for s in range(diff.shape[0])
                for i, k in enumerate(self.scales)]


def states(params, config: ModelConfig, n0: int, n1: int) -> np.ndarray:
    """Every layer's state of the first zero and the first one. → (L+1, 2, d)"""
    tokens = np.array([0] * n0 + [1] * n1, np.int32)
    hidden = np.asarray(forward(params, tokens, config, "fp64").hidden)  # (L+1, n, d)
    return hidden[:, [0, n0]]


def run(n0: int = 1, n1: int = 2, scales=(1, 2, 3, 4, 6, 8, 12, 16), *, layers: int = 2,
        seeds: int = 3) -> CountingResult:
    for name, value in (("n0", n0), ("n1", n1), ("layers", layers), ("seeds", seeds)):
        checks.integer("counting", name, value)
    scales = np.asarray(sorted(set(checks.integers("counting", "scales", scales, 1, 4096)) | {1}))
    difference = {}
    for label, (causal, positional) in SETTINGS.items():
        config = ModelConfig(vocab_size=2, d_model=16, n_layers=layers, n_heads=2,
                             positional=positional, norm="layernorm", mlp="gelu", causal=causal)
        per_seed = []
        for seed in range(seeds):
            params = init_params(config, jax.random.key(seed))
            base = states(params, config, n0, n1)
            per_seed.append([np.abs(states(params, config, k * n0, k * n1) - base).max()
                             for k in scales])
        difference[label] = np.array(per_seed)
    return CountingResult(n0, n1, scales, difference)
