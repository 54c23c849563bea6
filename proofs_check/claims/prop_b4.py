"""Proposition B.4: no collapse without decaying positional information (theory.md §2).

x = (1, 0, 1, 0, …), x* = (0, 1, 0, 1, …), n even: δ(softmax x, softmax x*) = 2(e−1)/(e+1) for
every even n (δ without the ½), so the two never become close.
Theory: squash_sim/theory.md#prop_b4
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from proofs_check.claims.base import Outcome
from proofs_check.claims.domain import Int, Record

NAME = "prop_b4"
REFERENCE = "[G] Proposition B.4"
ASSUMPTIONS = "n even"
STATEMENT = "TV (no 1/2) between softmax(1,0,1,0,...) and softmax(0,1,0,1,...) = 2(e-1)/(e+1)"
LATEX = r"\|\mathrm{sm}(x)-\mathrm{sm}(x^*)\|_1 = \frac{2(e-1)}{e+1}"
CONSTANT = 2 * (math.e - 1) / (math.e + 1)  # 0.924234…

DOMAIN = Record({"n": Int(2, 10**6)}, rule=lambda i: None if i["n"] % 2 == 0 else "needs n even")


def instances():
    return st.builds(lambda half: {"n": 2 * half}, st.integers(1, 500_000))


def _distance(n):
    x = np.tile([1.0, 0.0], n // 2)
    p, q = np.exp(x) / np.exp(x).sum(), np.exp(x[::-1]) / np.exp(x[::-1]).sum()
    return float(np.abs(p - q).sum())


def _check(inst, constant):
    distance = _distance(inst["n"])
    error = abs(distance - constant)
    return Outcome(error, 1e-9, error <= 1e-9, note=f"δ = {distance:.12f}")


def evaluate(inst):
    return _check(inst, CONSTANT)


MUTANTS = {"the ½ put back into δ": lambda inst: _check(inst, CONSTANT / 2)}
