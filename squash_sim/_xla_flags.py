"""Make XLA:CPU round every float32 operation once, so jit and eager agree bit for bit.

Measured (jax 0.10.2, x86-64): under jit, XLA:CPU lets LLVM contract a*b + c into one fused
multiply-add; run op by op the product is rounded first. 23 % of a*b + c results then differ in the
last bit between `jax.jit(f)` and `f` (and gelu, rsqrt(x² + ε), RoPE, norms with them).
`optimization_barrier`, `reduce_precision` and bitcast round trips do not stop it; capping LLVM's
instruction set below FMA3 does, and leaves matmul speed unchanged (Eigen's kernels are prebuilt).

So, before JAX starts its CPU backend, squash_sim adds `--xla_cpu_max_isa=AVX` to XLA_FLAGS unless
the user already chose a max ISA or set SQUASH_SIM_ALLOW_FMA=1. This is process-wide: say so in the
README. If the backend is already running, we warn that jit/eager bit-equality is not promised.
"""

from __future__ import annotations

import os
import warnings

FLAG = "--xla_cpu_max_isa=AVX"


def _backend_started() -> bool:
    try:
        from jax._src import xla_bridge

        return bool(getattr(xla_bridge, "_backends", {}))
    except Exception:  # noqa: BLE001  (private API moved: assume not started, the flag is harmless)
        return False


def apply() -> bool:
    """Add the flag if we may; return whether float32 ops are rounded one at a time."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_max_isa" in flags:
        return "xla_cpu_max_isa=AVX " in flags + " " or "max_isa=SSE" in flags
    if os.environ.get("SQUASH_SIM_ALLOW_FMA") == "1":
        return False
    if _backend_started():
        warnings.warn("squash_sim was imported after JAX started its CPU backend: XLA may fuse "
                      "a*b + c into an FMA under jit, so jit and eager results can differ in the "
                      "last bit. Import squash_sim first, or set XLA_FLAGS=--xla_cpu_max_isa=AVX.",
                      stacklevel=3)
        return False
    os.environ["XLA_FLAGS"] = (flags + " " + FLAG).strip()
    return True


STRICT_FP32 = apply()
