"""Theorem B.3 [4.2], full depth: ‖y_n − y*_{n+1}‖₁ → 0 (theory.md §2; no rate is given).

Measured in one forward pass per instance (prompt + ones; squash_sim.experiments.collapse) on the
Figure 10 model with 1–2 layers, in fp32, n = 16 … 512; the fitted log-log exponent must be
≤ −0.5 where the assumptions hold (NoPE: the attention rows converge). Where they do not — RoPE
(the attention-row term need not vanish), ALiBi (logits unbounded below), added positions (they
enter the residual stream) — the outcome says "assumption not met" and shows the measured
exponent and the plateau, never "pass". With a prompt followed by ones, NoPE's m_n → u_a, so
Δ = α*_{n+1,n+1}(m_n − u_a) decays like n⁻² in one layer (measured −1.87), faster than the 1/n of
Figure 10's i.i.d. tokens.
Theory: docs/theory.md#theorem_b3_decay
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from proofs_check.claims.base import Outcome
from squash_sim import presets
from squash_sim.experiments import collapse

NAME = "theorem_b3_decay"
REFERENCE = "[G] Theorem B.3 (main text Theorem 4.2), full depth; Figure 10"
ASSUMPTIONS = "bounded representations, positional information decaying with distance (NoPE)"
STATEMENT = "||y_n - y*_{n+1}||_1 -> 0: fitted log-log exponent over n in [16, 512] <= -0.5"
LATEX = r"\|y_n - y^*_{n+1}\|_1 \xrightarrow[n\to\infty]{} 0"
DEFAULT_EXAMPLES = 6
MAX_LEN = 512
WHY_NOT = {"rope": "RoPE: the attention-row term need not vanish",
           "alibi": "ALiBi: logits unbounded below",
           "sinusoidal": "added positions enter the residual stream"}


def instances():
    return st.fixed_dictionaries({"positional": st.sampled_from(["none", "rope", "alibi",
                                                                 "sinusoidal"]),
                                  "layers": st.integers(1, 2), "seed": st.integers(0, 2**31 - 1)})


def _check(inst, bound=-0.5):
    config = presets.get("paper-fig10").replace(positional=inst["positional"],
                                                n_layers=inst["layers"])
    result = collapse.run(config, "fp32", max_len=MAX_LEN, seed=inst["seed"] % 2**31)
    keep = result.n >= 16
    exponent = float(np.polyfit(np.log(result.n[keep]), np.log(result.l1[keep] + 1e-300), 1)[0])
    plateau = float(np.median(result.l1[-64:]))
    met = inst["positional"] == "none"
    note = f"{inst['positional']}, L {inst['layers']}: exponent {exponent:.2f}, tail ‖Δ‖₁ ≈ {plateau:.3g}"
    if not met:
        note += f" — assumption not met ({WHY_NOT[inst['positional']]})"
    return Outcome(exponent, bound, exponent <= bound, met, note)


def evaluate(inst):
    return _check(inst)


MUTANTS = {"decays like n^-2.5": lambda inst: _check(inst, bound=-2.5)}
