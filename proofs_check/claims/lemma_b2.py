"""Lemma B.2 [4.1]: softmax of eventually-equal sequences (theory.md §2).

δ(p, q) = ‖p − q‖₁ (no ½). With Z = Σe^{x_i}, Z* = Σe^{x*_i}, S = Σ|e^{x_i} − e^{x*_i}|:
    δ(softmax x, softmax x*) ≤ (|Z − Z*| + S)/Z*  and  ≤ 2S / max(Z, Z*).
Instances follow Figure 9: x ~ U[0,1]ⁿ, x*_i = x_i + U[0, 0.1] for i ≤ k, equal after.
Theory: squash_sim/theory.md#lemma_b2
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from proofs_check.claims.base import Outcome
from proofs_check.claims.domain import SEED, Int, Record

NAME = "lemma_b2"
REFERENCE = "[G] Lemma B.2 (main text Lemma 4.1), Figure 9"
ASSUMPTIONS = "bounded x, x*; they differ only on the first k entries"
STATEMENT = "TV (no 1/2) of the softmaxes <= (|Z-Z*|+S)/Z* and <= 2S/max(Z,Z*)"
LATEX = r"\|\mathrm{sm}(x)-\mathrm{sm}(x^*)\|_1 \le \frac{|Z-Z^*|+S}{Z^*}, \quad \le \frac{2S}{\max(Z,Z^*)}"

DOMAIN = Record({"n": Int(1, 10**6), "k": Int(0, 10**6), "seed": SEED},
                rule=lambda i: None if i["k"] <= i["n"] else "needs k <= n")


def instances():
    return st.builds(lambda n, k, seed: {"n": n, "k": min(k, n), "seed": seed},
                     st.integers(1, 10000), st.integers(0, 400), st.integers(0, 2**31 - 1))


def _parts(inst):
    rng = np.random.default_rng(inst["seed"])
    x = rng.uniform(0, 1, inst["n"])
    x_star = x.copy()
    x_star[: inst["k"]] += rng.uniform(0, 0.1, inst["k"])
    e, e_star = np.exp(x), np.exp(x_star)
    Z, Z_star = e.sum(), e_star.sum()
    delta = np.abs(e / Z - e_star / Z_star).sum()
    return delta, Z, Z_star, np.abs(e - e_star).sum()


def _check(inst, factor):
    delta, Z, Z_star, S = _parts(inst)
    first = (abs(Z - Z_star) + S) / Z_star
    second = factor * S / max(Z, Z_star)
    bound = min(first, second) if factor == 2 else second
    tol = 1e-12 + 64 * np.finfo(float).eps
    holds = delta <= first + tol and delta <= second + tol
    return Outcome(float(delta), float(bound), bool(holds), note=f"S {S:.4g}")


def evaluate(inst):
    return _check(inst, 2)


MUTANTS = {"S/max(Z,Z*) (factor 2 dropped)": lambda inst: _check(inst, 1)}
