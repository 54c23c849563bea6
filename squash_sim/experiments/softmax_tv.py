"""Figure 9 of [G] (theory.md, Lemma B.2): the total variation between softmax(x) and softmax(x*)
for sequences that agree after their first k entries.

Protocol: x ~ U[0, 1]ⁿ; x*_i = x_i + U[0, 0.1] for i ≤ k = 200, x*_i = x_i after; δ = ‖·‖₁ (the
paper's TV, no ½); n ∈ {500, …, 10000}; 5 seeds; min/max bars; the bf16 spacing 2⁻⁷ for scale.
Computed in float64 NumPy (it is a statement about real numbers, not about the model).

The reference curve (`expected_tv`) is derived independently of the sampling: with A = Σ_{i≤k}e^{x_i},
B = Σ_{i>k}e^{x_i}, D = Z* − Z and every perturbed weight rising (e^{u_i} ≥ Z*/Z),
    δ = (A + D)/Z* − A/Z + B(1/Z − 1/Z*) = 2BD / (Z Z*)
and replacing the sums by their expectations (E e^x = e − 1, E e^u = 10(e^0.1 − 1)):
    δ̄(n) = 2 (n − k) c / (n (n + c)),   c = k (E e^u − 1) ≈ 10.34 for k = 200.
It decays like 2c/n.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from squash_sim import checks

FIGURE9_N = (500, 750, 1000, 1500, 2000, 2500, 3000, 4000, 5000, 10000)
K = 200
PERTURBATION = 0.1


@dataclasses.dataclass
class SoftmaxTVResult:
    n: np.ndarray  # (N,)
    tv: np.ndarray  # (seeds, N)
    k: int

    @property
    def mean(self) -> np.ndarray:
        return self.tv.mean(axis=0)

    @property
    def expected(self) -> np.ndarray:
        return expected_tv(self.n, self.k)

    def rows(self) -> list[dict]:
        return [{"n": int(n), "seed": s, "tv": float(self.tv[s, i]),
                 "expected": float(self.expected[i])}
                for s in range(self.tv.shape[0]) for i, n in enumerate(self.n)]


def expected_tv(n, k: int = K, perturbation: float = PERTURBATION):
    """δ̄(n) = 2(n − k)c / (n(n + c)), c = k(E e^u − 1), u ~ U[0, perturbation] (module doc)."""
    n = np.asarray(n, np.float64)
    c = k * ((np.exp(perturbation) - 1) / perturbation - 1)
    return 2 * (n - k) * c / (n * (n + c))


def tv(n: int, seed: int, k: int = K, perturbation: float = PERTURBATION) -> float:
    """δ(softmax x, softmax x*) for one draw."""
    checks.integer("softmax_tv", "n", n, 1, 2**26)
    checks.seed("softmax_tv", seed)
    checks.integer("softmax_tv", "k", k)
    checks.number("softmax_tv", "perturbation", perturbation, positive=True)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, n)
    x_star = x.copy()
    x_star[:k] += rng.uniform(0, perturbation, min(k, n))
    p = np.exp(x - x.max())
    p_star = np.exp(x_star - x_star.max())
    return float(np.abs(p / p.sum() - p_star / p_star.sum()).sum())


def run(ns=FIGURE9_N, seeds: int = 5, k: int = K) -> SoftmaxTVResult:
    checks.integer("softmax_tv", "seeds", seeds)
    checks.integer("softmax_tv", "k", k)
    ns = np.asarray(sorted(set(checks.integers("softmax_tv", "ns", ns, 1, 2**26))))
    if ns.size == 0 or ns[0] <= k:
        raise ValueError(f"softmax_tv: every n must exceed k = {k}, got {ns.tolist()}")
    values = np.array([[tv(int(n), seed, k) for n in ns] for seed in range(seeds)])
    return SoftmaxTVResult(ns, values, k)
