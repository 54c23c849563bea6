"""Run claims over Hypothesis-drawn instances: a table, JSON, shrunk counterexamples, replay.

    python -m proofs_check                          every claim at its default budget
    python -m proofs_check theorem_b5 --examples 2000 --json out.json
    python -m proofs_check --replay counterexample.json
    python -m proofs_check --mutant theorem_b5 "bound scaled by 1/100"   (must report violations)

Exit status 1 when a claim whose assumptions were met is violated. A counterexample is shrunk by
Hypothesis and written as JSON ({"claim", "instance", "outcome"}) that --replay re-evaluates.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.monitoring
from hypothesis import HealthCheck, Phase, given, settings

from proofs_check.claims import CLAIMS
from proofs_check.claims.base import ClaimViolation, Outcome
from squash_sim import _xla_flags
from squash_sim.results import write_json

DEFAULT_EXAMPLES = 200

_COMPILES = [0]


def _count_compiles(event: str, duration: float, **_) -> None:
    if event == "/jax/core/compile/backend_compile_duration":
        _COMPILES[0] += 1


jax.monitoring.register_event_duration_secs_listener(_count_compiles)


@dataclasses.dataclass
class ClaimReport:
    claim: str
    instances: int
    violations: int
    assumption_failures: int
    worst_margin: float
    median_tightness: float
    max_tightness: float
    seconds: float
    compilations: int = 0
    counterexample: dict | None = None

    def row(self) -> str:
        fmt = lambda x: "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3g}"  # noqa: E731
        return (f"{self.claim:<22} {self.instances:>9} {self.violations:>10} "
                f"{fmt(self.worst_margin):>12} {fmt(self.median_tightness):>10} "
                f"{fmt(self.max_tightness):>10} {self.assumption_failures:>11} {self.seconds:>7.1f} "
                f"{self.compilations:>8}")


HEADER = (f"{'claim':<22} {'instances':>9} {'violations':>10} {'worst margin':>12} "
          f"{'median t':>10} {'max t':>10} {'assump. no':>11} {'time s':>7} {'compiles':>8}")


def run_claim(module, examples: int | None = None, evaluate=None, shrink: bool = True) -> ClaimReport:
    """Evaluate `examples` instances (deterministic); shrink the first violation unless told not.

    A claim with a batched COMPUTE is run twice over the same derandomized draws: first only to
    collect the instances, which COMPUTE evaluates grouped by shape, vmapped and sharded over the
    devices; then to judge each one from that cache (shrinking computes its new instances alone).
    The cache is kept, so mutants and printed variants of the claim reuse it; `main` clears it."""
    evaluate = evaluate or module.evaluate
    examples = examples or getattr(module, "DEFAULT_EXAMPLES", DEFAULT_EXAMPLES)
    compute = getattr(module, "COMPUTE", None)
    seen: list[Outcome] = []
    drawn: list = []
    start, compiles_before = time.perf_counter(), _COMPILES[0]

    def hypothesis_run(collect: bool):
        @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                  suppress_health_check=list(HealthCheck), print_blob=False,
                  phases=[Phase.explicit, Phase.generate] + ([Phase.shrink] if shrink else []))
        @given(module.instances())
        def check(instance):
            if collect:
                drawn.append(instance)
                return
            outcome = evaluate(instance)
            seen.append(outcome)
            if outcome.violated:
                raise ClaimViolation(module.NAME, instance, outcome)

        check()

    counterexample = None
    try:
        if compute is not None:
            hypothesis_run(collect=True)
            compute.prefetch(drawn)
        hypothesis_run(collect=False)
    except ClaimViolation as violation:  # raised again on the shrunk, minimal instance
        counterexample = {"claim": module.NAME, "instance": violation.instance,
                          "outcome": dataclasses.asdict(violation.outcome)}
    met = [o for o in seen if o.assumptions_met]
    tight = [o.tightness for o in met if not math.isnan(o.tightness)]
    return ClaimReport(
        claim=module.NAME, instances=len(seen), violations=sum(o.violated for o in seen),
        assumption_failures=len(seen) - len(met),
        worst_margin=min((o.margin for o in met), default=math.nan),
        median_tightness=statistics.median(tight) if tight else math.nan,
        max_tightness=max(tight, default=math.nan), seconds=time.perf_counter() - start,
        compilations=_COMPILES[0] - compiles_before, counterexample=counterexample)


def replay(path: Path) -> Outcome:
    data = json.loads(Path(path).read_text())
    if data.get("claim") not in CLAIMS:
        raise ValueError(f"--replay: {path} names no known claim ({data.get('claim')!r}); "
                         f"known: {sorted(CLAIMS)}")
    return CLAIMS[data["claim"]].evaluate(data["instance"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m proofs_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("claims", nargs="*", help=f"claims to run (default: all): {', '.join(CLAIMS)}")
    parser.add_argument("--examples", type=int, default=None, help="instances per claim")
    parser.add_argument("--json", default=None, help="write the report here")
    parser.add_argument("--counterexamples", default="counterexamples",
                        help="folder for shrunk counterexamples (default: ./counterexamples)")
    parser.add_argument("--replay", default=None, help="re-evaluate a counterexample JSON file")
    parser.add_argument("--mutant", nargs=2, metavar=("CLAIM", "MUTANT"), default=None,
                        help="run a deliberately wrong statement instead (it must be refuted)")
    args = parser.parse_args(argv)
    _xla_flags.enable_compilation_cache()  # an entry point: off with SQUASH_SIM_COMPILE_CACHE=0

    if args.replay:
        outcome = replay(Path(args.replay))
        print(json.dumps(dataclasses.asdict(outcome) | {"violated": outcome.violated}, indent=2))
        return 1 if outcome.violated else 0
    unknown = [c for c in args.claims if c not in CLAIMS]
    if unknown:
        parser.error(f"unknown claim(s) {unknown}; known: {', '.join(CLAIMS)}")
    if args.examples is not None and args.examples < 1:
        parser.error("--examples must be >= 1")
    jobs = [(CLAIMS[c], None, c) for c in (args.claims or CLAIMS)]
    # The paper's printed variants of a result (e.g. Theorem B.5): reported, never failing the run.
    variants = [(CLAIMS[c], fn, f"{c} [{name}]") for c in (args.claims or CLAIMS)
                for name, fn in getattr(CLAIMS[c], "VARIANTS", {}).items()]
    if args.mutant:
        claim, mutant = args.mutant
        if claim not in CLAIMS or mutant not in CLAIMS[claim].MUTANTS:
            parser.error(f"--mutant: no mutant {mutant!r} of {claim!r}")
        jobs = [(CLAIMS[claim], CLAIMS[claim].MUTANTS[mutant], f"{claim} [mutant: {mutant}]")]

    print(HEADER + "\n" + "-" * len(HEADER))
    reports, reports_variants = [], []
    for module, evaluate, label in jobs:
        report = run_claim(module, args.examples, evaluate)
        report.claim = label
        reports.append(report)
        print(report.row(), flush=True)
        if report.counterexample and not args.mutant:
            target = write_json(Path(args.counterexamples) / f"{module.NAME}.json",
                                report.counterexample)
            print(f"    counterexample (shrunk) written to {target}")
    if variants and not args.mutant:
        print("\nThe paper's printed variants (reported; they do not fail the run):")
        for module, evaluate, label in variants:
            report = run_claim(module, args.examples, evaluate)
            report.claim = label
            print(report.row() + ("   ← does NOT bound the Jacobian" if report.violations
                                  else "   ← bounds it on every instance"), flush=True)
            if report.counterexample:
                safe = "".join(ch if ch.isalnum() else "_" for ch in label)
                write_json(Path(args.counterexamples) / f"{safe}.json",
                           report.counterexample | {"variant": label})
            reports_variants.append(report)
    if args.json:
        write_json(Path(args.json), [dataclasses.asdict(r) for r in reports]
                   + [dataclasses.asdict(r) | {"printed_variant": True} for r in reports_variants])
    for module in CLAIMS.values():
        if hasattr(module, "COMPUTE"):
            module.COMPUTE.clear()
    violated = any(r.violations for r in reports)
    total = sum(r.seconds for r in reports)
    devices = jax.devices()
    print(f"\nt = lhs/rhs (tightness); {sum(r.instances for r in reports)} instances, "
          f"{sum(r.compilations for r in reports)} XLA compilations, {total:.1f} s, batched claims "
          f"sharded over {len(devices)} {devices[0].platform} device(s). "
          + ("VIOLATIONS FOUND" if violated else "no violations"))
    return 1 if violated and not args.mutant else 0


if __name__ == "__main__":
    sys.exit(main())
