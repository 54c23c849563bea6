"""Corollary B.10 [6.2]: counting is impossible in finite precision (theory.md §2 and §3).

For the Theorem B.3 pair — a prompt plus n ones, and the same plus n + 1 ones — the final
readouts become bit-identical for large finite n, so a model cannot tell the counts apart. Per
float format and precision policy we measure the collapse length n* (the first n from which every
larger swept n gives bit-identical, finite outputs), from one forward pass, and put the rule-of-thumb
estimate c/ε beside it (c fitted from ‖Δ‖₁·n on the same curve). A collapse counts only if it lasts
over at least the last quarter of the sweep (a few identical n at the end can be chance: each
coordinate straddles a rounding boundary with probability ≈ |Δᵢ|/spacing). The assumption "n* within
reach" needs the estimate inside the first eighth of the sweep; otherwise it is reported as not met
(bf16 storage: c/ε ≈ 10³ against a 2048 sweep; fp32: n* ≈ 5·10⁷).
Theory: docs/theory.md#corollary_b10
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from proofs_check.claims.base import Outcome
from squash_sim import floats, presets
from squash_sim.experiments import collapse

NAME = "corollary_b10"
REFERENCE = "[G] Corollary B.10 (main text Corollary 6.2); theory.md §3"
ASSUMPTIONS = "NoPE, one layer (paper-fig10); the estimate c/ε lies inside the sweep"
STATEMENT = "fl(y_n) == fl(y*_{n+1}) bit for bit for every n >= n*, with n* finite"
LATEX = r"\exists n^*:\ \mathrm{fl}(y_n) = \mathrm{fl}(y^*_{n+1})\ \forall n \ge n^*"
DEFAULT_EXAMPLES = 6
MAX_LEN = 2048
# In-reach formats first (Hypothesis favours early entries), then two whose n* lies beyond the sweep.
POLICIES = ("fp8_e4m3fn", "fp8_e5m2", "e3m4", "fp8_e4m3fn-pure", "bf16", "fp16", "bf16-pure")


def instances():
    return st.fixed_dictionaries({"precision": st.sampled_from(POLICIES),
                                  "seed": st.integers(0, 2**31 - 1)})


def measure(inst):
    """(collapse length or None, c/ε estimate, both finite) for one policy."""
    config = presets.get("paper-fig10")
    try:
        result = collapse.run(config, inst["precision"], max_len=MAX_LEN, seed=inst["seed"] % 2**31)
    except FloatingPointError:
        return None, float("inf"), False
    window = (result.n >= 16) & (result.n <= 128) & (result.l1 > 0)
    c = float(np.median(result.l1[window] * result.n[window])) if window.any() else float("nan")
    fmt = floats.get(inst["precision"].removesuffix("-pure"))
    return result.collapse_length, c / fmt.eps, True


def _check(inst, precision=None):
    inst = dict(inst, precision=precision or inst["precision"])
    n_star, estimate, finite = measure(inst)
    met = finite and (precision is not None or estimate <= MAX_LEN / 8)
    found = n_star is not None and n_star <= 3 * MAX_LEN // 4
    note = f"{inst['precision']}: n* {n_star}, c/ε ≈ {estimate:.3g}"
    if not met:
        note += " — assumption not met (" + ("non-finite outputs" if not finite else
                                             "estimate beyond the sweep") + ")"
    return Outcome(float(n_star if found else np.inf), float(MAX_LEN), found, met, note)


def evaluate(inst):
    return _check(inst)


MUTANTS = {"collapse also happens in fp64": lambda inst: _check(inst, precision="fp64")}
