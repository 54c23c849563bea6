"""The layer scan's parity check on the real models (issue 26), shared by test_gemma.py and
test_real_models.py: the scanned forward (jitted, forward's default) against the unrolled
reference, `forward(..., scan_layers=False)`'s Python loop over the layers, run op by op.

Why op by op. Jitted, the unrolled reference compiles the whole depth as one program: 1.5-3.5
minutes for the bf16 and bf16-pure programs on the loaded 2-core machine (docs/benchmarks.md),
far past the suite's budget. Run without the outer jit, every operation is dispatched alone, and
layers of the same shapes reuse each operation's compiled executable, so the whole depth costs
about what its first layer costs. Op by op is the reference semantics: squash_sim promises
jit = eager bits under its XLA flag (tests/test_model_citizen.py), and the scanned program
meets it here. Found while writing this: Gemma's *unrolled jitted* fp32 program does not (XLA
fuses a norm's reduction differently in the one long program: 0.04 in the hidden states, 1.4e-4
in the logits at the oracle's 12 tokens), so the op-by-op loop is also the stricter reference."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from squash_sim.model import traceable_forward


def unrolled_op_by_op(params, ids, config, precision, logits: str = "last"):
    """The unrolled reference on token ids (n,), without the outer jit. → batched Trace"""
    from squash_sim._xla_flags import STRICT_FP32

    if not STRICT_FP32:
        if os.environ.get("CI"):  # CI sets no XLA_FLAGS of its own: the flag must be in force
            pytest.fail("squash_sim's XLA flag is not in force, so op by op = jit is unchecked")
        pytest.skip("op by op = jit is promised with squash_sim's XLA flag only")
    run = traceable_forward(config, precision, logits=logits, scan_layers=False)
    return jax.block_until_ready(run(params, jnp.asarray(ids, jnp.int32)[None]))


def scanned_final(params, ids, config, precision):
    """The scanned program up to the final norm: forward's layer stack, jitted, without the
    logits and forward's overflow guard (a quarter of bf16-pure's cost on Gemma, measured). For
    the -pure policies only: there the logits are an ordered sum of `final`, the same function of
    it in any program. → unbatched Trace, logits None"""
    run = jax.jit(traceable_forward(config, precision, logits="none"))
    return jax.tree.map(lambda a: a[0], run(params, jnp.asarray(ids, jnp.int32)[None]))


def differing(scanned, unrolled) -> dict:
    """{output: number of elements whose bits differ} over hidden (every layer's stream), final and
    logits (when both have them); scanned unbatched, unrolled batched (b = 1). Empty: the same
    bits."""
    counts = {}
    for name in ("hidden", "final", "logits"):
        if getattr(scanned, name) is None is getattr(unrolled, name):
            continue
        a, b = np.asarray(getattr(scanned, name)), np.asarray(getattr(unrolled, name))[0]
        assert a.shape == b.shape and a.dtype == b.dtype == np.float32, name
        count = int(np.count_nonzero(a.view(np.uint32) != b.view(np.uint32)))
        if count:
            counts[name] = count
    return counts
