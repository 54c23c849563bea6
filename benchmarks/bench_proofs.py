"""proofs_check benchmark (issue: proofs_check): the default run's wall time from a cold start, and
checked instances per second per claim after warm-up (a second run in the same process, when the
compiled graphs are cached).

    python benchmarks/bench_proofs.py
"""

from __future__ import annotations

import subprocess
import sys
import time


def main() -> None:
    start = time.perf_counter()
    cold = subprocess.run([sys.executable, "-m", "proofs_check"], capture_output=True, text=True)
    cold_seconds = time.perf_counter() - start
    print(f"python -m proofs_check, cold start, default budget: {cold_seconds:.1f} s wall "
          f"(target ≤ 60 s), exit {cold.returncode}")
    print(cold.stdout.strip().splitlines()[-1])

    import squash_sim  # noqa: F401  (XLA flags before JAX starts)
    from proofs_check.claims import CLAIMS
    from proofs_check.runner import run_claim

    print(f"\n{'claim':<20} {'cold s':>8} {'warm s':>8} {'instances':>10} {'warm inst/s':>12}")
    for name, module in CLAIMS.items():
        first = run_claim(module)
        if hasattr(module, "COMPUTE"):
            module.COMPUTE.clear()  # warm = compiled, not cached results
        second = run_claim(module)
        print(f"{name:<20} {first.seconds:>8.2f} {second.seconds:>8.2f} {second.instances:>10} "
              f"{second.instances / second.seconds:>12.1f}")
    batched_vs_single()


def batched_vs_single(count: int = 256) -> None:
    """Instances of one shape: one vmapped, sharded batch against one instance at a time (both
    compiled first), for the two claims whose evaluation is a model computation."""
    from proofs_check.claims import theorem_b3, theorem_b5

    print(f"\n{count} instances of one shape, after compiling: batched vs one at a time")
    for module, base in ((theorem_b3, {"n": 34, "d": 4, "positional": "none", "norm": "theory",
                                       "beta": 0.5, "scale": 1.0}),
                         (theorem_b5, {"n": 10, "d": 3, "layers": 3, "beta1": 0.5,
                                       "beta2": 2.0, "beta3": 0.5})):
        instances = [{**base, "seed": seed} for seed in range(count)]
        module.COMPUTE.batch(instances[:2]), module.COMPUTE.batch(instances[:1])  # compile
        module.COMPUTE.batch(instances[:count])
        start = time.perf_counter()
        module.COMPUTE.batch(instances)
        batched = time.perf_counter() - start
        start = time.perf_counter()
        for inst in instances:
            module.COMPUTE.batch([inst])
        single = time.perf_counter() - start
        print(f"{module.NAME:<12} batched {count / batched:8.0f} inst/s   one at a time "
              f"{count / single:8.0f} inst/s   ratio {single / batched:.1f}×")


if __name__ == "__main__":
    main()
