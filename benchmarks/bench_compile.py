"""Compile time of the layer stack (issue 26): the scanned forward against the unrolled reference.

Each figure is one fresh Python process with no persistent compilation cache (so nothing is
loaded from disk), timing `forward`'s first call (trace + lower + compile + run) and its second
(run only); compile ≈ first − second. The scanned and unrolled runs alternate, so a shared
machine's load falls on both alike: read the ratios, measured in one run.

    python benchmarks/bench_compile.py [--depth] [--smollm2] [--gemma] [--repeats 1]

--depth     tiny preset (d 64) at 2 and 32 layers, fp32 and bf16-pure, 16 tokens:
            compile(32 layers) ÷ compile(2 layers), target ≤ 1.5 with the scan
--smollm2   SmolLM2-135M bf16 cold start: import + load + compile + first forward at 256 tokens
            (target ≤ 15 s on a quiet 2-core machine), and the warm forward, scanned and unrolled
--gemma     Gemma 3 270M fp32 forward at 256 tokens: compile and warm forward, scan and unrolled
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, sys, time
start = time.perf_counter()
import numpy as np
import squash_sim  # XLA flags before JAX starts
import jax
from squash_sim.model import forward, init_params
kind, precision, layers, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
scan = sys.argv[5] == "1"
if kind == "tiny":
    from squash_sim import presets
    config = presets.get("tiny").replace(n_layers=layers)
    params = init_params(config, jax.random.key(0))
    tokens = np.arange(n) % config.vocab_size
    run = lambda: forward(params, tokens, config, precision, scan_layers=scan)
else:
    from squash_sim.models import load
    model = load(kind)
    tokens = np.arange(n) % 1000 + 100
    run = lambda: model.forward(tokens, precision, scan_layers=scan)
loaded = time.perf_counter()
run().final.block_until_ready()
first = time.perf_counter()
times = []
for _ in range(3):
    t = time.perf_counter(); run().final.block_until_ready(); times.append(time.perf_counter() - t)
warm = min(times)
print(json.dumps({"import_load_s": loaded - start, "first_call_s": first - loaded,
                  "cold_start_s": first - start, "warm_s": warm,
                  "compile_s": first - loaded - warm}))
"""


def child(kind: str, precision: str, layers: int, n: int, scan: bool) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SQUASH_SIM_COMPILE_CACHE": "0"}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    out = subprocess.run([sys.executable, "-c", CHILD, kind, precision, str(layers), str(n),
                          "1" if scan else "0"], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def row(label: str, kind: str, precision: str, layers: int, n: int, repeats: int) -> dict:
    result = {}
    for scan in (True, False) * repeats:
        key = "scan" if scan else "unrolled"
        r = child(kind, precision, layers, n, scan)
        best = result.get(key)
        if best is None or r["compile_s"] < best["compile_s"]:
            result[key] = r
    s, u = result["scan"], result["unrolled"]
    print(f"{label:34s} compile scan {s['compile_s']:6.2f} s  unrolled {u['compile_s']:6.2f} s  "
          f"| cold start scan {s['cold_start_s']:6.2f} s  unrolled {u['cold_start_s']:6.2f} s  "
          f"| warm forward scan {s['warm_s'] * 1e3:8.1f} ms  unrolled {u['warm_s'] * 1e3:8.1f} ms  "
          f"(load {load_average()})", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", action="store_true")
    parser.add_argument("--smollm2", action="store_true")
    parser.add_argument("--gemma", action="store_true")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    if not (args.depth or args.smollm2 or args.gemma):
        args.depth = True
    print(f"load average at start: {load_average()} ({os.cpu_count()} CPUs)")
    results = {}
    if args.depth:
        for precision in ("fp32", "bf16-pure"):
            by_depth = {layers: row(f"tiny, {layers} layers, {precision}", "tiny", precision,
                                    layers, 16, args.repeats) for layers in (2, 32)}
            for key in ("scan", "unrolled"):
                ratio = by_depth[32][key]["compile_s"] / by_depth[2][key]["compile_s"]
                print(f"  compile 32 ÷ 2 layers, {precision}, {key}: {ratio:.2f}"
                      + ("  (target ≤ 1.5)" if key == "scan" else ""))
            results[f"tiny-{precision}"] = by_depth
    if args.smollm2:
        results["smollm2-bf16"] = row("SmolLM2-135M bf16, 256 tokens", "smollm2-135m", "bf16", 0,
                                      256, args.repeats)
        print("  cold start target ≤ 15 s on a quiet 2-core machine")
    if args.gemma:
        results["gemma-fp32"] = row("Gemma 3 270M fp32, 256 tokens", "gemma3-270m", "fp32", 0,
                                    256, args.repeats)
    results["load_average_end"] = load_average()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
