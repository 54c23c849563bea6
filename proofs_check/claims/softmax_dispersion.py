"""Softmax dispersion (used implicitly by Lemma B.1 and Theorem B.3; theory.md §2).

If every logit lies in [m, M], every softmax weight lies in [e^{−(M−m)}/n, e^{M−m}/n].
Theory: squash_sim/theory.md#softmax_dispersion
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from proofs_check.claims.base import inequality
from proofs_check.claims.domain import SEED, Int, Real, Record

NAME = "softmax_dispersion"
REFERENCE = "[G] used in the proofs of Lemma B.1 and Theorem B.3"
ASSUMPTIONS = "logits bounded in [m, M]"
STATEMENT = "every softmax weight lies in [exp(-(M-m))/n, exp(M-m)/n]"
LATEX = r"\frac{e^{-(M-m)}}{n} \le \mathrm{softmax}(x)_i \le \frac{e^{M-m}}{n}"

DOMAIN = Record({"m": Real(-50, 50), "M": Real(-50, 70), "n": Int(1, 10**6), "seed": SEED},
                rule=lambda i: None if 0 <= i["M"] - i["m"] <= 20 else "needs 0 <= M - m <= 20")


def instances():
    return st.builds(lambda m, width, n, seed: {"m": m, "M": m + width, "n": n, "seed": seed},
                     st.floats(-20, 20), st.floats(0, 8), st.integers(1, 5000),
                     st.integers(0, 2**31 - 1))


def _weights(inst):
    x = np.random.default_rng(inst["seed"]).uniform(inst["m"], inst["M"], inst["n"])
    e = np.exp(x - x.max())
    return e / e.sum()


def _check(inst, spread):
    w = _weights(inst)
    n, width = inst["n"], inst["M"] - inst["m"]
    lower, upper = np.exp(-spread * width) / n, np.exp(spread * width) / n
    # One number: the larger of the two used fractions of the bounds (≤ 1 when both hold).
    used = max(w.max() / upper, lower / w.min())
    return inequality(used, 1.0, rtol=1e-12, note=f"max w {w.max():.3g}, min w {w.min():.3g}")


def evaluate(inst):
    return _check(inst, 1.0)


MUTANTS = {"bounds with (M-m)/4 in the exponent": lambda inst: _check(inst, 0.25)}
