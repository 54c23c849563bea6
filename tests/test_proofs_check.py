"""proofs_check: every claim holds at its default budget, and every mutant is refuted by it."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from proofs_check.claims import CLAIMS, lemma_b1
from proofs_check.claims.base import (
    ClaimViolation,
    InstanceError,
    Outcome,
    assert_holds,
    non_finite,
)
from proofs_check.runner import (
    ClaimReport,
    differences,
    judging_problem,
    main,
    replay,
    run_all,
    run_claim,
)
from squash_sim.analysis import mechanism
from squash_sim.precision import get as get_precision

MUTANTS = [(claim, mutant) for claim, module in CLAIMS.items() for mutant in module.MUTANTS]


@pytest.mark.parametrize("claim", list(CLAIMS))
def test_every_claim_holds_and_judges_most_of_its_default_budget(claim):
    """No violation; and the runner-wide rule: a default run judges >= 80 % of its instances
    (the rest are reported with their reason) unless the claim documents why not."""
    module = CLAIMS[claim]
    report = run_claim(module)
    assert report.violations == 0, report.counterexample
    assert report.instances >= getattr(module, "DEFAULT_EXAMPLES", 200) + len(
        getattr(module, "EXAMPLES", ()))
    assert judging_problem(module, report) is None, judging_problem(module, report)
    assert sum(report.not_judged.values()) == report.assumption_failures


def test_the_judging_rule_fails_a_claim_that_judges_too_little_without_saying_why():
    row = ClaimReport("x", 10, 0, 3, 0.0, 0.0, 0.0, 0.0, not_judged={"assumption not met": 3})
    silent = type("Claim", (), {"NAME": "x"})
    documented = type("Claim", (), {"NAME": "x", "UNJUDGED_BECAUSE": "controls, on purpose"})
    assert "judges 7 of 10" in judging_problem(silent, row)
    assert judging_problem(documented, row) is None
    row.assumption_failures, row.not_judged = 2, {"assumption not met": 2}
    assert judging_problem(silent, row) is None  # 8 of 10 = 80 %
    assert row.verdict == "holds, assumption not met on 2 of 10"


@pytest.mark.parametrize("claim, mutant", MUTANTS, ids=[f"{c}:{m}" for c, m in MUTANTS])
def test_the_default_budget_refutes_every_mutant_and_its_counterexample_replays(claim, mutant,
                                                                               tmp_path):
    module = CLAIMS[claim]
    report = run_claim(module, evaluate=module.MUTANTS[mutant], shrink=False)
    assert report.violations > 0, f"mutant {mutant!r} of {claim} survived {report.instances} instances"
    assert report.counterexample["mutant"] == mutant
    path = tmp_path / "counterexample.json"
    path.write_text(json.dumps(report.counterexample))
    assert differences(report.counterexample["outcome"], replay(path)) == []


def test_every_claim_declares_what_a_reader_needs():
    for module in CLAIMS.values():
        for field in ("NAME", "REFERENCE", "ASSUMPTIONS", "STATEMENT", "LATEX", "DOMAIN"):
            assert getattr(module, field), (module.__name__, field)
        assert module.MUTANTS, module.__name__


def test_an_instance_within_rounding_of_zero_is_not_judged():
    """theorem_b3 at n = 1 with RoPE: 1.7e-16 ≤ 5.1e-17 'held' only through the absolute slack and
    made the table's max tightness 3.24 with no violation; it is 'below resolution' now, outside
    the statistics. 0 ≤ 0 exactly (NoPE, n = 1) is still judged."""
    from proofs_check.claims import theorem_b3

    base = {"d": 4, "n": 1, "norm": "none", "beta": 1.0}
    noise = theorem_b3.evaluate(base | {"positional": "rope", "scale": 0.26903236706476313,
                                        "seed": 292})
    assert noise.verdict == "below resolution" and 0 < noise.lhs <= theorem_b3.RESOLUTION
    exact = theorem_b3.evaluate(base | {"positional": "none", "scale": 0.1, "seed": 0})
    assert exact.verdict == "holds" and exact.lhs == exact.rhs == 0


def test_theorem_b3_reports_unmet_assumptions_instead_of_passing():
    from proofs_check.claims import theorem_b3

    outcome = theorem_b3.evaluate({"n": 8, "d": 4, "positional": "sinusoidal", "norm": "none",
                                   "beta": 1.0, "scale": 1.0, "seed": 3})
    assert not outcome.assumptions_met and "assumption not met" in outcome.note


def test_lemma_b1_gap_decays_like_n_to_the_minus_two():
    assert abs(lemma_b1.slope() + 2) < 0.05


def test_replay_reevaluates_the_statement_the_file_names(tmp_path):
    module = CLAIMS["lemma_b2"]
    mutant = module.MUTANTS["S/max(Z,Z*) (factor 2 dropped)"]
    report = run_claim(module, evaluate=mutant)
    instance = report.counterexample["instance"]  # shrunk by Hypothesis
    path = tmp_path / "counterexample.json"
    path.write_text(json.dumps(report.counterexample))
    assert replay(path) == mutant(instance) and replay(path).violated  # the mutant, again
    as_claim = {k: v for k, v in report.counterexample.items() if k not in ("mutant", "outcome")}
    path.write_text(json.dumps(as_claim))
    assert replay(path) == module.evaluate(instance) and not replay(path).violated  # true claim
    with pytest.raises(ClaimViolation):
        assert_holds(type("Mutant", (), {"NAME": "m", "DOMAIN": module.DOMAIN,
                                          "evaluate": staticmethod(mutant)}), instance)


def test_runner_and_report_counterexamples_replay_bit_for_bit_including_printed_variants(tmp_path):
    """The report writes its counterexamples through run_all (squash_sim.runs.claims → main):
    every file replays to the stored outcome, variant included (it used to replay the checked
    statement: "holds"). The printed B.5 forms fail with their printed C and hold with the
    corrected one."""
    folder = tmp_path / "counterexamples"
    reports = run_all(["theorem_b5"], counterexamples=folder)
    checked, *variants = reports
    assert checked.kind == "claim" and checked.violations == 0
    assert [r.kind for r in variants] == ["variant"] * 2
    for report in variants:
        assert report.violations > 0 and report.counterexample is not None
        assert "fails with the printed C" in report.summary and "; holds with C·" in report.summary
    files = sorted(folder.glob("*.json"))
    assert len(files) == 2
    for path in files:
        stored = json.loads(path.read_text())
        assert stored["variant"] in CLAIMS["theorem_b5"].VARIANTS
        outcome = replay(path)
        assert outcome.violated and differences(stored["outcome"], outcome) == []
        assert main(["--replay", str(path)]) == 1  # violated, and the outcome reproduced
    tampered = json.loads(files[0].read_text())
    tampered["outcome"]["lhs"] = math.nextafter(tampered["outcome"]["lhs"], math.inf)
    (tmp_path / "tampered.json").write_text(json.dumps(tampered))
    assert differences(tampered["outcome"], replay(tmp_path / "tampered.json"))  # one ulp is seen


BAD_REPLAYS = {
    "nan.json": ('{"claim": "lemma_b1", "instance": {"n": 10, "m": 0.0, "width": 1.0, "b": NaN, '
                 '"c": 0.0, "seed": 1}}', "field 'b' must be a finite number"),
    "malformed.json": ('{"claim": "lemma_b1", "inst', "is not valid JSON"),
    "missing.json": ('{"claim": "lemma_b1"}', "has no 'instance' key"),
    "wrong_claim.json": ('{"claim": "lemma_b99", "instance": {}}', "names no known claim"),
    "deep.json": ("[" * 50_000 + "]" * 50_000, "nested too deeply"),
    "huge.json": (" " * (2 << 20), "a counterexample file is at most"),
    "array.json": ("[1, 2]", "must hold a JSON object"),
    "bool_n.json": ('{"claim": "prop_b4", "instance": {"n": true}}', "field 'n' must be an integer"),
    "odd_n.json": ('{"claim": "prop_b4", "instance": {"n": 7}}', "needs n even"),
    "extra.json": ('{"claim": "prop_b4", "instance": {"n": 8, "x": 1}}', "field 'x' is not one of"),
    "no_variant.json": ('{"claim": "theorem_b5", "variant": "nope", "instance": {}}',
                        "has no variant 'nope'"),
    "matrix.json": ('{"claim": "lemma_b6", "instance": [[1.0, 0.5], [0.5, 0.5]]}',
                    "non-zero above the diagonal"),
    "bad_outcome.json": ('{"claim": "prop_b4", "instance": {"n": 8}, "outcome": {"lhs": 1}}',
                         "'outcome' must be an object"),
    "latin1.json": (b'{"claim": "\xe9"}', "is not UTF-8"),
}


@pytest.mark.parametrize("name", list(BAD_REPLAYS))
def test_a_bad_replay_file_gets_one_line_naming_the_file_and_exit_2(name, tmp_path, capsys):
    content, message = BAD_REPLAYS[name]
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert main(["--replay", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(path) in err and message in err, err


def test_out_of_domain_instances_are_rejected_never_judged():
    with pytest.raises(InstanceError, match="field 'b' must be a finite number"):
        assert_holds(lemma_b1, {"n": 10, "m": 0.0, "width": 1.0, "b": float("nan"), "c": 0.0,
                                "seed": 1})
    with pytest.raises(InstanceError, match="field 'n' must be an integer in"):
        assert_holds(lemma_b1, {"n": 10**9, "m": 0.0, "width": 1.0, "b": 0.0, "c": 0.0, "seed": 1})
    with pytest.raises(InstanceError, match="field 'seed' is missing"):
        assert_holds(lemma_b1, {"n": 10, "m": 0.0, "width": 1.0, "b": 0.0, "c": 0.0})
    with pytest.raises(InstanceError, match="item 1: .*sums to"):
        assert_holds(CLAIMS["lemma_b7"], [[[1.0]], [[0.5]]])
    with pytest.raises(ValueError, match="never judged"):
        Outcome(1.0, 2.0, True, assumptions_met=True, status="non-finite")
    garbage = non_finite("model output", np.ones(3), np.array([1.0, np.inf]))
    assert garbage.verdict == "non-finite" and not garbage.violated and not garbage.holds
    assert non_finite("model output", np.ones(3)) is None


def test_the_corners_of_the_numpy_claims_domains_hold():
    """A DOMAIN promises the check is sound everywhere inside it (float64 evaluates it
    faithfully): its extreme corners must hold, not be "violated" by rounding."""
    import itertools

    from proofs_check.claims import lemma_b2, prop_b4, softmax_dispersion

    for n, m, width, b, c in itertools.product([2, 10**6], [-5.0, 5.0], [0.0, 5.0], [-5.0, 5.0],
                                               [-5.0, 5.0]):
        assert assert_holds(lemma_b1, {"n": n, "m": m, "width": width, "b": b, "c": c,
                                       "seed": 1}).holds
    for n, m, width in itertools.product([1, 10**6], [-50.0, 50.0], [0.0, 20.0]):
        assert assert_holds(softmax_dispersion, {"m": m, "M": m + width, "n": n, "seed": 3}).holds
    for n, k in [(10**6, 10**6), (10**6, 0), (1, 1)]:
        assert assert_holds(lemma_b2, {"n": n, "k": k, "seed": 2}).holds
    assert assert_holds(prop_b4, {"n": 10**6}).holds


def test_a_replay_from_the_command_line_prints_no_traceback(tmp_path):
    path = tmp_path / "nan.json"
    path.write_text(BAD_REPLAYS["nan.json"][0])
    result = subprocess.run([sys.executable, "-m", "proofs_check", "--replay", str(path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "field 'b'" in result.stderr


def test_run_all_returns_rows_with_a_verdict():
    rows = run_all(["prop_b4", "lemma_b2"], examples=5)
    assert [(r.claim, r.verdict, r.judged) for r in rows] == [("prop_b4", "holds", 5),
                                                             ("lemma_b2", "holds", 5)]
    with pytest.raises(ValueError, match="unknown claim"):
        run_all(["nope"])


def _fake_run(lengths):
    """A stand-in experiment: precision → result whose lasting n* is looked up by the set of sums
    the counterfactual restored to fp32 (frozenset() for the policy itself)."""
    import types

    def run(precision):
        precision = get_precision(precision)
        restored = frozenset(site for site, (field, _) in mechanism.SITES.items()
                             if getattr(precision, field) == mechanism.FP32_SUMS)
        n_star = lengths.get(restored, lengths.get("else"))
        return types.SimpleNamespace(collapse=types.SimpleNamespace(
            n_star=n_star, status="sound", run_from=n_star))
    return run


def test_mechanism_is_decided_by_the_fp32_accumulator_counterfactual():
    """Pure bf16: with every sum in fp32 the collapse at 398 disappears (it comes at 1016) → an
    accumulator stalled; restoring the weights·values sum alone removes it (necessary), restoring
    the softmax sum alone moves it to 700 (moved, not a cause); with only the
    weights·values left in bf16 it still collapses at 398 → sufficient: that one. If the
    all-fp32 counterfactual collapses as early → the representation difference fell below the
    spacing. Storage-only bf16 has no sum in the format: below the spacing by construction."""
    every = frozenset(mechanism.SITES)
    lengths = {frozenset(): 398, every: 1016, frozenset({"weights·values"}): None,
               frozenset({"softmax sum"}): 700, every - {"weights·values"}: 398, "else": 398,
               every - {"softmax sum"}: None}
    stall = mechanism.explain(_fake_run(lengths), "bf16-pure", sites=mechanism.KEY_SUMS)
    assert (stall.mechanism, stall.counterfactual_collapse_length) == (mechanism.STALLED, 1016)
    assert stall.stalled == ("weights·values",) and stall.moved == ("softmax sum",)
    assert [(e.alone, e.only) for e in stall.sites] == [("moved", "removed"), ("removed", "kept")]
    assert stall.sufficient == ("weights·values",) and "moves it to n = 700" in stall.sentence()
    spacing = mechanism.explain(_fake_run({frozenset(): 398, every: 390}), "bf16-pure")
    assert spacing.mechanism == mechanism.REPRESENTATION
    assert mechanism.explain(_fake_run({frozenset(): 2000}), "bf16").mechanism == (
        mechanism.REPRESENTATION)
    assert mechanism.explain(_fake_run({frozenset(): None}), "bf16").mechanism is None


def test_corollary_b10_names_the_mechanism_of_every_collapse():
    from proofs_check.claims import corollary_b10

    stalled = corollary_b10.evaluate({"precision": "bf16-pure", "seed": 0})
    assert stalled.holds and mechanism.STALLED in stalled.note
    spacing = corollary_b10.evaluate({"precision": "fp8_e5m2", "seed": 0})
    assert spacing.holds and mechanism.REPRESENTATION in spacing.note


@pytest.mark.parametrize("failure, expected", [(FloatingPointError("inf"), "non-finite"),
                                               (OverflowError("saturated"), "overflow")])
def test_corollary_b10_never_calls_an_overflowed_run_a_collapse(failure, expected, monkeypatch):
    from proofs_check.claims import corollary_b10

    def run(policy, seed, max_len):
        raise failure

    monkeypatch.setattr(corollary_b10, "_run", run)
    corollary_b10.measure.cache_clear()
    try:
        for evaluate in (corollary_b10.evaluate, *corollary_b10.MUTANTS.values()):
            outcome = evaluate({"precision": "bf16-pure", "seed": 0})
            assert outcome.verdict == expected and not outcome.violated and not outcome.holds
    finally:
        corollary_b10.measure.cache_clear()


def test_cli_table_json_and_errors(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "proofs_check", *a],  # noqa: E731
                                    capture_output=True, text=True, timeout=300)
    ok = run("lemma_b1", "prop_b4", "--examples", "30", "--json", str(tmp_path / "r.json"))
    assert ok.returncode == 0, ok.stderr
    assert "lemma_b1" in ok.stdout and "no violations" in ok.stdout
    assert [r["claim"] for r in json.loads((tmp_path / "r.json").read_text())] == ["lemma_b1",
                                                                                    "prop_b4"]
    assert "XLA compilations" in ok.stdout
    bad = run("lemma_b99")
    assert bad.returncode == 2 and "unknown claim" in bad.stderr
    assert bad.stderr.strip().count("\n") == 0 and "Traceback" not in bad.stderr
    via_main_cli = subprocess.run([sys.executable, "-m", "squash_sim.cli", "check", "prop_b4",
                                   "--examples", "5"], capture_output=True, text=True, timeout=300)
    assert via_main_cli.returncode == 0 and "prop_b4" in via_main_cli.stdout


def _run_on_devices(count: int, tmp_path) -> list[dict]:
    out = tmp_path / f"devices{count}.json"
    env = {**os.environ,
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={count}"}
    result = subprocess.run([sys.executable, "-m", "proofs_check", "theorem_b3", "theorem_b5",
                             "--examples", "10", "--json", str(out),
                             "--counterexamples", str(tmp_path / "counterexamples")],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"sharded over {count} cpu device(s)" in result.stdout
    timing = ("seconds", "compilations")
    return [{k: v for k, v in row.items() if k not in timing} for row in json.loads(out.read_text())]


def test_four_simulated_devices_give_the_same_results_as_one(tmp_path):
    one, four = _run_on_devices(1, tmp_path), _run_on_devices(4, tmp_path)
    assert [r["claim"] for r in one] == [r["claim"] for r in four]
    assert one == four


def test_batched_compute_equals_one_instance_at_a_time():
    from proofs_check.claims import theorem_b3, theorem_b5

    for module, base in ((theorem_b3, {"n": 5, "d": 4, "positional": "rope", "norm": "theory",
                                       "beta": 2.5, "scale": 1.3}),
                         (theorem_b5, {"n": 4, "d": 3, "layers": 2, "beta1": 0.5, "beta2": 2.0,
                                       "beta3": 0.5})):
        instances = [{**base, "seed": seed} for seed in (1, 2, 3)]
        module.COMPUTE.clear()  # other tests' runs leave their instances cached
        alone = [module.COMPUTE(inst) for inst in instances]  # batches of one
        module.COMPUTE.prefetch(instances)  # one vmapped batch (padded to 4)
        try:
            for inst, single in zip(instances, alone, strict=True):
                together = module.COMPUTE(inst)
                for a, b in zip(single, together, strict=True):
                    np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float),
                                               rtol=1e-12, atol=1e-14)
            assert module.COMPUTE.hits == 3
        finally:
            module.COMPUTE.clear()


def test_prop_b8_sparse_row_whose_tail_underflows():
    """Found by Hypothesis: row n never reaches the token that sets ρ, so at the depth chosen for
    ρ its tail underflows to 0 (it used to divide 0 by 0)."""
    from proofs_check.claims import prop_b8

    lam = [[1.0, 0.0, 0.0], [0.017986209962091555, 0.9820137900379085, 0.0],
           [0.2689414213699951, 0.0, 0.7310585786300049]]
    outcome = prop_b8.evaluate(lam)
    assert outcome.holds and outcome.assumptions_met
    assert "measured 0.9" in outcome.note  # at most ρ = 0.991, faster than it (row 3 skips token 2)


def test_each_documented_exit_status(tmp_path, monkeypatch, capsys):
    """The help's exit statuses, each produced: 0 no violation / mutant refuted, 1 a violation /
    mutant not refuted, 2 bad arguments (--replay's 1 and 2 are tested above)."""
    from proofs_check import runner

    prop_b4, wrong = CLAIMS["prop_b4"], "the ½ put back into δ"
    assert main(["prop_b4", "--examples", "5"]) == 0
    assert main(["--mutant", "prop_b4", wrong, "--examples", "5"]) == 0
    assert "mutant refuted" in capsys.readouterr().out
    monkeypatch.setitem(prop_b4.MUTANTS, "same as the claim", lambda i: prop_b4.evaluate(i))
    assert main(["--mutant", "prop_b4", "same as the claim", "--examples", "5"]) == 1
    assert "mutant NOT refuted" in capsys.readouterr().out
    monkeypatch.setattr(prop_b4, "evaluate", prop_b4.MUTANTS[wrong])
    assert main(["prop_b4", "--examples", "5", "--counterexamples", str(tmp_path)]) == 1
    assert "VIOLATIONS FOUND" in capsys.readouterr().out
    assert main(["prop_b4", "--examples", "0"]) == 2
    assert runner.__doc__.count("Exit status: 0") == 1


def test_squash_sim_check_passes_proofs_checks_exit_status_through(tmp_path, monkeypatch):
    """`squash-sim --help` documents 1 for a violation found by `check`."""
    from squash_sim.cli import main as squash_sim

    prop_b4 = CLAIMS["prop_b4"]
    assert squash_sim(["check", "prop_b4", "--examples", "5"]) == 0
    monkeypatch.setattr(prop_b4, "evaluate", prop_b4.MUTANTS["the ½ put back into δ"])
    assert squash_sim(["check", "prop_b4", "--examples", "5", "--counterexamples",
                       str(tmp_path)]) == 1
