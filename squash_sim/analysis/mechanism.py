"""Which mechanism produced a floating-point collapse (theory.md §3, the Corollary B.10 note).

Two different things make fl(y_n) == fl(y*_{n+1}) bit for bit:

  "representation difference below spacing"  the exact outputs still differ, by less than the
      format resolves: every coordinate of y_n and y*_{n+1} rounds to the same value (the c/ε
      picture of the paper's figures);
  "accumulator stalled"  a running sum kept in the format stops moving: once a term is below half
      an ulp of the total, adding it changes nothing (a sum of ones in bf16 freezes at 256), so
      the softmax normaliser or a matmul accumulation is the same for n and n + 1 tokens, and
      the outputs coincide long before the exact difference falls below the spacing.

The test is a counterfactual: run the same policy with only its accumulators — the softmax sum
and the matmul/norm accumulation — in fp32, storage rounding unchanged. If the collapse at n* is
gone there (the outputs still differ at n*), an accumulator stalled; if it stays, the difference
fell below the spacing. A storage-only policy (accumulators already fp32) is the second kind by
construction. `explain(run, precision)` takes the experiment as a function (precision → a result
with `collapse_length`, e.g. squash_sim.experiments.collapse.run), so experiments, the report and
proofs_check share it without analysis importing experiments.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from squash_sim import floats
from squash_sim.accumulate import Accumulation
from squash_sim.precision import Precision
from squash_sim.precision import get as get_precision

REPRESENTATION = "representation difference below spacing"
STALLED = "accumulator stalled"
UNDETERMINED = "undetermined"
FP32_SUMS = Accumulation("sequential", floats.FP32)  # the counterfactual's accumulator


@dataclasses.dataclass(frozen=True)
class Mechanism:
    """Why `precision` collapsed at `collapse_length` (mechanism None: it did not collapse)."""

    precision: str
    collapse_length: int | None
    mechanism: str | None  # REPRESENTATION | STALLED | UNDETERMINED | None
    counterfactual: str | None  # the policy re-run with fp32 accumulators (None: not needed)
    counterfactual_collapse_length: int | None
    evidence: str
    stalled: tuple[str, ...] = ()  # which accumulators stall, when attributed: "softmax sum", …

    def label(self) -> str:
        """Short text for tables: "accumulator stalled (softmax sum)"."""
        if self.mechanism is None:
            return "no collapse"
        return self.mechanism + (f" ({', '.join(self.stalled)})" if self.stalled else "")


def with_fp32(precision: Precision | str, *, softmax: bool = True,
              accumulation: bool = True) -> Precision | None:
    """The counterfactual: the same policy with the softmax sum and/or the dot-product and norm
    sums accumulated sequentially in fp32, every storage rounding point unchanged (products, exps,
    divisions and stored values still round where the policy says). None when nothing would
    change (the policy's sums already run in float32)."""
    precision = get_precision(precision)
    fields = (["softmax_sum"] if softmax else []) + (["matmul_sum", "norm_sum"] if accumulation
                                                    else [])
    scope = {"softmax_sum": "softmax", "matmul_sum": "matmul", "norm_sum": "norm"}
    changes = {field: FP32_SUMS for field in fields
               if precision.sum_format(scope[field]) not in (None, floats.FP32)
               or getattr(precision, field).mode != "sequential"}
    if not changes:
        return None
    kept = " and ".join(dict.fromkeys("softmax sum" if f == "softmax_sum" else "accumulation"
                                      for f in changes))
    return dataclasses.replace(precision, **changes, name=f"{precision} with fp32 {kept}")


def _collapse_length(run, precision) -> tuple[int | None, str | None]:
    """(collapse length, None) or (None, why it could not be measured)."""
    try:
        result = run(precision)
    except ArithmeticError as err:  # FloatingPointError: inf/NaN; OverflowError: saturated
        return None, f"{'overflow' if isinstance(err, OverflowError) else 'non-finite'} ({err})"
    failed = failure_of(result)
    if failed:
        return None, failed
    return result.collapse_length, None


def failure_of(result) -> str | None:
    """"non-finite" / "overflow" when any n of a result carries that status (the model's numerics
    diagnostics, a (N,) array on a CollapseResult), else None: such a run is never a collapse."""
    status = getattr(result, "status", None)
    if status is None:
        return None
    for failure in ("non-finite", "overflow"):
        if (np.asarray(status) == failure).any():
            return failure
    return None


def classify(n_star: int, counterfactual_n_star: int | None) -> str:
    """The rule: with fp32 accumulators (with_fp32) the outputs at n* either still collapse
    (counterfactual n* ≤ n*: the representations round together — REPRESENTATION) or still
    differ (the collapse disappears or comes later: an accumulator stalled — STALLED)."""
    if counterfactual_n_star is not None and counterfactual_n_star <= n_star:
        return REPRESENTATION
    return STALLED


def explain(run: Callable, precision: Precision | str, *, collapse_length: int | None = None,
            attribute: bool = False) -> Mechanism:
    """Name the mechanism of the collapse `run(precision)` shows (see the module docstring).

    run: precision → result with `.collapse_length` (the first n from which the outputs are
    bit-identical for every larger n swept, or None). collapse_length: pass it when already
    measured, to save a run. attribute: also re-run with only the softmax sum, then only the
    accumulation, in fp32, and list the accumulators whose restoring alone removes the collapse
    (two more runs)."""
    precision = get_precision(precision)
    if collapse_length is None:
        collapse_length, failed = _collapse_length(run, precision)
        if failed:
            return Mechanism(str(precision), None, None, None, None, f"the run itself is {failed}")
    if collapse_length is None:
        return Mechanism(str(precision), None, None, None, None, "no collapse in the sweep")
    n_star = collapse_length
    counterfactual = with_fp32(precision)
    if counterfactual is None:
        return Mechanism(str(precision), n_star, REPRESENTATION, None, None,
                         "no sum is rounded to the format (softmax and matmuls accumulate in "
                         "fp32): the two outputs round to the same values")
    other, failed = _collapse_length(run, counterfactual)
    if failed:
        return Mechanism(str(precision), n_star, UNDETERMINED, str(counterfactual), None,
                         f"the counterfactual run is {failed}")
    if classify(n_star, other) == REPRESENTATION:
        return Mechanism(str(precision), n_star, REPRESENTATION, str(counterfactual), other,
                         f"with fp32 accumulators it still collapses (from n = {other})")
    stalled = []
    for name, alone in (("softmax sum", with_fp32(precision, accumulation=False)),
                        ("accumulation", with_fp32(precision, softmax=False))):
        if attribute and alone is not None:
            length, failed = _collapse_length(run, alone)
            if not failed and (length is None or length > n_star):
                stalled.append(name)  # restoring this one alone removes the collapse at n*
    later = f"only from n = {other}" if other is not None else "not within the sweep"
    return Mechanism(str(precision), n_star, STALLED, str(counterfactual), other,
                     f"with fp32 accumulators the outputs still differ at n = {n_star} "
                     f"(collapse {later})", tuple(stalled))


def first_stall(running, exact, fmt: floats.FloatFormat) -> int | None:
    """Where a running sum stopped growing: the first term count m (1-based) from which the
    running sum kept in `fmt` never changes again although the exact sum of the same terms moves
    on by at least fmt's spacing at the stalled value (so the terms it dropped add up to
    something the format could hold: a stall, not the last few rounding steps).
    running, exact: (M,) the sums of the first 1..M terms (the accumulator's; float64).
    None when nothing was lost that way."""
    running = np.asarray(running, np.float64)
    exact = np.asarray(exact, np.float64)
    if running.shape != exact.shape or running.ndim != 1 or not len(running):
        raise ValueError(f"first_stall: running and exact must be equal (M,) arrays, got shapes "
                         f"{running.shape} and {exact.shape}")
    moves = np.flatnonzero(running[1:] != running[:-1])  # index i: term i + 2 changed the sum
    start = 0 if not len(moves) else int(moves[-1]) + 1  # the sum is constant from index start
    spacing = float(floats.spacing(np.float32(abs(running[start])), fmt))
    if start >= len(running) - 1 or abs(exact[-1] - exact[start]) < spacing:
        return None
    return start + 1
