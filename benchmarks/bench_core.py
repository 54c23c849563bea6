"""Core benchmarks (issue: squash_sim core). Every figure is a ratio to something measured in the
same run, on the same machine:

  1. forward FLOP/s of a 4-layer, d 256, 4-head model at n = 16,384 in fp32, over the FLOP/s of a
     dense fp32 matmul (2048³) measured just before;
  2. peak RSS of a forward of the "tiny" preset at n = 131,072, in a fresh subprocess;
  3. round_to throughput (elements/s) under jit, per format, and its speed-up over gfloat's
     round_ndarray on the same array.

    python benchmarks/bench_core.py            # everything (a few minutes on 2 cores)
    python benchmarks/bench_core.py --quick    # smaller sizes, for a smoke run
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time

import numpy as np


def best_of(fn, repeats: int) -> float:
    """Fastest wall time of fn() over `repeats` runs (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_flops(size: int = 2048) -> float:
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    mm = jax.jit(lambda a: a @ a)
    seconds = best_of(lambda: mm(a).block_until_ready(), 10)
    return 2 * size**3 / seconds


def forward_flops(n: int, repeats: int) -> dict:
    import jax
    import jax.numpy as jnp

    from squash_sim import ModelConfig, forward, init_params

    config = ModelConfig(d_model=256, n_layers=4, n_heads=4, d_ff=1024, positional="rope",
                         norm="rmsnorm", mlp="gelu")
    params = init_params(config, jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (n, config.d_model), jnp.float32)
    seconds = best_of(lambda: forward(params, x, config).final.block_until_ready(), repeats)
    d, f, L = config.d_model, config.d_ff, config.n_layers
    # Useful work: q, k, v, o projections 8nd², MLP 4ndf, causal attention (lower triangle only)
    # n²d for the scores and n²d for the weighted sum.
    flops = L * (8 * n * d * d + 4 * n * d * f + 2 * n * n * d)
    return {"n": n, "seconds": seconds, "flops": flops, "flop_per_s": flops / seconds}


def peak_rss_subprocess(n: int) -> dict:
    code = f"""
import resource, time, jax, numpy as np
from squash_sim import forward, init_params, presets
config = presets.get("tiny")
params = init_params(config, jax.random.key(0))
tokens = np.ones({n}, np.int32)
start = time.perf_counter()
trace = forward(params, tokens, config, logits="last")
trace.final.block_until_ready()
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds, rss_kb = done.stdout.split()
    return {"n": n, "seconds": float(seconds), "peak_rss_gb": int(rss_kb) / 2**20}


def round_to_throughput(size: int) -> list[dict]:
    import gfloat
    import gfloat.formats as gf
    import jax
    import jax.numpy as jnp

    from squash_sim import floats

    rows = []
    x_np = np.random.default_rng(0).standard_normal(size).astype(np.float32) * 100
    x = jnp.asarray(x_np)
    pairs = [(floats.BF16, gf.format_info_bfloat16), (floats.FP16, gf.format_info_binary16),
             (floats.FP8_E4M3FN, gf.format_info_ocp_e4m3), (floats.FP8_E5M2, gf.format_info_ocp_e5m2),
             (floats.FP4_E2M1FN, gf.format_info_ocp_e2m1), (floats.FloatFormat(5, 7), None)]
    for fmt, gfloat_fmt in pairs:
        rounder = jax.jit(lambda v, fmt=fmt: floats.round_to(v, fmt))
        seconds = best_of(lambda rounder=rounder: rounder(x).block_until_ready(), 10)
        row = {"format": str(fmt), "elements": size, "elements_per_s": size / seconds}
        if gfloat_fmt is not None:
            # gfloat needs sat=True for formats with neither inf nor NaN (fp4): that is what
            # round_to does for them too.
            sat = not fmt.has_nan
            gfloat_seconds = best_of(
                lambda g=gfloat_fmt, s=sat: gfloat.round_ndarray(g, x_np, sat=s), 2)
            ours = np.asarray(rounder(x))
            theirs = gfloat.round_ndarray(gfloat_fmt, x_np, sat=sat).astype(np.float32)
            finite = np.isfinite(theirs)
            row["gfloat_elements_per_s"] = size / gfloat_seconds
            row["speedup_over_gfloat"] = gfloat_seconds / seconds
            row["agrees_with_gfloat"] = bool(np.array_equal(ours[finite], theirs[finite]))
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    import squash_sim  # noqa: F401  (sets the XLA flags before JAX starts)

    n_forward = 4096 if args.quick else 16_384
    n_memory = 16_384 if args.quick else 131_072
    size = 1 << (20 if args.quick else 24)

    print(f"machine: {platform.processor() or platform.machine()}, "
          f"{__import__('os').cpu_count()} cores, python {platform.python_version()}")
    # The matmul rate is measured before and after the forward and the faster one is the
    # denominator: a VM's noisy neighbour must not flatter the ratio.
    matmul_before = matmul_flops()
    fwd = forward_flops(n_forward, 2)
    matmul = max(matmul_before, matmul_flops())
    print(f"dense fp32 matmul 2048³: {matmul / 1e9:.1f} GFLOP/s (best of before/after: "
          f"{matmul_before / 1e9:.1f} before)")
    ratio = fwd["flop_per_s"] / matmul
    print(f"forward 4 layers d 256, 4 heads, n {fwd['n']}: {fwd['seconds']:.2f} s, "
          f"{fwd['flop_per_s'] / 1e9:.1f} GFLOP/s = {ratio:.0%} of the matmul (target ≥ 50 %)")
    memory = peak_rss_subprocess(n_memory)
    print(f"tiny forward n {memory['n']}: {memory['seconds']:.1f} s, peak RSS "
          f"{memory['peak_rss_gb']:.2f} GB (target ≤ 4 GB)")
    rounding = round_to_throughput(size)
    for row in rounding:
        extra = ""
        if "speedup_over_gfloat" in row:
            extra = (f", gfloat {row['gfloat_elements_per_s'] / 1e6:.1f} M/s → "
                     f"{row['speedup_over_gfloat']:.0f}× (target ≥ 15×), bits agree: "
                     f"{row['agrees_with_gfloat']}")
        print(f"round_to {row['format']:>11}: {row['elements_per_s'] / 1e6:.0f} M elements/s "
              f"(target ≥ 300 M){extra}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"matmul_flop_per_s": matmul, "forward": fwd, "forward_over_matmul": ratio,
                       "memory": memory, "round_to": rounding,
                       "max_rss_self_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                       / 2**20}, f, indent=2)


if __name__ == "__main__":
    main()
