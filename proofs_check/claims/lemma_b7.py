"""Lemma B.7: products of causal row-stochastic matrices stay causal and row-stochastic.
Theory: squash_sim/theory.md#lemma_b7
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from proofs_check.claims.base import Outcome
from proofs_check.claims.domain import CausalMatrix, ListOf
from squash_sim import strategies as sst

NAME = "lemma_b7"
REFERENCE = "[G] Lemma B.7"
ASSUMPTIONS = "each factor lower-triangular and row-stochastic, same size"
STATEMENT = "the product is lower-triangular and row-stochastic"
LATEX = r"\prod_\ell \Lambda^{(\ell)} \mathbf{1} = \mathbf{1},\ \text{lower-triangular}"

DOMAIN = ListOf(CausalMatrix(1, 32), 1, 16)


def instances():
    return st.integers(2, 9).flatmap(lambda n: st.lists(
        sst.causal_attention_matrices(min_n=n, max_n=n), min_size=1, max_size=6))


def _check(inst, axis):
    product = np.linalg.multi_dot([np.eye(len(inst[0]))] + [np.array(m) for m in inst])
    sums_error = float(np.max(np.abs(product.sum(axis=axis) - 1)))
    above_diagonal = float(np.max(np.abs(np.triu(product, 1)), initial=0.0))
    error = max(sums_error, above_diagonal)
    return Outcome(error, 1e-12, error <= 1e-12, note=f"{len(inst)} factors")


def evaluate(inst):
    return _check(inst, 1)


MUTANTS = {"column-stochastic": lambda inst: _check(inst, 0)}
