"""The rounder's short paths: checked on every float32 input, then timed against the reference.

floats.round_to picks the shortest exact path for a format (floats module docstring):
`_round_carry` (bf16, tf32: one integer addition), `_round_magic` (fp16, fp8, fp6, fp4: float
arithmetic, 8 lanes wide) or the integer reference `_round_bits`. The tests compare the short
paths with the reference on every binade's tie neighbourhoods; this script does what a test suite
cannot afford:

  1. all 2^32 float32 bit patterns, per format: the short path's bits against `_round_bits`'
     (NaN payloads included), jitted, in chunks of 2^24;
  2. the cost of one rounding inside a jitted loop (x ← round(x·k + ½), 128 steps over 131,072
     elements: compute-bound, cache-resident), per path, over the same loop without rounding.

    python benchmarks/bench_rounder.py            # everything (about 2 minutes on 2 cores)
    python benchmarks/bench_rounder.py --quick    # 2^28 inputs per format, for a smoke run
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

FORMATS = ("bf16", "fp16", "fp8_e4m3fn", "fp8_e5m2", "fp8_e4m3fnuz", "fp4_e2m1fn")
CHUNK = 1 << 24


def exhaustive(fmt_name: str, chunks: int) -> dict:
    """Mismatching bit patterns between the chosen path and _round_bits over the first
    chunks·2^24 float32 patterns (256 chunks: all of them)."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    from squash_sim import floats

    fmt = floats.get(fmt_name)
    path = floats.rounder(floats._F32, fmt)

    @jax.jit
    def differing(start):
        bits = start + lax.iota(jnp.uint32, CHUNK)
        x = lax.bitcast_convert_type(bits, jnp.float32)
        got = lax.bitcast_convert_type(path(x), jnp.uint32)
        want = lax.bitcast_convert_type(floats._round_bits(x, fmt), jnp.uint32)
        return jnp.sum(got != want, dtype=jnp.uint32)

    start_time = time.perf_counter()
    bad = sum(int(differing(np.uint32(c * CHUNK))) for c in range(chunks))
    return {"format": fmt_name, "path": getattr(path, "func", path).__name__,
            "inputs": chunks * CHUNK, "differing": bad,
            "seconds": time.perf_counter() - start_time}


def rounding_cost(fmt_name: str, size: int, steps: int, repeats: int) -> dict:
    """ns per rounding of the chosen path and of _round_bits, inside the same jitted loop."""
    import functools

    import jax
    import jax.numpy as jnp
    from jax import lax

    from squash_sim import floats

    fmt = floats.get(fmt_name)
    x = jnp.asarray(np.random.default_rng(0).standard_normal(size).astype(np.float32))

    def loop(round_fn):
        @jax.jit
        def run(x):
            def step(c, _):
                return round_fn(c * np.float32(1.0009765625) + np.float32(0.5)), None
            return lax.scan(step, x, None, length=steps)[0]
        return lambda: run(x).block_until_ready()

    path = floats.rounder(floats._F32, fmt)
    timed = {name: best_of(loop(fn), repeats) for name, fn in [
        ("chosen", path), ("reference", functools.partial(floats._round_bits, fmt=fmt)),
        ("no_rounding", lambda c: c)]}
    per = size * steps
    return {"format": fmt_name, "path": getattr(path, "func", path).__name__,
            "chosen_ns": (timed["chosen"] - timed["no_rounding"]) / per * 1e9,
            "reference_ns": (timed["reference"] - timed["no_rounding"]) / per * 1e9,
            "loop_without_rounding_ns": timed["no_rounding"] / per * 1e9,
            "speedup_over_reference": (timed["reference"] - timed["no_rounding"])
            / max(timed["chosen"] - timed["no_rounding"], 1e-12)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    import jax

    import squash_sim  # noqa: F401  (the XLA flag first)

    results = {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                           "cpus": os.cpu_count(), "jax": jax.__version__,
                           "device": str(jax.devices()[0]),
                           "xla_flags": os.environ.get("XLA_FLAGS", "")},
               "exhaustive": [], "cost": []}
    chunks = 16 if args.quick else 256
    print(f"1. every float32 input ({chunks * CHUNK:,} per format): short path vs _round_bits",
          flush=True)
    for name in FORMATS:
        row = exhaustive(name, chunks)
        results["exhaustive"].append(row)
        print(f"   {name:14s} {row['path']:13s} differing {row['differing']} of "
              f"{row['inputs']:,} ({row['seconds']:.0f} s)", flush=True)
    print("2. ns per rounding inside a jitted loop (131,072 elements x 128 steps)", flush=True)
    for name in FORMATS:
        row = rounding_cost(name, 131072, 32 if args.quick else 128, 3 if args.quick else 7)
        results["cost"].append(row)
        print(f"   {name:14s} {row['path']:13s} {row['chosen_ns']:.3f} ns vs reference "
              f"{row['reference_ns']:.3f} ns: {row['speedup_over_reference']:.2f}x "
              f"(loop alone {row['loop_without_rounding_ns']:.3f} ns)", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    bad = [row["format"] for row in results["exhaustive"] if row["differing"]]
    if bad:
        sys.exit(f"short paths differ from the reference for {bad}")


if __name__ == "__main__":
    main()
