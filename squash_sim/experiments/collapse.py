"""The collapse experiment (theory.md, Theorem B.3): distances between the last-token outputs of
prompt + 1^n and prompt + 1^(n+1) for n = 1..N, from one forward pass. The sequences and the
measurement live in squash_sim.analysis.collapse (shared with proofs_check and squash_sim.testing);
this module is the experiment's name for them, used by runs.py and the CLI.
"""

from __future__ import annotations

from squash_sim.analysis.collapse import (  # noqa: F401  (the experiment's public names)
    ONE_TOKEN,
    STATUSES,
    SYMBOL_TOKENS,
    CollapseResult,
    make_sequence,
    measure,
    reference_spacing,
    run,
)
