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
--warm      steady state in one process: SmolLM2 bf16 and Gemma fp32 forwards at 256 tokens,
            scanned and unrolled calls alternating (4 each); the scan must not be slower
--core      bench_core's item 1 with the scan and without, in one process: the fp32 forward of a
            4-layer d 256 model at n = 16,384 over a same-run 2048³ matmul's FLOP/s (≥ 0.5)
--parity    the real models at full depth, 4 tokens, fp32 / bf16 / bf16-pure: whether the scanned
            forward gives the unrolled bits (the test suite checks fp32 only: the unrolled bf16
            programs alone compile for minutes)
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


def warm(name: str, precision: str, n: int = 256, repeats: int = 4) -> dict:
    import time

    import numpy as np

    import squash_sim  # noqa: F401  (XLA flags before JAX starts)
    from squash_sim.models import load

    model = load(name)
    ids = np.arange(n) % 1000 + 100
    times: dict = {True: [], False: []}
    for scan in (True, False):  # compile both first
        model.forward(ids, precision, scan_layers=scan).final.block_until_ready()
    for _ in range(repeats):
        for scan in (True, False):
            start = time.perf_counter()
            model.forward(ids, precision, scan_layers=scan).final.block_until_ready()
            times[scan].append(time.perf_counter() - start)
    s, u = min(times[True]), min(times[False])
    print(f"{name} {precision}, {n} tokens, warm forward (best of {repeats}, alternating): scan "
          f"{s:.3f} s, unrolled {u:.3f} s, scan/unrolled {s / u:.2f} (load {load_average()})",
          flush=True)
    return {"scan_s": times[True], "unrolled_s": times[False]}


def parity(name: str, n: int = 4) -> dict:
    import time

    import jax
    import numpy as np

    import squash_sim  # noqa: F401
    from squash_sim.models import load

    model = load(name)
    ids = np.arange(n) % 1000 + 100
    out = {}
    for precision in ("fp32", "bf16", "bf16-pure"):
        start = time.perf_counter()
        a = model.forward(ids, precision, logits="all")
        middle = time.perf_counter()
        b = model.forward(ids, precision, logits="all", scan_layers=False)
        end = time.perf_counter()
        same = all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in
                   zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True))
        diff = float(np.abs(np.asarray(a.logits) - np.asarray(b.logits)).max())
        print(f"{name} {precision}: same bits {same}, max |Δlogit| {diff:.3g} (first calls: scan "
              f"{middle - start:.1f} s, unrolled {end - middle:.1f} s; load {load_average()})",
              flush=True)
        out[precision] = {"same_bits": same, "max_logit_difference": diff}
    return out


def core(n: int = 16_384, repeats: int = 3) -> dict:
    import jax
    import jax.numpy as jnp

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_core import best_of, matmul_flops

    from squash_sim import ModelConfig, forward, init_params

    config = ModelConfig(d_model=256, n_layers=4, n_heads=4, d_ff=1024, positional="rope",
                         norm="rmsnorm", mlp="gelu")
    params = init_params(config, jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (n, config.d_model), jnp.float32)
    d, f, L = config.d_model, config.d_ff, config.n_layers
    flops = L * (8 * n * d * d + 4 * n * d * f + 2 * n * n * d)  # as bench_core counts them
    matmul = matmul_flops()
    out = {"matmul_flop_per_s": matmul}
    for scan in (True, False, True, False):
        seconds = best_of(lambda scan=scan: forward(params, x, config, scan_layers=scan)
                          .final.block_until_ready(), repeats)
        key = "scan" if scan else "unrolled"
        out[key] = min(out.get(key, seconds), seconds)
    for key in ("scan", "unrolled"):
        print(f"fp32 forward n = {n}, 4 × d256, {key}: {out[key]:.2f} s, "
              f"{flops / out[key] / matmul:.2f} of a same-run matmul's FLOP/s (target ≥ 0.5; "
              f"load {load_average()})", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", action="store_true")
    parser.add_argument("--smollm2", action="store_true")
    parser.add_argument("--gemma", action="store_true")
    parser.add_argument("--warm", action="store_true")
    parser.add_argument("--parity", action="store_true")
    parser.add_argument("--core", action="store_true")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    if args.warm or args.parity or args.core:
        os.environ["SQUASH_SIM_COMPILE_CACHE"] = "0"
        sys.path.insert(0, str(ROOT))
    if args.warm:
        print(json.dumps({"smollm2-bf16": warm("smollm2-135m", "bf16"),
                          "gemma-fp32": warm("gemma3-270m", "fp32")}))
    if args.parity:
        print(json.dumps({name: parity(name) for name in ("smollm2-135m", "gemma3-270m")}))
    if args.core:
        print(json.dumps(core()))
    if args.warm or args.parity or args.core:
        return
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
