"""Instance domains: what a claim can judge, declared so that nothing else is ever evaluated.

A claim's DOMAIN states the types, shapes, ranges and finiteness its theorem's hypotheses allow
(and float64 can evaluate faithfully: ranges are kept where exp and sums stay exact enough for the
check's tolerance). A replayed or user-supplied instance outside it raises InstanceError naming the
field and what is allowed: it is rejected, never evaluated into "violated".

    DOMAIN = Record({"n": Int(2, 10**6), "b": Real(-5, 5)}, rule=lambda inst: ... or None)
    check_instance(module, {"n": 10, "b": float("nan")})
    → InstanceError: lemma_b1: instance field 'b' must be a finite number in [-5, 5], got nan
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable


class InstanceError(ValueError):
    """An instance outside its claim's DOMAIN (the message names the field)."""


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class Int:
    lo: int
    hi: int

    def describe(self) -> str:
        return f"an integer in [{self.lo}, {self.hi}]"

    def problem(self, value) -> str | None:
        return None if _is_int(value) and self.lo <= value <= self.hi else self.describe()


@dataclasses.dataclass(frozen=True)
class Real:
    lo: float
    hi: float

    def describe(self) -> str:
        return f"a finite number in [{self.lo:g}, {self.hi:g}]"

    def problem(self, value) -> str | None:
        ok = _is_real(value) and math.isfinite(value) and self.lo <= value <= self.hi
        return None if ok else self.describe()


@dataclasses.dataclass(frozen=True)
class OneOf:
    values: tuple

    def describe(self) -> str:
        return "one of " + ", ".join(map(repr, self.values))

    def problem(self, value) -> str | None:
        ok = isinstance(value, (str, int, float)) and not isinstance(value, bool) \
            and value in self.values
        return None if ok else self.describe()


@dataclasses.dataclass(frozen=True)
class CausalMatrix:
    """A lower-triangular, row-stochastic n×n matrix as a list of lists of finite numbers ≥ 0
    whose rows sum to 1 within n ulps (what a softmax row normalised in float64 gives)."""

    min_n: int = 2
    max_n: int = 64

    def describe(self) -> str:
        return (f"a lower-triangular row-stochastic n×n matrix (list of lists of finite numbers "
                f">= 0, rows summing to 1), {self.min_n} <= n <= {self.max_n}")

    def problem(self, value) -> str | None:
        if not isinstance(value, list) or not self.min_n <= len(value) <= self.max_n:
            return self.describe()
        n = len(value)
        for i, row in enumerate(value):
            if not isinstance(row, list) or len(row) != n:
                return f"{self.describe()}; row {i} is not a list of {n} numbers"
            if not all(_is_real(x) and math.isfinite(x) and x >= 0 for x in row):
                return f"{self.describe()}; row {i} has an entry that is not a finite number >= 0"
            if any(x != 0 for x in row[i + 1:]):
                return f"{self.describe()}; row {i} has a non-zero above the diagonal"
            if abs(math.fsum(row) - 1) > 4 * n * 2.0 ** -52:
                return f"{self.describe()}; row {i} sums to {math.fsum(row)!r}"
        return None


@dataclasses.dataclass(frozen=True)
class ListOf:
    """A list of `min_size`..`max_size` items of one domain, all of one length when same_size."""

    item: object
    min_size: int
    max_size: int
    same_size: bool = True

    def describe(self) -> str:
        return (f"a list of {self.min_size} to {self.max_size} items, each "
                f"{self.item.describe()}" + (", all the same size" if self.same_size else ""))

    def problem(self, value) -> str | None:
        if not isinstance(value, list) or not self.min_size <= len(value) <= self.max_size:
            return self.describe()
        for i, item in enumerate(value):
            why = self.item.problem(item)
            if why:
                return f"item {i}: {why}"
        if self.same_size and len({len(item) for item in value}) > 1:
            return f"{self.describe()}; sizes differ"
        return None


@dataclasses.dataclass(frozen=True)
class Record:
    """A dict with exactly these fields; `rule(inst)` → a message for a cross-field constraint
    (e.g. k <= n), None when it holds."""

    fields: dict
    rule: Callable | None = None

    def describe(self) -> str:
        return "{" + ", ".join(f"{k}: {v.describe()}" for k, v in self.fields.items()) + "}"


def check_instance(module, instance) -> None:
    """Raise InstanceError unless `instance` lies in module.DOMAIN (the message names the field)."""
    domain, claim = module.DOMAIN, module.NAME
    if isinstance(domain, Record):
        if not isinstance(instance, dict):
            raise InstanceError(f"{claim}: the instance must be an object with fields "
                                f"{', '.join(domain.fields)}, got {type(instance).__name__}")
        missing = [k for k in domain.fields if k not in instance]
        if missing:
            raise InstanceError(f"{claim}: instance field {missing[0]!r} is missing "
                                f"(fields: {', '.join(domain.fields)})")
        unknown = [k for k in instance if k not in domain.fields]
        if unknown:
            raise InstanceError(f"{claim}: instance field {str(unknown[0])[:40]!r} is not one of "
                                f"{', '.join(domain.fields)}")
        for name, field in domain.fields.items():
            why = field.problem(instance[name])
            if why:
                raise InstanceError(f"{claim}: instance field {name!r} must be {why}, got "
                                    f"{_shown(instance[name])}")
        why = domain.rule(instance) if domain.rule else None
        if why:
            raise InstanceError(f"{claim}: instance {why}")
        return
    why = domain.problem(instance)
    if why:
        raise InstanceError(f"{claim}: the instance must be {why}")


SEED = Int(0, 2**31 - 1)  # the seed field every claim shares
