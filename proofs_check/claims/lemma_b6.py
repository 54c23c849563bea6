"""Lemma B.6: spectrum of a causal attention matrix (theory.md §2).

A lower-triangular row-stochastic Λ has eigenvalues = its diagonal; the largest is 1 (Λ₁₁ = 1);
1 is a simple eigenvalue when every row after the first has at least two non-zeros.
Theory: squash_sim/theory.md#lemma_b6
"""

from __future__ import annotations

import numpy as np

from proofs_check.claims.base import Outcome
from proofs_check.claims.domain import CausalMatrix
from squash_sim import strategies as sst

NAME = "lemma_b6"
REFERENCE = "[G] Lemma B.6"
ASSUMPTIONS = "Λ lower-triangular, row-stochastic"
STATEMENT = "eig(Λ) = diag(Λ); max eigenvalue 1 = Λ11; simple if rows after the first have ≥ 2 non-zeros"
LATEX = r"\mathrm{spec}(\Lambda) = \{\Lambda_{ii}\},\ \lambda_{\max} = \Lambda_{11} = 1"

DOMAIN = CausalMatrix(1, 64)


def instances():
    return sst.causal_attention_matrices()


def _check(inst, claimed_eigenvalues):
    lam = np.array(inst)
    eig = np.sort(np.linalg.eigvals(lam).real)
    claimed = np.sort(claimed_eigenvalues(lam))
    error = float(np.max(np.abs(eig - claimed)))
    simple_needed = all(np.count_nonzero(row) >= 2 for row in lam[1:])
    ones = int(np.sum(np.abs(np.diag(lam) - 1) < 1e-12))
    holds = error <= 1e-9 and abs(lam[0, 0] - 1) < 1e-12 and abs(eig.max() - 1) < 1e-9
    if simple_needed:
        holds = holds and ones == 1
    return Outcome(error, 1e-9, bool(holds), note=f"n {lam.shape[0]}, diagonal ones {ones}")


def evaluate(inst):
    return _check(inst, np.diag)


MUTANTS = {"eigenvalues = first column": lambda inst: _check(inst, lambda m: m[:, 0])}
