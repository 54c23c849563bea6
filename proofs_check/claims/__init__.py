"""One module per result of [G], named after it (theory.md §2)."""

from proofs_check.claims import (
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
    theorem_b5,
)

CLAIMS = {m.NAME: m for m in (softmax_dispersion, lemma_b1, lemma_b2, theorem_b3, prop_b4,
                               theorem_b5, lemma_b6, lemma_b7, prop_b8, prop_b9, corollary_b10)}
