"""What every claim module provides, and the Outcome of one evaluation.

A claim module defines:
    NAME, REFERENCE, ASSUMPTIONS, STATEMENT, LATEX   plain text (and LaTeX) for people
    instances()        a Hypothesis strategy of JSON-serialisable instances (dicts)
    evaluate(inst)     → Outcome
    MUTANTS            {name: evaluate-like function of a deliberately wrong statement}; the test
                       suite asserts the default budget refutes every one
"""

from __future__ import annotations

import dataclasses
import math


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
