"""What every claim module provides, and the Outcome of one evaluation.

A claim module defines:
    NAME, REFERENCE, ASSUMPTIONS, STATEMENT, LATEX   plain text (and LaTeX) for people
    instances()        a Hypothesis strategy of JSON-serialisable instances (dicts)
    DOMAIN             the instances the claim can judge (types, shapes, ranges, finiteness: what
                       the theorem's hypotheses allow and float64 can evaluate); `check_instance`
                       rejects anything else with an InstanceError naming the field
    evaluate(inst)     → Outcome
    MUTANTS            {name: evaluate-like function of a deliberately wrong statement}; the test
                       suite asserts the default budget refutes every one
optionally
    EXAMPLES           instances always evaluated besides the drawn ones (e.g. the controls whose
                       assumptions fail on purpose)
    UNJUDGED_BECAUSE   why the default run may judge fewer than 80 % of its instances (the test
                       suite fails a claim that judges less and does not say why)
and, when evaluating costs a JAX computation that batches (a model forward, a Jacobian):
    COMPUTE            a Batched: its expensive part, vmapped over instances of one shape and
                       sharded over jax.devices(); evaluate, the mutants and variants call it
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
from collections import defaultdict

import numpy as np

from proofs_check.claims.domain import InstanceError, check_instance  # noqa: F401 (re-exported)

# What an evaluation can conclude besides holds / violated: never judged, always with a reason.
# "below resolution": both sides lie within float64 rounding noise of 0 (the inequality cannot
# be told from its rounding), so the instance is neither a pass nor in the tightness statistics.
UNJUDGED = ("assumption not met", "non-finite", "overflow", "not reached", "below resolution")


@dataclasses.dataclass(frozen=True)
class Outcome:
    """lhs ≤ rhs is the inequality checked (equalities are |error| ≤ tolerance).

    status: "" for a judged outcome (holds or violated), else one of UNJUDGED; an outcome with
    assumptions_met=False and no status is "assumption not met". reason: why it was not judged,
    short (the table counts outcomes by it)."""

    lhs: float
    rhs: float
    holds: bool
    assumptions_met: bool = True
    note: str = ""
    status: str = ""
    reason: str = ""

    def __post_init__(self):
        if self.status and (self.status not in UNJUDGED or self.assumptions_met):
            raise ValueError(f"Outcome: status {self.status!r} must be one of {UNJUDGED} and "
                             "comes with assumptions_met=False (it is never judged)")

    @property
    def verdict(self) -> str:
        """holds | violated | assumption not met | non-finite | overflow | not reached |
        below resolution"""
        if not self.assumptions_met:
            return self.status or "assumption not met"
        return "holds" if self.holds else "violated"

    @property
    def margin(self) -> float:
        return self.rhs - self.lhs

    @property
    def tightness(self) -> float:
        """lhs / rhs: how much of the bound is used (1 = tight)."""
        return self.lhs / self.rhs if self.rhs not in (0.0,) and math.isfinite(self.rhs) else math.nan

    @property
    def violated(self) -> bool:
        return self.assumptions_met and not self.holds


def non_finite(note: str, *arrays) -> Outcome | None:
    """Outcome "non-finite" (never judged) when any of `arrays` holds inf or NaN — a model's
    outputs, a Jacobian: a verdict computed from them would be garbage. None when all are finite."""
    bad = [i for i, a in enumerate(arrays) if not np.all(np.isfinite(np.asarray(a, float)))]
    if not bad:
        return None
    return Outcome(math.nan, math.nan, False, False, f"{note}: non-finite values",
                   status="non-finite", reason="the computation produced inf/NaN")


def inequality(lhs: float, rhs: float, *, assumptions_met: bool = True, note: str = "",
               rtol: float = 0.0) -> Outcome:
    """lhs ≤ rhs·(1 + rtol): rtol absorbs the rounding of evaluating both sides in float64."""
    lhs, rhs = float(lhs), float(rhs)
    holds = math.isfinite(lhs) and math.isfinite(rhs) and lhs <= rhs * (1 + rtol)
    return Outcome(lhs, rhs, holds, assumptions_met, note)


class ClaimViolation(AssertionError):
    def __init__(self, claim: str, instance, outcome: Outcome):
        super().__init__(f"{claim} violated: lhs {outcome.lhs!r} > rhs {outcome.rhs!r} "
                         f"({outcome.note}) on {instance!r}")
        self.instance = instance
        self.outcome = outcome


def assert_holds(module, instance) -> Outcome:
    """Evaluate one instance (checked against the claim's DOMAIN first: InstanceError if outside
    it); raise ClaimViolation if the assumptions hold and the claim fails."""
    check_instance(module, instance)
    outcome = module.evaluate(instance)
    if outcome.violated:
        raise ClaimViolation(module.NAME, instance, outcome)
    return outcome


class Batched:
    """The expensive, JAX part of evaluating a claim, computed for many instances at once.

    `group(inst)` → a hashable key: instances with equal keys share shapes and static config, so
    one compiled, vmapped program serves them all. `batch(instances)` → one result per instance
    (they all have the same key; it uses squash_sim.sharding.batched_map). The runner draws the
    instances first and calls `prefetch`; `self(inst)` then answers from the cache, and computes
    a batch of one for an instance it has not seen (replay, assert_holds, shrinking)."""

    def __init__(self, group, batch):
        self.group, self.batch = group, batch
        self.cache: dict[str, object] = {}
        self.hits = self.misses = 0

    def __call__(self, inst):
        key = json.dumps(inst, sort_keys=True)
        if key in self.cache:
            self.hits += 1
            return self.cache[key]
        self.misses += 1
        return self.batch([inst])[0]

    def prefetch(self, instances) -> int:
        """Compute every not-yet-cached instance, grouped by key; return how many groups."""
        groups: dict = defaultdict(dict)
        for inst in instances:
            key = json.dumps(inst, sort_keys=True)
            if key not in self.cache:
                groups[self.group(inst)][key] = inst
        for members in groups.values():
            self.cache.update(zip(members, self.batch(list(members.values())), strict=True))
        return len(groups)

    def clear(self) -> None:
        self.cache.clear()
        self.hits = self.misses = 0

    @contextlib.contextmanager
    def alone(self):
        """Compute every instance as a batch of one, ignoring the cache: what a replay does. A
        vmapped batch may differ from a batch of one in the last bits, so the outcome stored
        with a counterexample is computed this way, and its replay reproduces it bit for bit."""
        cache, self.cache = self.cache, {}
        try:
            yield
        finally:
            self.cache = cache

