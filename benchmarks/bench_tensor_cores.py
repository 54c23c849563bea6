"""Tensor-core policies (issue 27): the cost of a forward whose every contraction is the validated
MMA model, against the same model's sequential `-pure` forward, in the same run.

Target: a tc forward costs at most 3× the `-pure` forward. Both are jitted and warm (best of a
few runs after a warm-up); the machine's load average is recorded beside the numbers. On a
shared machine the CPU time of the process (`cpu_seconds`, best of the same runs) is the steadier
figure: wall time there also counts the time other processes hold the cores.

    python benchmarks/bench_tensor_cores.py                 # tiny preset, 256 tokens
    python benchmarks/bench_tensor_cores.py --tokens 64     # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_core import best_of  # noqa: E402  (one timing helper for every benchmark)

POLICIES = ("bf16-pure", "bf16-pure+tc:h100", "bf16+tc:h100", "fp8_e4m3fn+tc:h100", "bf16",
            "fp8_e4m3fn-pure", "fp8_e4m3fn-pure+tc:h100", "fp8_e4m3fn+tc:b200")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import jax
    import jax.numpy as jnp

    from squash_sim import presets
    from squash_sim.model import forward, init_params

    config = presets.get(args.preset)
    params = init_params(config, jax.random.key(0))
    ids = jnp.arange(args.tokens) % config.vocab_size
    seconds, cpu_seconds = {}, {}
    for policy in POLICIES:
        cpu = []

        def run(policy=policy, cpu=cpu):
            start = time.process_time()
            forward(params, ids, config, policy, logits="last").logits.block_until_ready()
            cpu.append(time.process_time() - start)
        seconds[policy] = best_of(run, args.repeats)
        cpu_seconds[policy] = min(cpu[1:])  # the warm-up call compiles
        print(f"{policy:24s} {seconds[policy] * 1e3:9.1f} ms  cpu {cpu_seconds[policy] * 1e3:9.1f} ms",
              flush=True)
    ratio = seconds["bf16-pure+tc:h100"] / seconds["bf16-pure"]
    ratio_storage = seconds["bf16+tc:h100"] / seconds["bf16-pure"]
    fp8 = ("fp8_e4m3fn+tc:h100", "fp8_e4m3fn-pure+tc:h100", "fp8_e4m3fn+tc:b200")
    cpu_ratios = {p: cpu_seconds[p] / cpu_seconds[p.split("+")[0].removesuffix("-pure") + "-pure"]
                  for p in POLICIES if "+tc" in p}
    result = dict(preset=args.preset, tokens=args.tokens, seconds=seconds, cpu_seconds=cpu_seconds,
                  tc_over_pure=ratio, tc_storage_over_pure=ratio_storage,
                  fp8_over_fp8_pure={p: seconds[p] / seconds["fp8_e4m3fn-pure"] for p in fp8},
                  cpu_tc_over_own_pure=cpu_ratios,
                  load_average=os.getloadavg(), cpus=os.cpu_count())
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
