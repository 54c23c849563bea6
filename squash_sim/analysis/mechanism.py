"""Which mechanism produced a floating-point collapse (theory.md §3, the Corollary B.10 note).

Two different things make fl(y_n) == fl(y*_{n+1}) bit for bit:

  "representation difference below spacing"  the exact outputs still differ, by less than the
      format resolves: every coordinate of y_n and y*_{n+1} rounds to the same value (the c/ε
      picture of the paper's figures);
  "accumulator stalled"  a running sum kept in the format stops moving: once a term is below half
      an ulp of the total, adding it changes nothing (a sum of ones in bf16 stops at 256), so a
      sum over n and over n + 1 keys comes out the same, and the outputs coincide long before
      the exact difference falls below the spacing.

The test is a counterfactual: run the same policy with its sums accumulated sequentially in fp32,
storage rounding unchanged (`restore`). If the collapse at n* is gone there (the outputs still
differ at n*), a sum stalled; if it stays, the difference fell below the spacing. A storage-only
policy (sums already fp32) is the second kind by construction. Under tensor cores ("+tc:<gpu>")
each contraction's sum is the MMA chain (groups aligned and truncated, d carried in the output
format): restoring it replaces that chain, for that site only, by the exact products of the same
MMA-rounded operands added sequentially in fp32 (Precision.off_hardware); "tpu-default" already
sums in XLA's fp32, so its collapses are the spacing's (of its bf16 operands) by construction.

Which sum: the counterfactual per accumulation site (SITES) — the softmax denominator, the
attention output's weights·values sum over keys, the scores q·k, the projection and MLP dot
products, the norm sums — each restored to fp32 alone, and each left alone in the format with
every other sum restored. A site whose restoring alone removes the collapse is *necessary*: the
collapse at n* needs that stall. One whose restoring alone only makes the collapse come later
*moves* it (it is not called a cause). A site that, left as the only sum in the format, still
collapses by n* is *sufficient*. "Removed" means no pair is identical through the end of the
sweep by analysis.collapse's rule (identical pairs may return near its end, too late to call);
"moved", a later lasting collapse.

`explain(run, precision)` takes the experiment as a function (precision → a result with
`.collapse`, the one definition of analysis.collapse), so experiments, the report and
proofs_check share it without analysis importing experiments.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from squash_sim import floats
from squash_sim.accumulate import Accumulation
from squash_sim.analysis import collapse
from squash_sim.precision import Precision
from squash_sim.precision import get as get_precision

REPRESENTATION = "representation difference below spacing"
STALLED = "accumulator stalled"
UNDETERMINED = "undetermined"
FP32_SUMS = Accumulation("sequential", floats.FP32)  # the counterfactual's accumulator
# Accumulation sites → (the Precision field that sets it, the Numerics scope it runs in).
SITES = {"softmax sum": ("softmax_sum", "softmax"),
         "weights·values": ("value_sum", "values"),
         "scores q·k": ("score_sum", "scores"),
         "projections & MLP": ("matmul_sum", "matmul"),
         "norm sums": ("norm_sum", "norm")}

SPOKEN = {"softmax sum": "softmax sum", "weights·values": "weights·values sum",
          "scores q·k": "q·k score sum", "projections & MLP": "projection and MLP sums",
          "norm sums": "norm sums"}  # the sites in a sentence
# The sums over keys: the only ones whose number of terms grows with n (the others add a fixed
# number of terms for every n). The report's precision section and proofs_check attribute these;
# the accumulation table attributes every site.
KEY_SUMS = ("softmax sum", "weights·values")


def sites_of(config) -> tuple[str, ...]:
    """The sites a model has (no norm sums without a norm)."""
    has_norm = config.norm in ("layernorm", "rmsnorm") or getattr(config, "qk_norm", False)
    return tuple(s for s in SITES if s != "norm sums" or has_norm)


def restore(precision: Precision | str, sites=tuple(SITES)) -> Precision | None:
    """The counterfactual: `precision` with the named sums accumulated sequentially in fp32,
    every storage rounding point and every other sum unchanged (products, exps, divisions and
    stored values still round where the policy says). None when nothing would change (those sums
    already run in fp32, sequentially, or in XLA's float32).

    Under "+tc:<gpu>" a contraction site (weights·values, q·k, projections) is the MMA chain;
    restoring it takes that site alone off the tensor cores (Precision.off_hardware): the same
    operands, rounded to the MMA's input format, their exact products added sequentially in fp32,
    the result in the MMA's output format. "tpu-default" sums in XLA's fp32: nothing to restore."""
    precision = get_precision(precision)
    unknown = set(sites) - set(SITES)
    if unknown:
        raise ValueError(f"restore: sites must be among {list(SITES)}, got {sorted(unknown)}")
    changes, off = {}, set()
    for site in sites:
        field, scope = SITES[site]
        how = precision.summation(scope)
        tensor_cores = scope in ("matmul", "scores", "values") and precision.on_tensor_cores(scope)
        if (tensor_cores or precision.sum_format(scope) not in (None, floats.FP32)
                or how.mode != "sequential"):
            changes[field] = FP32_SUMS
            off |= {scope} if tensor_cores else set()
    if not changes:
        return None
    if off:
        changes["off_hardware"] = precision.off_hardware | off
    named = [s for s in sites if SITES[s][0] in changes]
    if "matmul_sum" in changes:  # the attention dot products keep theirs unless named too
        for site in ("weights·values", "scores q·k"):
            field, scope = SITES[site]
            if field not in changes and not precision.on_tensor_cores(scope):  # (the MMA's own)
                changes[field] = precision.summation(scope)
    return dataclasses.replace(precision, **changes,
                               name=f"{precision} with fp32 {' and '.join(named)}")


def with_fp32(precision: Precision | str, *, softmax: bool = True,
              accumulation: bool = True) -> Precision | None:
    """`restore` of the softmax sum and/or every other sum (dot products and norms)."""
    sites = (["softmax sum"] if softmax else []) + ([s for s in SITES if s != "softmax sum"]
                                                    if accumulation else [])
    return restore(precision, sites)


@dataclasses.dataclass(frozen=True)
class SiteEffect:
    """One accumulation site's two counterfactuals, against the collapse at n*."""

    site: str
    alone: str  # restoring this sum alone: "removed" | "moved" | "kept" | "no change" | failure
    alone_n_star: int | None  # the counterfactual's n* (None: not within the sweep)
    only: str  # this sum the only one left in the format: same words
    only_n_star: int | None
    alone_run_from: int | None = None  # where that run's identical run to the end starts
    only_run_from: int | None = None

    @property
    def necessary(self) -> bool:
        return self.alone == "removed"

    @property
    def moves(self) -> bool:
        return self.alone == "moved"

    @property
    def sufficient(self) -> bool:
        return self.only == "kept"


@dataclasses.dataclass(frozen=True)
class Mechanism:
    """Why `precision` collapsed at `collapse_length` (mechanism None: it did not collapse)."""

    precision: str
    collapse_length: int | None
    mechanism: str | None  # REPRESENTATION | STALLED | UNDETERMINED | None
    counterfactual: str | None  # the policy re-run with every sum in fp32 (None: not needed)
    counterfactual_collapse_length: int | None
    evidence: str
    sites: tuple[SiteEffect, ...] = ()  # per-sum counterfactuals, when attributed

    @property
    def stalled(self) -> tuple[str, ...]:
        """The necessary stalls: sums whose restoring alone removes the collapse."""
        return tuple(s.site for s in self.sites if s.necessary)

    @property
    def moved(self) -> tuple[str, ...]:
        """Sums whose restoring alone only moves the collapse later."""
        return tuple(s.site for s in self.sites if s.moves)

    @property
    def sufficient(self) -> tuple[str, ...]:
        """Sums whose stall alone (every other sum in fp32) still collapses by n*."""
        return tuple(s.site for s in self.sites if s.sufficient)

    @property
    def sufficiency_tested(self) -> bool:
        return all(s.only != "not run" for s in self.sites)

    def label(self) -> str:
        """Short text for tables: "accumulator stalled (necessary: weights·values; …)", naming
        the sums restored alone when not every site was."""
        if self.mechanism is None:
            return "no collapse"
        if not self.sites:
            return self.mechanism
        tested = "" if len(self.sites) == len(SITES) else (
            f"restored alone: {', '.join(s.site for s in self.sites)}; ")
        return (f"{self.mechanism} ({tested}necessary: {', '.join(self.stalled) or 'none'}"
                + (f"; moved by: {', '.join(self.moved)}" if self.moved else "")
                + (f"; sufficient: {', '.join(self.sufficient) or 'none alone'}"
                   if self.sufficiency_tested else "") + ")")

    def sentence(self) -> str:
        """The per-sum finding in words, generated from the counterfactuals."""
        if not self.sites:
            return self.evidence
        parts = []
        for s in self.sites:
            alone = {"removed": "removes it within the sweep" + (
                         f" (identical again from n = {s.alone_run_from} to the end, too late "
                         f"to call)" if s.alone_run_from is not None else ""),
                     "moved": f"moves it to n = {s.alone_n_star}",
                     "kept": "keeps it" + (f" (n* = {s.alone_n_star})"
                                           if s.alone_n_star not in (None, self.collapse_length)
                                           else ""),
                     "no change": "changes nothing (already fp32)"}.get(s.alone, s.alone)
            parts.append(f"restoring the {SPOKEN[s.site]} alone {alone}")
        only = [SPOKEN[s.site] for s in self.sites if s.sufficient]
        if not self.sufficiency_tested:
            return f"n* = {self.collapse_length}: " + "; ".join(parts) + "."
        return (f"n* = {self.collapse_length}: " + "; ".join(parts) + ". Left as the only sum "
                "in the format (every other sum in fp32), "
                + (f"the {' / '.join(only)} still collapse{'s' if len(only) == 1 else ''} by n*"
                   if only else "no single sum collapses by n*") + ".")

    def row(self) -> dict:
        """For JSON: the mechanism, the necessary and sufficient stalls and every site."""
        return {"mechanism": self.mechanism, "n_star": self.collapse_length,
                "n_star_all_sums_fp32": self.counterfactual_collapse_length,
                "necessary": list(self.stalled), "moved_by": list(self.moved),
                "sufficient": list(self.sufficient),
                "sites": [dataclasses.asdict(s) for s in self.sites]}


def _judged(run, precision):
    """(Collapse, None) or (None, why it could not be judged: analysis.collapse.failure)."""
    try:
        result = run(precision)
    except ArithmeticError as err:
        return None, f"{collapse.failure(err)} ({err})"
    failed = collapse.failure(result)
    return (None, failed) if failed else (result.collapse, None)


def classify(n_star: int, counterfactual_n_star: int | None) -> str:
    """The rule: with fp32 accumulators (restore) the outputs at n* either still collapse
    (counterfactual n* ≤ n*: the representations round together — REPRESENTATION) or still
    differ (the collapse disappears or comes later: an accumulator stalled — STALLED)."""
    if counterfactual_n_star is not None and counterfactual_n_star <= n_star:
        return REPRESENTATION
    return STALLED


def outcome(n_star: int, counterfactual) -> str:
    """What a counterfactual (a Collapse, or a failure string) did to the collapse at n*, by the
    one definition: "kept" (a lasting collapse by n*), "moved" (a lasting collapse, later) or
    "removed" (no lasting collapse within the sweep — identical pairs may return near its end,
    too late to call: SiteEffect keeps where)."""
    if isinstance(counterfactual, str):
        return counterfactual
    if counterfactual.n_star is None:
        return "removed"
    return "kept" if counterfactual.n_star <= n_star else "moved"


def attribute(run: Callable, precision: Precision | str, n_star: int,
              sites=tuple(SITES), sufficiency: bool = True) -> tuple[SiteEffect, ...]:
    """Per-sum counterfactuals for a collapse at n*: each of `sites` restored alone, and (with
    `sufficiency`) each left as the only sum in the format (every other site of SITES restored;
    otherwise `only` reads "not run"). 2·len(sites) runs at most."""
    precision = get_precision(precision)
    effects = []
    for site in sites:
        measured = []
        for chosen in ([site], [s for s in SITES if s != site]):  # alone; the only one left
            if chosen != [site] and not sufficiency:
                measured.append(("not run", None, None))
                continue
            policy = restore(precision, chosen)
            if policy is None:
                measured.append(("no change", None, None))
                continue
            found, failed = _judged(run, policy)
            measured.append((failed, None, None) if failed else
                            (outcome(n_star, found), found.n_star, found.run_from))
        (alone, alone_n, alone_from), (only, only_n, only_from) = measured
        if only == "no change":  # nothing else to restore: the policy itself, collapsed at n*
            only, only_n, only_from = "kept", n_star, n_star
        effects.append(SiteEffect(site, alone, alone_n, only, only_n, alone_from, only_from))
    return tuple(effects)


def explain(run: Callable, precision: Precision | str, *, collapse_length: int | None = None,
            sites=(), sufficiency: bool = True) -> Mechanism:
    """Name the mechanism of the collapse `run(precision)` shows (see the module docstring).

    run: precision → result with `.collapse` (analysis.collapse.judge's verdict).
    collapse_length: pass it when already measured, to save a run. sites: when a sum stalled,
    also run the per-sum counterfactuals for these sites (`attribute`; sites_of(config) names a
    model's). The all-sums counterfactual restores every site."""
    precision = get_precision(precision)
    if collapse_length is None:
        found, failed = _judged(run, precision)
        if failed:
            return Mechanism(str(precision), None, None, None, None, f"the run itself is {failed}")
        collapse_length = found.n_star
    if collapse_length is None:
        return Mechanism(str(precision), None, None, None, None, "no collapse in the sweep")
    n_star = collapse_length
    counterfactual = restore(precision)
    if counterfactual is None:
        return Mechanism(str(precision), n_star, REPRESENTATION, None, None,
                         "no sum is rounded to the format (softmax and matmuls accumulate in "
                         "fp32): the two outputs round to the same values")
    found, failed = _judged(run, counterfactual)
    if failed:
        return Mechanism(str(precision), n_star, UNDETERMINED, str(counterfactual), None,
                         f"the counterfactual run is {failed}")
    other = found.n_star
    if classify(n_star, other) == REPRESENTATION:
        return Mechanism(str(precision), n_star, REPRESENTATION, str(counterfactual), other,
                         f"with every sum in fp32 it still collapses (from n = {other})")
    effects = attribute(run, precision, n_star, sites, sufficiency) if sites else ()
    later = (f"only from n = {other}" if other is not None else
             "past the sweep's reach" if found.run_from is not None else "not within the sweep")
    return Mechanism(str(precision), n_star, STALLED, str(counterfactual), other,
                     f"with every sum in fp32 the outputs still differ at n = {n_star} "
                     f"(collapse {later})", effects)


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
