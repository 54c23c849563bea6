"""What every claim module provides, and the Outcome of one evaluation.

A claim module defines:
    NAME, REFERENCE, ASSUMPTIONS, STATEMENT, LATEX   plain text (and LaTeX) for people
    instances()        a Hypothesis strategy of JSON-serialisable instances (dicts)
    evaluate(inst)     → Outcome
    MUTANTS            {name: evaluate-like function of a deliberately wrong statement}; the test
                       suite asserts the default budget refutes every one
and, when evaluating costs a JAX computation that batches (a model forward, a Jacobian):
    COMPUTE            a Batched: its expensive part, vmapped over instances of one shape and
                       sharded over jax.devices(); evaluate, the mutants and variants call it
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import defaultdict


@dataclasses.dataclass(frozen=True)
class Outcome:
    """lhs ≤ rhs is the inequality checked (equalities are |error| ≤ tolerance)."""

    lhs: float
    rhs: float
    holds: bool
    assumptions_met: bool = True
    note: str = ""

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
    """Evaluate one instance; raise ClaimViolation if the assumptions hold and the claim fails."""
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
