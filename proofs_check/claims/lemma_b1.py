"""Lemma B.1: appending an element lowers the last softmax weight, by Θ(n⁻²) (theory.md §2).

x = [a, c], x* = [a, b, c], a ∈ ℝ^{n−1} with entries ≥ m. With A = Σ e^{a_k}:
    softmax(x)_n − softmax(x*)_{n+1} = e^{b+c} / ((A + e^c)(A + e^b + e^c)) ≤ e^{b+c−2m}/(n−1)².
Checked: the gap is positive, equals the closed form to a few ulps of the weights, and obeys the
bound. `slope()` fits the log-log slope of the gap over n ∈ [10, 10⁶] (expected −2).
Theory: squash_sim/theory.md#lemma_b1
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from proofs_check.claims.base import Outcome
from proofs_check.claims.domain import SEED, Int, Real, Record

NAME = "lemma_b1"
REFERENCE = "[G] Lemma B.1"
ASSUMPTIONS = "a, b, c bounded; a_k ≥ m"
STATEMENT = "softmax(x)_n > softmax(x*)_{n+1}; gap = closed form ≤ e^{b+c-2m}/(n-1)^2"
LATEX = r"0 < \mathrm{sm}(x)_n - \mathrm{sm}(x^*)_{n+1} = \frac{e^{b+c}}{(A+e^c)(A+e^b+e^c)} \le \frac{e^{b+c-2m}}{(n-1)^2}"

DOMAIN = Record({"n": Int(2, 10**6), "m": Real(-5, 5), "width": Real(0, 5), "b": Real(-5, 5),
                 "c": Real(-5, 5), "seed": SEED})
# (|m|, |b|, |c|, width <= 5 and n <= 10⁶ keep the gap above 10⁻¹³ of the last weight: far above the
#  float64 rounding of the direct difference, so the "gap > 0" check cannot fail by rounding.)


def instances():
    return st.builds(lambda n, m, width, b, c, seed: {"n": n, "m": m, "width": width, "b": b,
                                                      "c": c, "seed": seed},
                     st.integers(2, 20000), st.floats(-3, 3), st.floats(0, 4), st.floats(-3, 3),
                     st.floats(-3, 3), st.integers(0, 2**31 - 1))


def _parts(inst):
    a = np.random.default_rng(inst["seed"]).uniform(inst["m"], inst["m"] + inst["width"],
                                                    inst["n"] - 1)
    b, c, n = inst["b"], inst["c"], inst["n"]
    A = np.exp(a).sum()
    last = np.exp(c) / (A + np.exp(c))
    last_star = np.exp(c) / (A + np.exp(b) + np.exp(c))
    closed = np.exp(b + c) / ((A + np.exp(c)) * (A + np.exp(b) + np.exp(c)))
    m = a.min() if a.size else inst["m"]
    return last, last_star, closed, m, n


def _check(inst, power):
    last, last_star, closed, m, n = _parts(inst)
    gap = last - last_star
    bound = np.exp(inst["b"] + inst["c"] - 2 * m) / (n - 1) ** power
    agrees = abs(gap - closed) <= 8 * np.spacing(last)
    holds = gap > 0 and agrees and closed <= bound * (1 + 1e-12)
    return Outcome(float(closed), float(bound), bool(holds),
                   note=f"direct gap {gap:.6g}, closed form {closed:.6g}")


def evaluate(inst):
    return _check(inst, 2)


SLOPE_LENGTHS = np.geomspace(10, 1e6, 25).astype(int)


def slope(n_values=SLOPE_LENGTHS, seed=0) -> float:
    """Log-log slope of the exact gap against n, a ~ U[0,1], b = c = 0 (theory: −2)."""
    gaps = [_parts({"n": int(n), "m": 0.0, "width": 1.0, "b": 0.0, "c": 0.0, "seed": seed})[2]
            for n in n_values]
    return float(np.polyfit(np.log(n_values), np.log(gaps), 1)[0])


MUTANTS = {"(n-1)^-3 instead of (n-1)^-2": lambda inst: _check(inst, 3)}
