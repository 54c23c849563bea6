"""One definition of collapse (docs/theory.md, "Collapse length, one definition"): the rule, its
independence from where a sweep stops, and every consumer reading it from the one function."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from squash_sim import init_params, presets
from squash_sim.analysis import collapse


def _rule(n, same):
    """The rule written out independently: the first n from which every pair to the end is
    identical, kept only if the sweep reaches twice it."""
    for i in range(len(n)):
        if all(same[i:]):
            return n[i] if 2 * n[i] <= n[-1] else None
    return None


@pytest.mark.parametrize("pattern", ["0011111111", "0000001111", "0101010111", "1111111111",
                                     "1111111110", "0000000000", "0110000001"])
def test_judge_follows_the_rule(pattern):
    same = np.array([c == "1" for c in pattern])
    n = np.arange(1, len(same) + 1)
    found = collapse.judge(n, same)
    assert found.n_star == _rule(list(n), list(same))
    assert found.first_identical == (int(n[same][0]) if same.any() else None)
    assert found.identical == same.sum() and found.share == same.mean()
    assert (found.reason == "") == (found.n_star is not None)
    star = _rule(list(n), list(same))  # the figures' lasting marks: n* through the end, or none
    lasting = np.array([star is not None and m >= star for m in n])
    assert (found.lasting_pairs(n) == lasting).all() and found.lasting == lasting.sum()


def test_an_unsound_pair_is_never_a_collapse():
    status = np.array(["bit-identical"] * 6 + ["overflow"] * 2)
    found = collapse.judge(np.arange(1, 9), np.ones(8, bool), status)
    assert found.n_star is None and found.status == "overflow" and "n = 7" in found.reason
    assert found.identical == 6  # the overflowed pairs' equal bits are not identity


def test_the_answer_does_not_move_with_the_sweep_length():
    """The issue's defect: bf16 on the Figure 10 model said n* = 1016 at --max-len 1024 and
    1985 at 2048. Same model and policy, two lengths: the same n* (or the same "not within"),
    the same first identical pair."""
    fig10 = presets.get("paper-fig10")
    cases = [(fig10, "bf16", (512, 1024)),  # the case: identical from 184, on and off
             (fig10, "fp8_e5m2-pure", (64, 128)),  # a -pure stall (bf16-pure: 398 at both
             #                                      1024 and 2048, measured; 10x the test time)
             (fig10.replace(sliding_window=64), "fp32", (256, 512))]  # remedies' window
    for config, policy, lengths in cases:
        short, long = (collapse.run(config, policy, max_len=n).collapse for n in lengths)
        assert (short.n_star, short.first_identical) == (long.n_star, long.first_identical), (
            policy, short, long)
        assert long.identical > 0  # each case has identical pairs: the rule has work to do
    assert long.n_star is None and long.intermittent == long.identical  # the window comes and goes


def test_every_consumer_reads_the_one_function(monkeypatch, tmp_path):
    """judge replaced by a stand-in whose answer no sweep gives: every command, experiment,
    claim and assertion must report the stand-in's n* and first identical pair. A consumer that
    computes n* its own way (a second definition) fails here."""
    from proofs_check.claims import corollary_b10
    from squash_sim import runs
    from squash_sim import testing as sst
    from squash_sim.experiments import accumulation_collapse, precision_collapse, real_collapse, remedies

    real_judge = collapse.judge

    def stand_in(n, identical, status=None):
        found = real_judge(n, identical, status)
        return collapse.Collapse(3, "", 2, found.identical, found.pairs, "sound", 3,
                                 found.max_n, 5)

    monkeypatch.setattr(collapse, "judge", stand_in)
    fig10, max_len = presets.get("paper-fig10"), 8
    [row] = precision_collapse.run(fig10, max_len=max_len, mantissa_bits=(7,), named=(),
                                   ladder=False)[:1]
    assert (row.n_star, row.first_identical) == (3, 2)
    [row] = accumulation_collapse.run(fig10, max_len=max_len, formats=("bf16",),
                                      models=("sequential",), sites=())
    assert (row.n_star, row.first_identical) == (3, 2)
    assert remedies.run(fig10, max_len=max_len)["plain"].collapse_length == 3
    runs.collapse(tmp_path, preset="paper-fig10", max_len=max_len, formats=())
    summary = json.loads((tmp_path / "collapse.json").read_text())["summary"]["none"]
    assert (summary["n_star"], summary["first_identical_n"]) == (3, 2)
    result, _, _ = corollary_b10.measure.__wrapped__("bf16-pure", 0, max_len)  # not cached
    assert result.collapse.n_star == 3
    params = init_params(fig10, jax.random.key(0))
    sst.assert_collapse_length_within(params, fig10, 3, 3, max_len=max_len)
    real = real_collapse.RealCollapseResult("count-ones", "fp32", np.arange(1, 9), np.ones(8),
                                            np.ones(8), np.zeros(8, bool), 9, 0.0)
    assert real.collapse.n_star == 3


def test_every_consumer_classifies_a_failed_run_with_the_one_function(monkeypatch):
    """collapse.failure replaced by a stand-in that fails every run: squash_sim.testing, the
    mechanism analysis and proofs_check's corollary_b10 must all refuse a verdict, saying so. A
    consumer that classifies failures its own way (a second definition) fails here."""
    import types

    from proofs_check.claims import corollary_b10
    from squash_sim import testing as sst
    from squash_sim.analysis import mechanism

    monkeypatch.setattr(collapse, "failure", lambda outcome: "non-finite")
    config = presets.get("paper-fig10").replace(d_model=8, n_heads=1, d_head=8, d_ff=8)
    with pytest.raises(AssertionError, match="the forward pass non-finite at n = 1"):
        sst.assert_no_collapse_before(init_params(config, jax.random.key(0)), config, n=4)
    found = types.SimpleNamespace(collapse=collapse.judge(np.arange(1, 5), np.ones(4, bool)))
    assert mechanism.explain(lambda p: found, "bf16").sentence() == "the run itself is non-finite"
    monkeypatch.setattr(corollary_b10, "_run", lambda policy, seed, max_len: found)
    corollary_b10.measure.cache_clear()
    try:
        assert corollary_b10.measure("bf16-pure", 0, 4) == (None, None, "non-finite")
    finally:
        corollary_b10.measure.cache_clear()
