"""Experiment benchmarks (issue 4). Ratios measured in the same run, on the same machine:

  1. the collapse sweep to n = 65,536 on "tiny" in fp32: ONE forward pass (the prefix property),
     wall time end to end, against the naive sweep of one forward per n. The naive sweep would take
     hours, so it is extrapolated: warm forward times measured at four lengths, fitted by
     T(n) = a + b·n + c·n², summed over n = 1..N (compiles not even counted: a real naive sweep
     also compiles once per length).
  2. a sensitivity profile ‖∂y_n/∂v_i‖ for every i: jax.jacrev (d vector-Jacobian products,
     vmapped: d backward passes for all i) against the naive loop of one Jacobian per position i
     (n·d backward passes), both jitted and warm.

    python benchmarks/bench_experiments.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np

import squash_sim  # noqa: F401  (first: it sets XLA flags before JAX starts)
from benchmarks.bench_core import best_of


def collapse_sweep(max_len: int) -> dict:
    import jax

    from squash_sim import forward, init_params, presets
    from squash_sim.experiments import collapse

    config = presets.get("tiny")
    start = time.perf_counter()
    result = collapse.run(config, "fp32", max_len=max_len)  # cold: includes the compile
    one_pass = time.perf_counter() - start
    params = init_params(config, jax.random.key(0))
    lengths = [max_len // 64, max_len // 16, max_len // 4, max_len]
    times = []
    for n in lengths:
        tokens = np.ones(n, np.int32)
        times.append(best_of(lambda t=tokens: forward(params, t, config, logits="none")
                             .final.block_until_ready(), 2))
    coeffs = np.polyfit(lengths, times, 2)
    naive = float(np.polyval(coeffs, np.arange(1, max_len + 1)).clip(min=min(times) / 100).sum())
    return {"max_len": max_len, "one_pass_s": one_pass,
            "forward_s": dict(zip(lengths, times, strict=True)),
            "naive_extrapolated_s": naive, "speedup": naive / one_pass,
            "decay_exponent": result.decay_exponent()}


def sensitivity_profile(n: int) -> dict:
    import jax
    import jax.numpy as jnp

    from squash_sim.analysis import sensitivity
    from squash_sim.experiments.sensitivity import config_for
    from squash_sim.model import init_params, traceable_forward

    config = config_for("real", 2)
    with jax.enable_x64(True):
        params = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64),
                                        init_params(config, jax.random.key(0)))
        v0 = np.random.default_rng(0).standard_normal((n, config.d_model))
        vmapped = jax.jit(sensitivity.jacobian_program(config, "fp64", frozen=False))
        fast = best_of(lambda: vmapped(params, v0)[0].block_until_ready(), 3)
        run = traceable_forward(config, "fp64", logits="none")

        @jax.jit
        def one_position(params, v0, i):  # ∂y_n/∂v_i alone: d backward passes for one i
            def f(vi):
                return run(params, jax.lax.dynamic_update_slice(v0, vi[None], (i, i * 0))[None]
                           ).final[0, -1]
            return jax.jacrev(f)(v0[i])

        def naive():
            return [one_position(params, v0, jnp.int32(i)).block_until_ready() for i in range(n)]

        slow = best_of(naive, 2)
        blocks_fast = np.moveaxis(np.asarray(vmapped(params, v0)[0]), 1, 0)
        blocks_naive = np.stack(naive())
        agree = float(np.abs(blocks_fast - blocks_naive).max())
    return {"n": n, "d": config.d_model, "vmapped_vjps_s": fast, "per_position_loop_s": slow,
            "speedup": slow / fast, "max_abs_difference": agree}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    import jax

    print(f"machine: {platform.processor() or platform.machine()}, {jax.devices()}, "
          f"jax {jax.__version__}")
    sweep = collapse_sweep(8192 if args.quick else 65_536)
    print(f"collapse sweep to n = {sweep['max_len']} on tiny, fp32: one pass "
          f"{sweep['one_pass_s']:.1f} s "
          f"(target ≤ 60 s); naive one-forward-per-n extrapolated {sweep['naive_extrapolated_s']:.0f} s"
          f" → {sweep['speedup']:.0f}× ; forward times {sweep['forward_s']}")
    profile = sensitivity_profile(32 if args.quick else 64)
    print(f"sensitivity profile n = {profile['n']}, d = {profile['d']}: vmapped VJPs "
          f"{profile['vmapped_vjps_s'] * 1e3:.0f} ms vs per-position loop "
          f"{profile['per_position_loop_s'] * 1e3:.0f} ms → {profile['speedup']:.1f}× "
          f"(same blocks to {profile['max_abs_difference']:.1e})")
    print(json.dumps({"collapse_sweep": sweep, "sensitivity": profile}, default=str))


if __name__ == "__main__":
    main()
