"""One module per result of [G], named after it (theory.md §2).

Every claim module also gets `assert_holds(instance)`, for use in your own Hypothesis tests:

    @given(squash_sim.strategies.collapse_pairs())
    def test_my_model(instance): theorem_b3.assert_holds(instance)
"""

import functools

from proofs_check.claims import (
    base,
    corollary_b10,
    lemma_b1,
    lemma_b2,
    lemma_b6,
    lemma_b7,
    prop_b4,
    prop_b8,
    prop_b9,
    softmax_dispersion,
    theorem_b3,
    theorem_b3_decay,
    theorem_b5,
)

CLAIMS = {m.NAME: m for m in (softmax_dispersion, lemma_b1, lemma_b2, theorem_b3, theorem_b3_decay, prop_b4,
                               theorem_b5, lemma_b6, lemma_b7, prop_b8, prop_b9, corollary_b10)}

for _module in CLAIMS.values():
    _module.assert_holds = functools.partial(base.assert_holds, _module)
