"""Run claims over Hypothesis-drawn instances: a table, JSON, shrunk counterexamples, replay.

    python -m proofs_check                          every claim at its default budget
    python -m proofs_check theorem_b5 --examples 2000 --json out.json
    python -m proofs_check --replay counterexample.json
    python -m proofs_check --mutant theorem_b5 "bound scaled by 1/100"   (must be refuted)

Exit status: 0 no violation (--mutant: the mutant was refuted, as a deliberately wrong statement
must be); 1 a claim whose assumptions were met is violated (--mutant: the mutant was NOT refuted;
--replay: the replayed statement is violated, or the stored outcome is not reproduced); 2 bad
arguments or a bad replay file (one line on stderr, nothing run).

A counterexample is shrunk by Hypothesis and written as JSON ({"claim", "instance", "outcome"},
plus "variant" or "mutant" when it refutes one of those), and --replay re-evaluates that same
statement and compares the outcome bit for bit.

From Python: `run_all()` returns the rows (ClaimReport, with `verdict`) without printing.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.monitoring
from hypothesis import HealthCheck, Phase, example, given, settings

from proofs_check.claims import CLAIMS
from proofs_check.claims.base import ClaimViolation, Outcome
from proofs_check.claims.domain import InstanceError, check_instance
from squash_sim import _xla_flags
from squash_sim.results import write_json

DEFAULT_EXAMPLES = 200
JUDGED_AT_LEAST = 0.8  # a default run must judge this fraction of its instances (or say why not)
MAX_REPLAY_BYTES = 1 << 20  # counterexamples are a few kB; anything bigger is not one
MAX_REPLAY_DEPTH = 16  # the deepest counterexample (lemma_b7: file → instance → matrix → row) is 4

_COMPILES = [0]


@contextlib.contextmanager
def _inputs_alone():
    """Hypothesis draws as a function of the claim and its budget alone. With derandomize=True
    and no example database, one thing is left that depends on the process: Hypothesis mixes in
    "local constants" scraped from every non-library module loaded so far (and cached under
    .hypothesis/constants), so a report resumed after its first sections were reused (fewer
    modules imported) drew other instances than an uninterrupted one (lemma_b1 max tightness
    0.9987 against 0.9983). The pool of local constants is emptied while a claim runs; the
    global pool (0, 1, inf, ...) stays."""
    try:
        from hypothesis.internal.conjecture import providers
        from hypothesis.internal.constants_ast import Constants

        original = providers._get_local_constants
    except (ImportError, AttributeError):  # a Hypothesis without local constants: nothing to do
        yield
        return
    empty = Constants()
    providers._get_local_constants = lambda: empty
    providers.CONSTANTS_CACHE.cache.clear()
    try:
        yield
    finally:
        providers._get_local_constants = original
        providers.CONSTANTS_CACHE.cache.clear()


def _count_compiles(event: str, duration: float, **_) -> None:
    if event == "/jax/core/compile/backend_compile_duration":
        _COMPILES[0] += 1


jax.monitoring.register_event_duration_secs_listener(_count_compiles)


@dataclasses.dataclass
class ClaimReport:
    """One row of the table: a claim (or one of its printed variants / mutants) over its draws.

    not_judged counts the instances that were not judged, by "verdict: reason" (assumption not
    met, non-finite, overflow, not reached, below resolution); assumption_failures is their
    total. The margin and tightness statistics are over the judged instances only."""

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
    not_judged: dict = dataclasses.field(default_factory=dict)
    kind: str = "claim"  # claim | variant | mutant
    summary: str = ""  # a printed variant: "fails with the printed C …, holds with C·(…)"

    @property
    def judged(self) -> int:
        return self.instances - self.assumption_failures

    @property
    def judged_fraction(self) -> float:
        return self.judged / self.instances if self.instances else 0.0

    @property
    def verdict(self) -> str:
        """holds | holds, assumption not met on k of N | violated on k of N | non-finite | …"""
        n = self.instances
        if self.violations:
            return f"violated on {self.violations} of {n}"
        by_status = collections.Counter()
        for key, count in self.not_judged.items():
            by_status[key.split(":")[0]] += count
        if self.judged == 0 and n:
            return " / ".join(sorted(by_status)) or "not judged"
        parts = [f"{status} on {count} of {n}" for status, count in sorted(by_status.items())]
        return ", ".join(["holds"] + parts)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self) | {"verdict": self.verdict, "judged": self.judged}

    def row(self) -> str:
        fmt = lambda x: "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3g}"  # noqa: E731
        return (f"{self.claim:<22} {self.instances:>9} {self.violations:>10} "
                f"{fmt(self.worst_margin):>12} {fmt(self.median_tightness):>10} "
                f"{fmt(self.max_tightness):>10} {self.judged:>6} {self.seconds:>7.1f} "
                f"{self.compilations:>8}  {self.verdict}")


HEADER = (f"{'claim':<22} {'instances':>9} {'violations':>10} {'worst margin':>12} "
          f"{'median t':>10} {'max t':>10} {'judged':>6} {'time s':>7} {'compiles':>8}  verdict")


def judging_problem(module, report: ClaimReport) -> str | None:
    """The runner-wide rule: a default run judges at least 80 % of its instances, unless the
    claim documents why not (UNJUDGED_BECAUSE). → what is wrong, or None."""
    if report.judged >= JUDGED_AT_LEAST * report.instances or getattr(module, "UNJUDGED_BECAUSE", ""):
        return None
    return (f"{module.NAME} judges {report.judged} of {report.instances} instances "
            f"(< {JUDGED_AT_LEAST:.0%}) and does not say why (UNJUDGED_BECAUSE): "
            f"{report.not_judged}")


def statement(module, kind: str = "claim", name: str | None = None):
    """The evaluate function of a claim's checked statement, or of one of its printed variants
    or mutants (KeyError naming what exists if there is no such one)."""
    if kind == "claim":
        return module.evaluate
    table = {"variant": getattr(module, "VARIANTS", {}), "mutant": module.MUTANTS}[kind]
    if name not in table:
        raise KeyError(f"{module.NAME} has no {kind} {name!r}; its {kind}s: "
                       f"{', '.join(map(repr, table)) or 'none'}")
    return table[name]


def _identify(module, evaluate) -> tuple[str, str | None]:
    """Which statement of `module` the function `evaluate` is (so its counterexample replays)."""
    if evaluate is None or evaluate is module.evaluate:
        return "claim", None
    for kind, table in (("variant", getattr(module, "VARIANTS", {})), ("mutant", module.MUTANTS)):
        for name, function in table.items():
            if function is evaluate:
                return kind, name
    return "custom", None


def run_claim(module, examples: int | None = None, evaluate=None, shrink: bool = True) -> ClaimReport:
    """Evaluate `examples` instances (deterministic; plus the claim's EXAMPLES); shrink the first
    violation unless told not. Every instance is checked against the claim's DOMAIN first.

    A claim with a batched COMPUTE is run twice over the same derandomized draws: first only to
    collect the instances, which COMPUTE evaluates grouped by shape, vmapped and sharded over the
    devices; then to judge each one from that cache (shrinking computes its new instances alone).
    The cache is kept, so mutants and printed variants of the claim reuse it; `run_all` clears it.
    The outcome stored with a counterexample is computed alone (as --replay does), so replaying
    it reproduces it bit for bit."""
    kind, name = _identify(module, evaluate)
    evaluate = evaluate or module.evaluate
    examples = examples or getattr(module, "DEFAULT_EXAMPLES", DEFAULT_EXAMPLES)
    compute = getattr(module, "COMPUTE", None)
    drawn: list = []
    start, compiles_before = time.perf_counter(), _COMPILES[0]

    def hypothesis_run(test, phases):
        @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                  suppress_health_check=list(HealthCheck), print_blob=False, phases=phases)
        @given(module.instances())
        def check(instance):
            check_instance(module, instance)  # a strategy drawing outside its domain is a bug
            test(instance)

        for explicit in getattr(module, "EXAMPLES", ()):
            check = example(explicit)(check)
        with _inputs_alone():
            check()

    # 1. The draws (the claim's EXAMPLES, then `examples` generated ones), evaluated once each:
    # the table's statistics are over exactly these, never over shrinking's attempts.
    hypothesis_run(drawn.append, [Phase.explicit, Phase.generate])
    if compute is not None:
        compute.prefetch(drawn)
    seen = [evaluate(instance) for instance in drawn]

    # 2. A violation: run again until the first one and let Hypothesis shrink it.
    counterexample = None
    first = next((inst for inst, o in zip(drawn, seen, strict=True) if o.violated), None)
    if first is not None:
        def judge(instance):
            outcome = evaluate(instance)
            if outcome.violated:
                raise ClaimViolation(module.NAME, instance, outcome)

        try:
            if shrink:
                hypothesis_run(judge, [Phase.explicit, Phase.generate, Phase.shrink])
            judge(first)
        except ClaimViolation as violation:  # raised again on the shrunk, minimal instance
            first = violation.instance
        with compute.alone() if compute is not None else contextlib.nullcontext():
            outcome = evaluate(first)
        counterexample = {"claim": module.NAME, "instance": first,
                          "outcome": dataclasses.asdict(outcome)}
        if kind in ("variant", "mutant"):
            counterexample[kind] = name
    met = [o for o in seen if o.assumptions_met]
    tight = [o.tightness for o in met if not math.isnan(o.tightness)]
    not_judged = collections.Counter(o.verdict + (f": {o.reason}" if o.reason else "")
                                     for o in seen if not o.assumptions_met)
    label = module.NAME + (f" [{kind}: {name}]" if kind in ("variant", "mutant") else "")
    return ClaimReport(
        claim=label, instances=len(seen), violations=sum(o.violated for o in seen),
        assumption_failures=len(seen) - len(met),
        worst_margin=min((o.margin for o in met), default=math.nan),
        median_tightness=statistics.median(tight) if tight else math.nan,
        max_tightness=max(tight, default=math.nan), seconds=time.perf_counter() - start,
        compilations=_COMPILES[0] - compiles_before, counterexample=counterexample,
        not_judged=dict(sorted(not_judged.items())), kind=kind)


def _variant_summary(module, name: str, report: ClaimReport, examples: int | None) -> str:
    """What was measured about a printed variant: whether it bounds, and with which constant."""
    if not report.violations:
        return f"bounds it on all {report.judged} instances"
    text = (f"fails with the printed C on {report.violations} of {report.instances} "
            f"(needs C·{report.max_tightness:.3g} on these draws)")
    correction = getattr(module, "VARIANT_CORRECTIONS", {}).get(name)
    if correction:
        label, corrected = correction
        fixed = run_claim(module, examples, corrected, shrink=False)
        text += (f"; holds with C·{label} on all {fixed.instances}" if not fixed.violations else
                 f"; C·{label} still fails on {fixed.violations} of {fixed.instances}")
    return text


def run_all(claims=None, examples: int | None = None, *, variants: bool = True,
            counterexamples: str | Path | None = None, on_report=None, on_start=None,
            examples_scale: float = 1.0) -> list[ClaimReport]:
    """Every claim (or those named) at its default budget (or `examples` each), then the paper's
    printed variants (kind "variant", with a `summary`). Counterexamples are written to the
    folder `counterexamples` when given (claim.json / claim__variant_name.json). `on_start(label,
    budget)` is called before each row and `on_report(r)` as each row is ready. examples_scale
    scales every default budget (at least 2 instances; the report's sizes use it). The rows'
    `verdict` says holds / violated / not judged."""
    if examples is None and examples_scale != 1.0:
        if not (isinstance(examples_scale, (int, float)) and 0 < examples_scale <= 10):
            raise ValueError(f"run_all: examples_scale must be a number in (0, 10], got "
                             f"{examples_scale!r}")

    def budget(module) -> int | None:
        if examples is not None or examples_scale == 1.0:
            return examples
        default = getattr(module, "DEFAULT_EXAMPLES", DEFAULT_EXAMPLES)
        return max(2, round(default * examples_scale))

    names = list(claims or CLAIMS)
    unknown = [c for c in names if c not in CLAIMS]
    if unknown:
        raise ValueError(f"unknown claim(s) {unknown}; known: {', '.join(CLAIMS)}")
    reports = []
    try:
        jobs = [(CLAIMS[c], None) for c in names]
        if variants:
            jobs += [(CLAIMS[c], v) for c in names for v in getattr(CLAIMS[c], "VARIANTS", {})]
        for module, variant in jobs:
            evaluate = statement(module, "variant", variant) if variant else None
            if on_start:
                on_start(module.NAME + (f" [{variant}]" if variant else ""), budget(module))
            report = run_claim(module, budget(module), evaluate)
            if variant:
                report.summary = _variant_summary(module, variant, report, budget(module))
            if report.counterexample and counterexamples is not None:
                stem = module.NAME + ("__" + "".join(c if c.isalnum() else "_" for c in variant)
                                      if variant else "")
                report.counterexample["file"] = str(write_json(
                    Path(counterexamples) / f"{stem}.json",
                    {k: v for k, v in report.counterexample.items() if k != "file"}))
            reports.append(report)
            if on_report:
                on_report(report)
    finally:
        for module in CLAIMS.values():
            if hasattr(module, "COMPUTE"):
                module.COMPUTE.clear()
    return reports


# --- replay ----------------------------------------------------------------------------------


class ReplayError(ValueError):
    """A replay file that is not a counterexample this runner can re-evaluate (names the file)."""


def _depth(value) -> int:
    depth, level = 0, [value]
    while level:
        depth += 1
        level = [child for item in level if isinstance(item, (dict, list))
                 for child in (item.values() if isinstance(item, dict) else item)]
        if depth > MAX_REPLAY_DEPTH:
            break
    return depth - 1


def load_counterexample(path) -> tuple:
    """Read and validate a counterexample file → (module, kind, name, instance, stored outcome
    dict or None). ReplayError (one line, naming the file) for anything that is not one."""
    path = Path(path)

    def bad(why: str):
        return ReplayError(f"--replay {path}: {why}")

    try:
        size = path.stat().st_size
    except OSError as err:
        raise bad(err.strerror.lower() if err.strerror else "cannot be read") from None
    if not path.is_file():
        raise bad("is not a file")
    if size > MAX_REPLAY_BYTES:
        raise bad(f"is {size:,} bytes; a counterexample file is at most {MAX_REPLAY_BYTES:,}")
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as err:
        raise bad(err.strerror.lower() if err.strerror else "cannot be read") from None
    except UnicodeDecodeError:
        raise bad("is not UTF-8 text (a counterexample is JSON)") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise bad(f"is not valid JSON ({err.msg}: line {err.lineno}, column {err.colno})") from None
    except RecursionError:
        raise bad(f"is nested too deeply (at most {MAX_REPLAY_DEPTH} levels)") from None
    if _depth(data) > MAX_REPLAY_DEPTH:
        raise bad(f"is nested too deeply (at most {MAX_REPLAY_DEPTH} levels)")
    if not isinstance(data, dict):
        raise bad(f"must hold a JSON object with 'claim' and 'instance', not a {type(data).__name__}")
    allowed = ("claim", "instance", "outcome", "variant", "mutant")
    for key in data:
        if key not in allowed:
            raise bad(f"has an unknown key {str(key)[:40]!r} (allowed: {', '.join(allowed)})")
    for key in ("claim", "instance"):
        if key not in data:
            raise bad(f"has no {key!r} key (a counterexample has 'claim' and 'instance')")
    claim = data["claim"]
    if not isinstance(claim, str) or claim not in CLAIMS:
        raise bad(f"names no known claim ({str(claim)[:40]!r}); known: {', '.join(CLAIMS)}")
    module = CLAIMS[claim]
    if "variant" in data and "mutant" in data:
        raise bad("names both a variant and a mutant")
    kind = "variant" if "variant" in data else "mutant" if "mutant" in data else "claim"
    name = data.get(kind)
    if kind != "claim":
        if isinstance(name, str) and name.startswith(f"{claim} [") and name.endswith("]"):
            name = name[len(claim) + 2: -1]  # the label older runners stored
        try:
            statement(module, kind, name)
        except (KeyError, TypeError) as err:
            raise bad(str(err.args[0]) if err.args else f"no such {kind}") from None
    try:
        check_instance(module, data["instance"])
    except InstanceError as err:
        raise bad(str(err)) from None
    stored = data.get("outcome")
    if stored is not None:
        fields = {f.name for f in dataclasses.fields(Outcome)}
        if not isinstance(stored, dict) or not {"lhs", "rhs", "holds"} <= set(stored) \
                or set(stored) - fields:
            raise bad(f"'outcome' must be an object with lhs, rhs, holds (and optionally "
                      f"{', '.join(sorted(fields - {'lhs', 'rhs', 'holds'}))})")
    return module, kind, name, data["instance"], stored


def _same(a, b) -> bool:
    """Equal bit for bit (floats by their hex: -0.0 ≠ 0.0, NaN = NaN)."""
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) \
            and float(a).hex() == float(b).hex()
    return a == b


def differences(stored: dict, outcome: Outcome) -> list[str]:
    """The fields in which a replayed outcome differs from the stored one (empty: reproduced)."""
    replayed = dataclasses.asdict(outcome)
    defaults = {f.name: f.default for f in dataclasses.fields(Outcome)
                if f.default is not dataclasses.MISSING}
    return [f"{key}: stored {stored.get(key, defaults.get(key))!r}, replayed {value!r}"
            for key, value in replayed.items()
            if not _same(stored.get(key, defaults.get(key)), value)]


def replay(path) -> Outcome:
    """Re-evaluate the statement a counterexample file names (the claim, or its variant or
    mutant) on its instance. ReplayError for a file that is not a valid counterexample."""
    module, kind, name, instance, _ = load_counterexample(path)
    return statement(module, kind, name)(instance)


# --- command line ----------------------------------------------------------------------------


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage block: main prints it and returns 2
        raise _UsageError(message)


def _positive_examples(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if not 1 <= value <= 100_000:
        raise argparse.ArgumentTypeError(f"must be between 1 and 100000, got {value}")
    return value


def _writable_file(option: str, value: str | None) -> None:
    if value is None:
        return
    path = Path(value)
    if path.is_dir():
        raise _UsageError(f"{option} {value}: is a folder, not a file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _UsageError(f"{option} {value}: cannot create its folder ({err.strerror})") from None
    if not os.access(path.parent, os.W_OK):
        raise _UsageError(f"{option} {value}: its folder is not writable")


def _writable_folder(option: str, value: str) -> None:
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise _UsageError(f"{option} {value}: exists and is not a folder")
    if path.is_dir() and not os.access(path, os.W_OK):
        raise _UsageError(f"{option} {value}: is not writable")


def _main_replay(path: str, prog: str) -> int:
    try:
        module, kind, name, instance, stored = load_counterexample(path)
    except ReplayError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    outcome = statement(module, kind, name)(instance)
    changed = differences(stored, outcome) if stored is not None else []
    what = "the checked statement" if kind == "claim" else f"{kind} {name!r}"
    print(json.dumps({"claim": module.NAME, "statement": what}
                     | dataclasses.asdict(outcome)
                     | {"verdict": outcome.verdict, "violated": outcome.violated,
                        "reproduces_stored_outcome": None if stored is None else not changed},
                     indent=2))
    if changed:
        print(f"{prog}: the replay does NOT reproduce the stored outcome: " + "; ".join(changed),
              file=sys.stderr)
    return 1 if outcome.violated or changed else 0


def build_parser(prog: str = "python -m proofs_check") -> argparse.ArgumentParser:
    """The command line's parser (the documentation renders its help from it)."""
    parser = _Parser(prog=prog, description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("claims", nargs="*", help=f"claims to run (default: all): {', '.join(CLAIMS)}")
    parser.add_argument("--examples", type=_positive_examples, default=None,
                        help="instances per claim (1..100000; default: each claim's own)")
    parser.add_argument("--json", default=None, help="write the report here")
    parser.add_argument("--counterexamples", default="counterexamples",
                        help="folder for shrunk counterexamples (default: ./counterexamples)")
    parser.add_argument("--replay", default=None, metavar="FILE",
                        help="re-evaluate a counterexample JSON file and compare its outcome")
    parser.add_argument("--mutant", nargs=2, metavar=("CLAIM", "MUTANT"), default=None,
                        help="run a deliberately wrong statement instead; exit 0 when it is "
                             "refuted, 1 when it is not")
    return parser


def main(argv: list[str] | None = None, prog: str = "python -m proofs_check") -> int:
    """The command line (also `squash-sim check …`). Returns the exit status; bad arguments and
    bad replay files print one line to stderr and return 2 before any work."""
    parser = build_parser(prog)
    try:
        args = parser.parse_args(argv)
        _xla_flags.enable_compilation_cache()  # an entry point: off with SQUASH_SIM_COMPILE_CACHE=0
        if args.replay is not None:
            if args.claims or args.mutant or args.examples or args.json:
                raise _UsageError("--replay FILE takes no claims, --mutant, --examples or --json")
            return _main_replay(args.replay, prog)
        unknown = [c for c in args.claims if c not in CLAIMS]
        if unknown:
            raise _UsageError(f"unknown claim(s) {', '.join(map(repr, unknown))}; known: "
                              f"{', '.join(CLAIMS)}")
        if args.mutant:
            claim, mutant = args.mutant
            if claim not in CLAIMS or mutant not in CLAIMS[claim].MUTANTS:
                known = ", ".join(repr(m) for m in CLAIMS[claim].MUTANTS) if claim in CLAIMS else ""
                raise _UsageError(f"--mutant: no mutant {mutant!r} of {claim!r}"
                                  + (f"; its mutants: {known}" if known else ""))
            if args.claims:
                raise _UsageError("--mutant takes no other claims")
        _writable_file("--json", args.json)
        _writable_folder("--counterexamples", args.counterexamples)
    except _UsageError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2

    print(HEADER + "\n" + "-" * len(HEADER))

    def show(report: ClaimReport) -> None:
        if report.kind == "variant" and not show.variants_header:
            print("\nThe paper's printed variants (reported; they do not fail the run):")
            show.variants_header = True
        print(report.row(), flush=True)
        for reason, count in report.not_judged.items():
            print(f"    not judged: {count} × {reason}")
        if report.summary:
            print(f"    {report.summary}")
        if report.counterexample and report.counterexample.get("file"):
            print(f"    counterexample (shrunk) written to {report.counterexample['file']}")

    show.variants_header = False
    if args.mutant:
        claim, mutant = args.mutant
        module = CLAIMS[claim]
        try:
            reports = [run_claim(module, args.examples, module.MUTANTS[mutant])]
        finally:
            if hasattr(module, "COMPUTE"):
                module.COMPUTE.clear()
        show(reports[0])
    else:
        reports = run_all(args.claims or None, args.examples,
                          counterexamples=args.counterexamples, on_report=show)
    if args.json:
        write_json(Path(args.json), [r.as_dict() | ({"printed_variant": True}
                                                      if r.kind == "variant" else {})
                                     for r in reports])
    checked = [r for r in reports if r.kind != "variant"]
    violated = any(r.violations for r in checked)
    total = sum(r.seconds for r in reports)
    devices = jax.devices()
    if args.mutant:  # a mutant is a wrong statement: the check works when it is refuted
        verdict = ("mutant refuted (violations found, as they must be)" if violated else
                   "mutant NOT refuted: this budget does not catch the deliberately wrong statement")
    else:
        verdict = "VIOLATIONS FOUND" if violated else "no violations"
    print(f"\nt = lhs/rhs (tightness); {sum(r.instances for r in reports)} instances, "
          f"{sum(r.compilations for r in reports)} XLA compilations, {total:.1f} s, batched claims "
          f"sharded over {len(devices)} {devices[0].platform} device(s). " + verdict)
    return int(violated != bool(args.mutant))  # the exit status documented at the top


if __name__ == "__main__":
    sys.exit(main())
