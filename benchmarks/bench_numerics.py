"""Cost of forward's numerics checks on the fp32 path (issue 12): the default guard (norms whose x²
overflowed, a non-finite output) and the full per-layer diagnostic (numerics=True), each against
no checks at all, measured in the same run, interleaved, warm, best of several.

    python benchmarks/bench_numerics.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np

import squash_sim  # noqa: F401  (first: it sets XLA flags before JAX starts)

CASES = (("tiny", 1024), ("tiny", 256), ("paper-fig10", 2048))


def measure(preset: str, n: int, repeats: int) -> dict:
    import jax

    from squash_sim import init_params, presets
    from squash_sim.model import _forward_jit
    from squash_sim.precision import get

    config = presets.get(preset)
    params = init_params(config, jax.random.key(0))
    rng = np.random.default_rng(0)
    inputs = (rng.integers(0, config.vocab_size, (1, n)).astype(np.int32) if config.takes_tokens
              else rng.standard_normal((1, n, config.d_model)).astype(np.float32))
    precision = get("fp32")

    def run(mode):
        trace = _forward_jit(params, inputs, config, precision, False, "none", 1024, 1024, None,
                             mode, False)
        jax.block_until_ready(trace)

    best = {mode: float("inf") for mode in ("off", "guard", "full")}
    for mode in best:
        run(mode)  # compile
    for _ in range(repeats):
        for mode in best:  # interleaved: machine load hits every mode alike
            start = time.perf_counter()
            run(mode)
            best[mode] = min(best[mode], time.perf_counter() - start)
    return {"preset": preset, "n": n, "off_ms": 1e3 * best["off"],
            "guard_ratio": best["guard"] / best["off"], "full_ratio": best["full"] / best["off"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    repeats = 5 if args.quick else 30
    rows = [measure(preset, n, repeats) for preset, n in CASES]
    print(json.dumps({"machine": platform.processor() or platform.machine(), "rows": rows},
                     indent=1))


if __name__ == "__main__":
    main()
