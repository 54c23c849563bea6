"""Corollary B.10 [6.2]: counting is impossible in finite precision (theory.md §2 and §3).

For the Theorem B.3 pair — a prompt plus n ones, and the same plus n + 1 ones — the final
readouts become bit-identical for large finite n, so a model cannot tell the counts apart. Per
float format and precision policy we measure, from one forward pass of the Figure 10 model (NoPE,
one layer), the collapse length n* by the project's one definition
(squash_sim.analysis.collapse.judge, docs/theory.md): bit-identical, finite outputs from n* through
the end of a sweep that reaches 2·n* (a few identical n at the end can be chance: each coordinate
straddles a rounding boundary with probability ≈ |Δᵢ|/spacing).

Judged where the paper's assumptions hold — NoPE (positional information that decays), bounded
(finite) representations — and its "large finite n" lies inside the sweep: an instance whose
outputs still differ at the end is "not reached" (with the distance left, in spacings), one with
non-finite outputs "non-finite"; neither is ever called holds or violated. Each collapse names its
mechanism (squash_sim.analysis.mechanism): the same run with every sum in fp32 tells an
accumulator stall (the collapse disappears or moves later) from a representation difference
below the spacing (it stays). A stall is then tested on the attention output's weights·values sum
over keys (ATTRIBUTED; one run): whether the collapse needs it (restoring that sum alone to fp32
removes it within the sweep; one that only moves the collapse later is named as moving it, not
as a cause). The other sums and which stalls suffice are not rerun here, to keep the claim's
budget: the report's precision section (both sums over keys) and the accumulation table (every
sum, docs/accumulation_collapse.json: both sums over keys are necessary, neither suffices alone)
run them. Storage-only policies collapse
by the spacing, much later — which is why their sweep is longer (`sweep`: 4096 against 1024).
Tensor-core policies ("bf16+tc:h100", "fp8_e4m3fn+tc:h100", "tpu-default": precision.names())
are in the domain and judged the same way (their per-sum counterfactual takes a contraction off
the MMA chain: analysis.mechanism.restore). fp8_e4m3fn+tc:h100, seed 0, holds with n* = 1643 by
the spacing (83 s on the shared 2-core machine at load 16); bf16+tc:h100 is "not reached" within
4096 (docs/precision_hardware.md). The default draws leave them out for their cost: each draw is
a 4,096-token MMA forward plus its counterfactual.
Theory: squash_sim/theory.md#corollary_b10
"""

from __future__ import annotations

import functools

import numpy as np
from hypothesis import strategies as st

from proofs_check.claims.base import Outcome
from proofs_check.claims.domain import SEED, OneOf, Record
from squash_sim import floats, presets
from squash_sim import precision as precision_module
from squash_sim.analysis import collapse, mechanism

NAME = "corollary_b10"
REFERENCE = "[G] Corollary B.10 (main text Corollary 6.2); theory.md §3"
ASSUMPTIONS = "NoPE, one layer (paper-fig10), finite outputs; n* inside the sweep"
STATEMENT = "fl(y_n) == fl(y*_{n+1}) bit for bit for every n >= n*, with n* finite"
LATEX = r"\exists n^*:\ \mathrm{fl}(y_n) = \mathrm{fl}(y^*_{n+1})\ \forall n \ge n^*"
DEFAULT_EXAMPLES = 6
# The default draws: "-pure" policies stall within a few hundred tokens (so do fp8_e5m2-pure and
# e3m4-pure, left out only because each policy is one more ~5 s compile); of the storage-only
# ones, the fp8 formats collapse by the spacing within 4096 (bf16 and fp16 storage need more).
POLICIES = ("bf16-pure", "fp8_e4m3fn-pure", "fp8_e5m2", "fp8_e4m3fn")
ATTRIBUTED = ("weights·values",)  # per-sum counterfactual (one run: restored alone)
DOMAIN = Record({"precision": OneOf(tuple(p for p in precision_module.names() if p != "fp64")),
                 "seed": SEED})


def sweep(precision: str) -> int:
    """Largest n swept: 1024 where accumulators are in the format (they stall early; ordered
    reductions cost O(n²) sequential steps), 4096 for storage-only policies (cheap, collapse late)."""
    return 1024 if precision_module.get(precision).softmax is not None else 4096


def instances():
    return st.fixed_dictionaries({"precision": st.sampled_from(POLICIES),
                                  "seed": st.integers(0, 2**31 - 1)})


def _run(policy, seed: int, max_len: int):
    return collapse.run(presets.get("paper-fig10"), policy, max_len=max_len, seed=seed % 2**31)


@functools.lru_cache(maxsize=64)
def measure(precision: str, seed: int, max_len: int | None = None):
    """(collapse result, Mechanism or None, failure) for one policy and seed; failure is
    "overflow" / "non-finite" (and the result None) when the run cannot be judged."""
    max_len = max_len or sweep(precision)
    try:
        result = _run(precision, seed, max_len)
    except ArithmeticError as err:
        return None, None, collapse.failure(err)
    failure = collapse.failure(result)
    if failure:
        return None, None, failure
    if result.collapse.n_star is None:
        return result, None, None
    return result, mechanism.explain(lambda p: _run(p, seed, max_len), precision,
                                     collapse_length=result.collapse.n_star,
                                     sites=ATTRIBUTED, sufficiency=False), None


def _remaining(result, precision: str) -> str:
    """How far from collapse the last swept n is: ‖Δ‖∞ in units of the spacing at 1 of the
    format the outputs are stored in (fp32 or fp64 where nothing is rounded: "tpu-default")."""
    policy = precision_module.get(precision)
    fmt = policy.activations or (floats.FP64 if policy.compute_dtype == "float64" else floats.FP32)
    return f"‖Δ‖∞ at n = {int(result.n[-1])} is {result.linf[-1] / fmt.eps:.3g} spacings (ε)"


def _check(inst, precision=None, forbid=None, unneeded=None):
    """precision: judge another policy's run (the fp64 mutant); forbid: a mechanism that the
    statement claims never happens (the mechanism mutants); unneeded: a sum whose stall the
    statement claims no collapse needs (the per-sum mutant)."""
    policy = precision or inst["precision"]
    max_len = sweep(inst["precision"])
    result, why, failure = measure(policy, inst["seed"], max_len)
    if failure:
        return Outcome(float("nan"), float(max_len), False, False,
                       f"{policy}: the forward pass is {failure}", status=failure,
                       reason=f"{failure} outputs")
    verdict = result.collapse
    n_star = verdict.n_star
    found = why is not None
    note = (f"{policy}: {verdict.text()}, sweep to {max_len}; first identical pair "
            f"{verdict.first_identical}, {verdict.share:.0%} of pairs identical")
    if found:
        note += f" — {why.label()}: {why.evidence}" + (f". {why.sentence()}" if why.sites else "")
    else:
        note += f" — {_remaining(result, policy)}; {verdict.reason}"
    if not found and precision is None:
        return Outcome(float("inf"), float(max_len), False, False, note + " — not reached",
                       status="not reached", reason="n* beyond the sweep (the corollary's "
                       "'large finite n')")
    holds = (found and (forbid is None or why.mechanism != forbid)
             and (unneeded is None or unneeded not in why.stalled))
    return Outcome(float(n_star if found else np.inf), float(max_len), holds, True, note)


def evaluate(inst):
    return _check(inst)


MUTANTS = {
    "collapse also happens in fp64": lambda inst: _check(inst, precision="fp64"),
    "every collapse is a representation difference below spacing (nothing stalls)":
        lambda inst: _check(inst, forbid=mechanism.STALLED),
    "every collapse is an accumulator stall": lambda inst: _check(inst, forbid=mechanism.REPRESENTATION),
    "no collapse needs the weights·values stall (restoring that sum alone changes nothing)":
        lambda inst: _check(inst, unneeded="weights·values"),
}
