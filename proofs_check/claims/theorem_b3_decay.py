"""Theorem B.3 [4.2], full depth: ‖y_n − y*_{n+1}‖₁ → 0 (theory.md §2; the paper gives no rate).

Measured on the Figure 10 model (d 64, one head, no norm, no MLP; 1–2 layers) in fp32 for
n = 16 … 512 on a log grid, with two kinds of input (each instance averages ‖Δ‖₁ over
SEQUENCES draws, then fits the log-log exponent):
  "iid"   n i.i.d. N(0, I) tokens; the (n+1)-sequence repeats token n (Figure 10's protocol).
          One NoPE layer: Δ = α*_{n+1,n+1}(m_n − u_a) with α* = Θ(1/n) and m_n − u_a = Θ(1), so
          ‖Δ‖ ≈ c/n (measured over 30 seeds: −1.01 ± 0.09 in one layer, −0.99 ± 0.07 in two;
          the least steep −0.83).
  "ones"  a prompt followed by n ones against n + 1 ones (squash_sim.analysis.collapse):
          m_n → u_a as well, so one layer tends to n⁻² (≈ −1.55 on this range, −1.3 in two).
The check: the fitted exponent is at most BOUND = −0.75 — tight enough that a model decaying like
n^−½ where the theory says n⁻¹ fails it (the mutant). Judged where the theorem's assumptions
hold: NoPE (positional information that decays). The controls in EXAMPLES — RoPE (the
attention-row term need not vanish), ALiBi (logits unbounded below), sinusoidal (added positions
enter the residual stream) — are reported as "assumption not met" with their measured exponent
and tail, never as a pass.
Theory: squash_sim/theory.md#theorem_b3_decay
"""

from __future__ import annotations

import functools

import jax
import numpy as np
from hypothesis import strategies as st

from proofs_check.claims.base import Outcome
from proofs_check.claims.domain import SEED, Int, OneOf, Record
from squash_sim import presets
from squash_sim.analysis import collapse
from squash_sim.model import forward, init_params

NAME = "theorem_b3_decay"
REFERENCE = "[G] Theorem B.3 (main text Theorem 4.2), full depth; Figure 10"
ASSUMPTIONS = "bounded representations, positional information decaying with distance (NoPE)"
STATEMENT = "||y_n - y*_{n+1}||_1 -> 0: fitted log-log exponent over n in [16, 512] <= -0.75"
LATEX = r"\|y_n - y^*_{n+1}\|_1 \xrightarrow[n\to\infty]{} 0,\ \text{exponent} \le -\tfrac34"
DEFAULT_EXAMPLES = 12
MAX_LEN = 512
GRID = np.unique(np.geomspace(16, MAX_LEN, 12).astype(int))  # (12,) the n values fitted
SEQUENCES = 8  # draws averaged per instance (one draw's exponent scatters by ±0.2)
BOUND = -0.75
POSITIONALS = ("none", "rope", "alibi", "sinusoidal")
WHY_NOT = {"rope": "RoPE: the attention-row term need not vanish",
           "alibi": "ALiBi: logits unbounded below",
           "sinusoidal": "added positions enter the residual stream"}
DOMAIN = Record({"positional": OneOf(POSITIONALS), "tokens": OneOf(("iid", "ones")),
                 "layers": Int(1, 3), "seed": SEED})
# The controls: the same measurement where the theorem's assumptions fail (reported, not judged).
EXAMPLES = [{"positional": p, "tokens": "ones", "layers": 1, "seed": 0} for p in WHY_NOT]
UNJUDGED_BECAUSE = ("the three EXAMPLES are controls whose assumptions fail on purpose (RoPE, "
                    "ALiBi, sinusoidal): 12 of 15 instances are judged")


def instances():
    return st.fixed_dictionaries({"positional": st.just("none"),
                                  "tokens": st.sampled_from(["iid", "ones"]),
                                  "layers": st.integers(1, 2), "seed": st.integers(0, 2**31 - 1)})


def _config(inst):
    return presets.get("paper-fig10").replace(positional=inst["positional"],
                                              n_layers=inst["layers"])


@functools.lru_cache(maxsize=64)
def distances(positional: str, tokens: str, layers: int, seed: int) -> np.ndarray:
    """Geometric mean of ‖y_n − y*_{n+1}‖₁ over SEQUENCES draws, n in GRID (fp32). (len(GRID),)"""
    inst = {"positional": positional, "tokens": tokens, "layers": layers, "seed": seed}
    config = _config(inst)
    params = init_params(config, jax.random.key(seed % 2**31))
    if tokens == "ones":
        runs = [collapse.run(config, "fp32", max_len=MAX_LEN, seed=(seed + j) % 2**31,
                             params=params) for j in range(SEQUENCES)]
        return np.exp(np.mean([np.log(r.l1[GRID - 1]) for r in runs], axis=0))
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((SEQUENCES, MAX_LEN + 1, config.d_model)).astype(np.float32)
    # One causal forward per (draw, n) over v with token n replaced by token n − 1: its row n − 1
    # is y_n (the prefix v_1..v_n) and its row n is y*_{n+1} (v_1..v_n, v_n); later rows unused.
    batch = np.repeat(v[:, None], len(GRID), axis=1)  # (S, G, T, d)
    batch[:, np.arange(len(GRID)), GRID] = v[:, GRID - 1]
    final = np.asarray(forward(params, batch.reshape(-1, *v.shape[1:]), config, "fp32",
                               logits="none").final).reshape(*batch.shape)
    rows = np.arange(len(GRID))
    y, y_star = final[:, rows, GRID - 1], final[:, rows, GRID]  # (S, G, d)
    # Geometric mean over draws: ‖Δ‖ is roughly log-normal across draws (α* ∝ e^{q·k}), so the
    # mean of the logs is what a log-log fit averages best.
    with np.errstate(divide="ignore"):
        return np.exp(np.log(np.abs(y.astype(np.float64) - y_star).sum(axis=-1)).mean(axis=0))


def _check(inst, bound=BOUND, slower=0.0):
    """slower: a mutant model whose distance decays n^slower more slowly than measured."""
    try:
        l1 = distances(inst["positional"], inst["tokens"], inst["layers"], inst["seed"]) \
            * GRID.astype(float) ** slower
    except ArithmeticError:  # collapse.run refuses non-finite outputs
        l1 = np.full(len(GRID), np.nan)
    where = f"{inst['positional']}, {inst['tokens']}, L {inst['layers']}"
    if not np.all(np.isfinite(l1)):
        return Outcome(float("nan"), bound, False, False, f"{where}: non-finite distances",
                       status="non-finite", reason="the fp32 forward produced inf/NaN")
    if np.any(l1 == 0):
        return Outcome(float("nan"), bound, False, False, f"{where}: a distance is exactly 0",
                       reason="distance 0 on the grid (no exponent to fit)")
    exponent = float(np.polyfit(np.log(GRID), np.log(l1), 1)[0])
    met = inst["positional"] == "none"
    note = f"{where}: exponent {exponent:.2f}, ‖Δ‖₁ at n = {MAX_LEN} ≈ {l1[-1]:.3g}"
    reason = "" if met else WHY_NOT[inst["positional"]]
    return Outcome(exponent, bound, exponent <= bound, met,
                   note + ("" if met else f" — assumption not met ({reason})"), reason=reason)


def evaluate(inst):
    return _check(inst)


MUTANTS = {
    "decays like n^-2.5": lambda inst: _check(inst, bound=-2.5),
    "a model decaying like n^-0.5 where theory says n^-1": lambda inst: _check(inst, slower=0.5),
}
