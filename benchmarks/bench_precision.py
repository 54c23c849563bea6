"""Simulated-precision benchmarks (issue 17). Every figure is a ratio to something measured in the
same run, on the same machine:

  1. a sequential-accumulation matmul in a simulated format (squash_sim.accumulate, jitted) over
     the loop a user would otherwise write: NumPy + ml_dtypes, one rounded product and one rounded
     addition per k, in the same order. The bits are checked identical before timing. bf16 (the
     integer-addition rounder) at 128 × 1024 × 128 and at a model-sized 512 × 1024 × 512, then fp16
     and fp8 (the float-arithmetic rounder);
  2. the rounding's share of that matmul: the same scan with fp32 as the format (round_to is then
     the identity) against bf16. Every accumulation model rounds the same products and performs at
     least as many rounded additions, so this share bounds how much faster any reordering can be
     on this machine;
  3. forward passes of the "tiny" preset at n = 4,096 under bf16-pure with pairwise and blocked
     accumulation, over the same forward with sequential accumulation (bf16-pure).

    python benchmarks/bench_precision.py            # everything
    python benchmarks/bench_precision.py --quick    # smaller sizes, for a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_core import best_of  # noqa: E402  (one timing helper for every benchmark)


def numpy_ordered_matmul(a, b, dtype):
    """acc ← fmt(acc + fmt(a_k · b_k)) for k = 0..K−1 with ml_dtypes casts: the baseline."""
    acc = np.zeros((a.shape[0], b.shape[1]), np.float32)
    for k in range(a.shape[1]):
        product = (a[:, k, None] * b[None, k, :]).astype(dtype).astype(np.float32)
        acc = (acc + product).astype(dtype).astype(np.float32)
    return acc


def matmul_vs_numpy(m: int, k: int, n: int, repeats: int, fmt_name: str = "bf16") -> dict:
    import jax
    import jax.numpy as jnp
    import ml_dtypes

    from squash_sim import floats
    from squash_sim.accumulate import accumulated_einsum

    dtype = {"bf16": ml_dtypes.bfloat16, "fp16": np.float16,
             "fp8_e4m3fn": ml_dtypes.float8_e4m3fn, "fp8_e5m2": ml_dtypes.float8_e5m2}[fmt_name]
    fmt = floats.get(fmt_name)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k)).astype(dtype).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(dtype).astype(np.float32)
    simulated = jax.jit(lambda a, b: accumulated_einsum("mk,kn->mn", a, b, fmt))
    a_j, b_j = jnp.asarray(a), jnp.asarray(b)
    ours = np.asarray(simulated(a_j, b_j))
    theirs = numpy_ordered_matmul(a, b, dtype)
    identical = bool(np.array_equal(ours.view(np.uint32), theirs.view(np.uint32)))
    if not identical:
        sys.exit(f"ordered {fmt_name} matmul: squash_sim and the NumPy loop differ in bits")
    t_ours = best_of(lambda: simulated(a_j, b_j).block_until_ready(), repeats)
    t_numpy = best_of(lambda: numpy_ordered_matmul(a, b, dtype), max(3, repeats // 2))
    return {"shape": [m, k, n], "format": fmt_name, "bits_identical": identical,
            "squash_sim_s": t_ours, "numpy_ml_dtypes_s": t_numpy, "speedup": t_numpy / t_ours}


def rounding_share(m: int, k: int, n: int, repeats: int) -> dict:
    """How much of the sequential bf16 matmul is the rounding itself (module docstring, item 2):
    the same scan in fp32, where round_to is the identity (same loop, loads, multiplies and adds,
    no rounding), timed in the same run. Every accumulation model rounds each of the m·K·n
    products once and performs m·(K−1)·n rounded additions (Kahan: four per term), so with the
    rounding taking t_bf16 − t_fp32, no reordering can beat t_bf16 / (t_bf16 − t_fp32)."""
    import jax
    import jax.numpy as jnp
    import ml_dtypes

    from squash_sim import floats
    from squash_sim.accumulate import accumulated_einsum

    rng = np.random.default_rng(1)
    a = jnp.asarray(rng.standard_normal((m, k)).astype(ml_dtypes.bfloat16).astype(np.float32))
    b = jnp.asarray(rng.standard_normal((k, n)).astype(ml_dtypes.bfloat16).astype(np.float32))
    timed = {}
    for fmt in (floats.BF16, floats.FP32):
        run = jax.jit(lambda a, b, fmt=fmt: accumulated_einsum("mk,kn->mn", a, b, fmt))
        timed[str(fmt)] = best_of(lambda run=run: run(a, b).block_until_ready(), repeats)
    rounding = max(timed["bf16"] - timed["fp32"], 1e-12)
    terms = m * k * n
    return {"shape": [m, k, n], "bf16_s": timed["bf16"], "fp32_same_loop_s": timed["fp32"],
            "bf16_ns_per_term": timed["bf16"] / terms * 1e9,
            "rounding_share": rounding / timed["bf16"],
            "max_speedup_of_any_order": timed["bf16"] / rounding}


def forwards(n: int, policies, repeats: int) -> dict:
    import jax

    from squash_sim import presets
    from squash_sim.model import forward, init_params

    config = presets.get("tiny")
    params = init_params(config, jax.random.key(0))
    tokens = np.random.default_rng(0).integers(0, config.vocab_size, (1, n)).astype(np.int32)
    out = {}
    for policy in policies:
        start = time.perf_counter()
        forward(params, tokens, config, policy, logits="none").final.block_until_ready()
        first = time.perf_counter() - start
        seconds = best_of(
            lambda p=policy: forward(params, tokens, config, p, logits="none").final
            .block_until_ready(), repeats)
        out[policy] = {"first_call_s": first, "s": seconds}
        print(f"  tiny n={n} {policy}: {seconds:.2f} s (first call {first:.1f} s)", flush=True)
    base = out[policies[0]]["s"]
    for policy in policies:
        out[policy]["speedup_over_sequential"] = base / out[policy]["s"]
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    import jax

    import squash_sim  # noqa: F401  (the XLA flag first)

    quick = args.quick
    results = {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                           "cpus": os.cpu_count(), "jax": jax.__version__,
                           "device": str(jax.devices()[0])}}
    shape = (32, 256, 32) if quick else (128, 1024, 128)
    print(f"1. sequential matmul {shape} vs NumPy + ml_dtypes loop, per format", flush=True)
    results["matmul"] = matmul_vs_numpy(*shape, repeats=3 if quick else 5)
    print(f"   {json.dumps(results['matmul'])}", flush=True)
    # A model-sized tile too (a 512-token block through a 1,024-wide projection): XLA spreads an
    # output this large over both cores, the 128 × 128 one only partly; the NumPy loop uses one.
    large = (64, 256, 64) if quick else (512, 1024, 512)
    results["matmul_large"] = matmul_vs_numpy(*large, repeats=3)
    print(f"   {json.dumps(results['matmul_large'])}", flush=True)
    results["matmul_other_formats"] = []
    for name in ("fp16", "fp8_e4m3fn", "fp8_e5m2"):  # the rounder's float-arithmetic path
        results["matmul_other_formats"].append(
            matmul_vs_numpy(*shape, repeats=3 if quick else 5, fmt_name=name))
        print(f"   {json.dumps(results['matmul_other_formats'][-1])}", flush=True)
    print(f"2. the rounding's share of the same matmul {shape}", flush=True)
    results["rounding_share"] = rounding_share(*shape, repeats=3 if quick else 5)
    print(f"   {json.dumps(results['rounding_share'])}", flush=True)
    n = 512 if quick else 4096
    print(f"3. tiny forward at n = {n}", flush=True)
    results["forward"] = forwards(n, ["bf16-pure", "bf16-pure+pairwise", "bf16-pure+block32",
                                      "bf16-pure+block128"], repeats=1 if not quick else 2)
    print(json.dumps(results, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
