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
        second = run_claim(module)
        print(f"{name:<20} {first.seconds:>8.2f} {second.seconds:>8.2f} {second.instances:>10} "
              f"{second.instances / second.seconds:>12.1f}")


if __name__ == "__main__":
    main()
