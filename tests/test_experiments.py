"""Issue 4's experiments against references they were not derived from: the paper's read-off
values (theory.md), an independently derived expectation (Figure 9), exact facts of float
arithmetic, and the proposition's own statement. Each check ships a mutant it must catch."""

from __future__ import annotations

import numpy as np
import pytest

from squash_sim import presets
from squash_sim.experiments import (
    attention_collapse,
    collapse,
    counting,
    precision_collapse,
    remedies,
    sensitivity,
    softmax_tv,
)

READOFFS = {5: 0.95, 100: 0.065, 1000: 0.007}  # theory.md, Figure 10 (paper's plot)


def _close_to_readoffs(result, readoffs, tolerance=0.15):
    return all(abs(result.mean[np.flatnonzero(result.n == n)[0]] / value - 1) <= tolerance
               for n, value in readoffs.items())


def test_figure10_reproduces_the_paper_readoffs_with_variance_1_over_d():
    nope = attention_collapse.run("none", (5, 100, 1000), seeds=5)
    assert _close_to_readoffs(nope, READOFFS)
    # Mutant: the text's literal N(0, 1) protocol does not give the plotted values (≈ 7× larger).
    literal = attention_collapse.run("none", (5, 100, 1000), seeds=5, variance="1")
    assert not _close_to_readoffs(literal, READOFFS)
    assert np.all(literal.mean > 3 * nope.mean)


def test_figure10_known_behaviour_nope_decays_like_1_over_n_alibi_plateaus():
    ns = attention_collapse.log_grid(4000)
    assert attention_collapse.run("none", ns, seeds=3).decay_exponent() == pytest.approx(-1, abs=0.1)
    alibi = attention_collapse.run("alibi", ns, seeds=3)
    assert alibi.decay_exponent() > -0.5  # logits unbounded below: the assumption fails
    # RoPE with unit-variance q, k decays more slowly, about n^-1/2 (theory.md)
    rope = attention_collapse.run("rope", ns, seeds=3, variance="1")
    assert -0.75 < rope.decay_exponent() < -0.3


def test_figure10_pair_equals_a_float64_numpy_reference():
    """y_n and y*_{n+1} written out in NumPy float64 for NoPE, independently of attention.dense."""
    n, d = 37, 64
    result = attention_collapse.run("none", (n,), seeds=2)
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((3, 2, attention_collapse._bucket(n + 1), d)).astype(np.float32)
    q, k, v = (a.astype(np.float64) / 8 for a in (q, k, v))
    for seed in range(2):
        scores = k[seed, :n] @ q[seed, n - 1] / 8
        w = np.exp(scores - scores.max())
        y = w @ v[seed, :n] / w.sum()
        s2 = np.append(scores, scores[-1])
        w2 = np.exp(s2 - s2.max())
        y2 = w2 @ np.vstack([v[seed, :n], v[seed, n - 1]]) / w2.sum()
        assert result.l1[seed, 0] == pytest.approx(np.abs(y - y2).sum(), rel=1e-4)


def test_figure9_mean_within_10_percent_of_the_derived_curve():
    result = softmax_tv.run(seeds=5)
    assert np.all(np.abs(result.mean / result.expected - 1) <= 0.10)
    # Mutant: a curve with the factor 2 dropped (δ̄/2) is not within 10 %.
    assert not np.all(np.abs(result.mean / (result.expected / 2) - 1) <= 0.10)


def test_softmax_tv_rejects_n_not_above_k():
    with pytest.raises(ValueError, match="must exceed k"):
        softmax_tv.run(ns=(100,))


def test_bf16_sum_of_ones_stalls_at_256_and_fp32_does_not():
    assert precision_collapse.sum_of_ones(1000, "bf16") == 256.0  # 2^8: 256 + 1 rounds to 256
    assert precision_collapse.sum_of_ones(1000, "fp32") == 1000.0
    assert precision_collapse.sum_of_ones(1000, "fp16") == 1000.0  # 11 bits hold 1000 exactly


def test_collapse_lengths_order_with_precision():
    lengths = {x.label: x for x in precision_collapse.run(max_len=512, mantissa_bits=(2, 3),
                                                            named=("fp8_e5m2", "fp8_e4m3fn"),
                                                            ladder=False)}
    e5m2, e4m3 = lengths["fp8_e5m2-pure"].n_star, lengths["fp8_e4m3fn-pure"].n_star
    assert e5m2 is not None and e4m3 is not None and e5m2 < e4m3  # fewer mantissa bits: sooner
    assert lengths["e8m2-pure"].n_star < lengths["e8m3-pure"].n_star
    # the estimate from the float32 curve grows with the mantissa too
    assert lengths["e8m2-pure"].n_eps < lengths["e8m3-pure"].n_eps


def test_frozen_sensitivity_is_bounded_and_a_wrong_bound_is_caught():
    import jax

    from squash_sim.analysis import sensitivity as analysis
    from squash_sim.model import init_params

    profile = sensitivity.profile("frozen", layers=2, n=12, seeds=2)
    assert profile.bound_holds
    # Mutant: drop the residual identity from Ā; the same measured Jacobian must violate it.
    config = sensitivity.config_for("frozen", 2)
    with jax.enable_x64(True):
        params = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64),
                                        init_params(config, jax.random.key(0)))
        v0 = np.random.default_rng(0).standard_normal((12, config.d_model))
        jacobian, lambdas = analysis.jacobian_program(config)(params, v0)
    norms = analysis.block_norms(jacobian)
    wrong = analysis.matrix_bound(lambdas, analysis.lipschitz(params), config.theory_beta1,
                                  config.theory_beta2, config.theory_beta3, residual=False)
    assert np.allclose(norms, profile.norms[0])
    assert np.any(norms > wrong)


def test_first_token_takes_over_with_depth_on_the_theorem_model():
    shares = [p.share[0] for p in sensitivity.depth_sweep("frozen", (1, 8), n=16, seeds=2)]
    assert shares[1] > 3 * shares[0] and shares[1] > 0.3


def test_counting_only_ratios_for_bidirectional_nope_controls_break_it():
    result = counting.run(1, 2, scales=(1, 2), seeds=1, layers=1)
    diffs = {label: d[:, 1:].max() for label, d in result.difference.items()}
    assert diffs["bidirectional, NoPE (Prop B.9)"] < 1e-12
    assert all(v > 1e-3 for k, v in diffs.items() if "Prop B.9" not in k)


def test_collapse_pattern_rows_are_the_ones():
    config = presets.get("paper-fig10")
    inputs, rows = collapse.make_sequence(config, 5, 2, 0, "111,")
    assert rows.tolist() == [2, 3, 4, 6, 7, 8]  # prompt 0,1; comma at 5
    plain = collapse.run(config, max_len=50, seed=1)
    same = collapse.run(config, max_len=50, seed=1, pattern="1")
    assert np.array_equal(plain.l1, same.l1)
    with pytest.raises(ValueError, match="pattern"):
        collapse.run(config, max_len=5, pattern="1x")


def test_remedies_measured_effects():
    runs = remedies.run(max_len=600)
    plain = runs["plain"].l1
    assert runs["commas every 3"].l1[-1] > 10 * plain[-1]  # separators slow the collapse
    window = runs[f"sliding window {remedies.WINDOW}"].l1
    assert window[200:].max() < 1e-5 < plain[200]  # the same window of ones: total collapse
    assert runs["absolute positions (sinusoidal)"].l1[-100:].min() > 1.0  # never collapses
    # bf16-pure's pairs turn identical (from n = 390; its lasting n* = 398 needs a sweep to 796)
    assert runs["bf16-pure (lower precision)"].collapse.first_identical is not None
    assert runs["plain"].collapse.first_identical is None


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="positional"):
        attention_collapse.run("spiral")
    with pytest.raises(ValueError, match="seeds"):
        attention_collapse.run("none", seeds=0)
    with pytest.raises(ValueError, match="setting"):
        sensitivity.profile("melted")
    with pytest.raises(ValueError, match="n0"):
        counting.run(0, 1)


# -- the report: verdicts, rendering, resuming ---------------------------------------------------

def test_verdict_words_follow_the_counts_and_non_finite_numbers_are_overflow():
    from squash_sim.report import VERDICTS, Verdict, decide, verdict_word

    assert decide(violations=0, assumption_failures=0, instances=5) == "holds"
    assert decide(violations=0, assumption_failures=3, instances=32) == \
        "holds, assumption not met on 3 of 32"
    assert decide(violations=1, assumption_failures=3, instances=32) == "violated"
    # Mutant: a verdict resting on an overflowed number must not read "holds".
    assert decide(violations=0, assumption_failures=0, instances=5, finite=False) == "overflow"
    assert all(verdict_word(w) in VERDICTS for w in ("holds", "holds, assumption not met on 1 of 2"))
    with pytest.raises(ValueError, match="unknown verdict"):
        Verdict("B.3", "s", "passes", "1")


def _section(tmp_path, key="demo", verdict="holds, assumption not met on 2 of 8"):
    from squash_sim import plotting, results
    from squash_sim.report import Section, Verdict

    figure, ax = plotting.plt.subplots()
    ax.plot([1, 2], [3, 4])
    png = results.write_figure(tmp_path / f"{key}.png", figure)
    plotting.plt.close(figure)
    csv = results.write_csv(tmp_path / f"{key}.csv", [{"n": 1, "l1": 0.5}])
    results.write_json(tmp_path / "counterexamples" / "demo.json", {"claim": "theorem_b3"})
    return Section(key, f"Section {key}", "theorem_b3", ["A paragraph.", "- a bullet"],
                   [{"n": 1, "l1": 0.5, "missing": None}], [png], [csv], 1.0,
                   [Verdict("Theorem B.3", "softmax(x)_n > softmax(x*)_{n+1} | bars", verdict,
                            "max LHS/RHS 2.08", theory="theorem_b3",
                            counterexample="counterexamples/demo.json")])


def test_report_opens_with_verdicts_contents_and_every_verdict_word_explained(tmp_path):
    import os
    import stat

    from squash_sim import report

    sections = [_section(tmp_path, "first"), _section(tmp_path, "second", "violated")]
    old = os.umask(0o022)
    try:
        md, page = report.write(sections, tmp_path, "Title", ["Preamble, see [theory](theory.md)."])
    finally:
        os.umask(old)
    html, text = page.read_text(), md.read_text()
    order = [html.index(s) for s in ("<h2>Verdicts</h2>", "What the verdicts mean",
                                     "<h2>Contents</h2>", "<h2>Section first</h2>")]
    assert order == sorted(order)  # verdicts first, then the glossary, contents, sections
    for word in report.VERDICTS:
        assert word in html and word in text
    assert 'href="#first"' in html and 'id="first"' in html  # contents link to the sections
    assert "softmax(x)_n &gt; softmax(x*)_{n+1} | bars" in html  # formula text is not markup
    assert "<em>" not in html.split("<h2>Contents</h2>")[0].split("What the verdicts")[0]
    assert "assumption not met on 2 of 8" in html and "v-violated" in html
    assert "counterexamples/demo.json" in html
    assert html.count("data:image/png;base64,") == 2 and "(theory.html#theorem_b3)" not in html
    assert 'href="theory.html#theorem_b3"' in html and "](theory.md#theorem_b3)" in text
    assert "None" not in text
    assert stat.S_IMODE(os.stat(page).st_mode) == 0o644  # readable by others under umask 022


def test_report_resumes_reuses_unchanged_sections_and_survives_a_killed_run(tmp_path, monkeypatch):
    from squash_sim import runs

    calls = []

    def fake(out, *, value: int = 1, fail: bool = False, formats=("png",), progress=None):
        calls.append(value)
        section = _section(out, "fake")
        if fail:  # a run killed in the middle of this section, after writing some files
            raise KeyboardInterrupt
        section.summary = [f"value {value}"]
        return section

    steps = [("figure9", "softmax_tv", {"seeds": 2}), ("fake", "fake", {"value": 1})]
    monkeypatch.setattr(runs, "fake", fake, raising=False)
    monkeypatch.setattr(runs, "report_steps", lambda *a, **k: [tuple(s) for s in steps])
    first = runs.report(tmp_path, size="smoke")[2]
    assert [s.reused for s in first] == [False, False] and calls == [1]
    figure9 = (tmp_path / "figure9.png").read_bytes()

    again = runs.report(tmp_path, size="smoke")[2]
    assert [s.reused for s in again] == [True, True] and calls == [1]
    assert "value 1" in (tmp_path / "report.md").read_text()

    steps[1] = ("fake", "fake", {"value": 2})  # changed input: only that section recomputes
    assert [s.reused for s in runs.report(tmp_path, size="smoke")[2]] == [True, False]
    assert calls == [1, 2] and "value 2" in (tmp_path / "report.md").read_text()

    steps[1] = ("fake", "fake", {"value": 3, "fail": True})
    with pytest.raises(KeyboardInterrupt):
        runs.report(tmp_path, size="smoke")
    assert (tmp_path / "figure9.png").read_bytes() == figure9  # nothing half-replaced
    assert "value 2" in (tmp_path / "report.md").read_text()
    steps[1] = ("fake", "fake", {"value": 2})
    assert [s.reused for s in runs.report(tmp_path, size="smoke")[2]] == [True, True]

    (tmp_path / "figure9.csv").write_text("damaged")  # a file that no longer matches its record
    assert [s.reused for s in runs.report(tmp_path, size="smoke")[2]] == [False, True]
    assert [s.reused for s in runs.report(tmp_path, size="smoke", fresh=True)[2]] == [False, False]
    assert not (tmp_path / ".staging").exists()


def test_claim_rows_say_when_instances_fail_the_assumptions(tmp_path):
    from squash_sim import runs

    row = {"module": "theorem_b3", "claim": "theorem_b3", "printed_variant": False,
           "instances": 32, "violations": 0, "assumption_failures": 12, "max_tightness": 2.078,
           "worst_margin": 0.4}
    verdict = runs._claim_verdict(row, tmp_path)
    assert verdict.verdict == "holds, assumption not met on 12 of 32"
    assert "Theorem B.3" in verdict.paper and verdict.theory == "theorem_b3"
    assert "LHS/RHS" not in verdict.key_number  # a ratio above 1 beside "holds" would mislead
    assert "LHS/RHS 0.5" in runs._claim_verdict(dict(row, max_tightness=0.5), tmp_path).key_number
    broken = dict(row, violations=1, counterexample={"outcome": {"lhs": float("inf"), "rhs": 1.0}})
    assert runs._claim_verdict(broken, tmp_path).verdict == "overflow"


def test_intervene_draws_its_k_sweep_and_attention_maps_draw_every_layer(tmp_path):
    import jax

    from squash_sim import plotting, runs
    from squash_sim.model import forward, init_params

    section = runs.intervene(tmp_path, kind="random", model="tiny", seeds=1)
    assert (tmp_path / "intervene_random_tiny.png").stat().st_size > 10_000
    assert (tmp_path / "intervene_random_tiny.csv").exists()
    assert len(section.table) == presets.get("tiny").n_layers + 1  # k = 0..L
    config = presets.get("tiny")
    params = init_params(config, jax.random.key(0))
    trace = forward(params, np.arange(6), config, return_attention=True)
    figure = plotting.attention_maps(trace)
    assert len([ax for ax in figure.axes if ax.get_title().startswith("layer")]) == config.n_layers
    with pytest.raises(ValueError, match="return_attention"):
        plotting.attention_maps(forward(params, np.arange(6), config))


def test_counting_answers_end_when_a_non_digit_follows_the_number():
    """real_tasks._ended: greedy decoding of the counting task stops once no later token can change
    any parsed answer (_number): a non-digit after the number, or first."""
    import types

    from squash_sim.experiments import real_tasks

    vocab = {1: " ", 2: "1", 3: "4", 4: "\n", 5: "x", 6: " 7"}
    model = types.SimpleNamespace(tokenizer=types.SimpleNamespace(
        decode=lambda ids: "".join(vocab[i] for i in ids)))
    assert real_tasks._ended(model, [[6, 4], [2, 3, 4], [5]])  # " 7\n", "14\n", "x"
    for open_row in ([1], [6], [2, 3], [1, 2]):  # " ", " 7", "14", " 1": the number may go on
        assert not real_tasks._ended(model, [[6, 4], open_row])
    assert [real_tasks._number(model, row) for row in ([6, 4], [2, 3, 4], [5])] == [7, 14, None]
