"""Make XLA:CPU round every float32 operation once, so jit and eager agree bit for bit.

Measured (jax 0.10.2, x86-64): under jit, XLA:CPU lets LLVM contract a*b + c into one fused
multiply-add; run op by op the product is rounded first. 23 % of a*b + c results then differ in the
last bit between `jax.jit(f)` and `f` (and gelu, rsqrt(x² + ε), RoPE, norms with them).
`optimization_barrier`, `reduce_precision` and bitcast round trips do not stop it; capping LLVM's
instruction set below FMA3 does, and leaves matmul speed unchanged (Eigen's kernels are prebuilt).

So, before JAX starts its CPU backend, squash_sim adds `--xla_cpu_max_isa=AVX` to XLA_FLAGS unless
the user already chose a max ISA or set SQUASH_SIM_ALLOW_FMA=1. This is process-wide: the docs say
so (docs/explanation/numerics.md). If the backend is already running, we warn that jit/eager
bit-equality is not promised.

Accelerators. `xla_cpu_max_isa` is one of XLA's shared DebugOptions (xla/debug_options_flags.cc),
parsed by every backend and read only by the XLA:CPU LLVM code generator, so on a GPU or TPU run it
changes nothing on the device: only host-side CPU computations are compiled without FMA. (No GPU
was available when this was written: that is from XLA's source, not a measurement.)

Compilation cache. `enable_compilation_cache()` turns on JAX's persistent compilation cache in
the user's cache directory ($XDG_CACHE_HOME or ~/.cache, %LOCALAPPDATA% on Windows, then
squash_sim/jax), so a second `squash-sim` or `python -m proofs_check` run loads its executables
instead of compiling them. Only those entry points call it — importing squash_sim never touches a
user's JAX configuration — and SQUASH_SIM_COMPILE_CACHE=0 turns it off (any other value is a
directory to use instead). JAX keys entries by the computation, the jaxlib version, the backend and
XLA_FLAGS, so the FMA choice above cannot leak between runs.
"""

from __future__ import annotations

import os
import warnings

FLAG = "--xla_cpu_max_isa=AVX"
CACHE_ENV = "SQUASH_SIM_COMPILE_CACHE"


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


def cache_dir() -> str | None:
    """Where the persistent compilation cache lives (None: turned off by SQUASH_SIM_COMPILE_CACHE=0)."""
    chosen = os.environ.get(CACHE_ENV, "").strip()
    if chosen in ("0", "off", "false", "no"):
        return None
    if chosen and chosen not in ("1", "on", "true", "yes"):
        return chosen
    if os.name == "nt" and os.environ.get("LOCALAPPDATA"):
        root = os.environ["LOCALAPPDATA"]
    else:
        root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "squash_sim", "jax")


def enable_compilation_cache() -> str | None:
    """Turn on JAX's persistent compilation cache for this process (entry points only; see the
    module docstring). → the directory, or None when turned off or impossible."""
    directory = cache_dir()
    if directory is None:
        return None
    try:
        os.makedirs(directory, exist_ok=True)
        import jax

        jax.config.update("jax_compilation_cache_dir", directory)
        # squash_sim's programs are many and small: cache every one, however quick to compile.
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    except (OSError, AttributeError, ValueError) as error:  # a read-only home, an older JAX
        warnings.warn(f"squash_sim: compilation cache not enabled ({error})", stacklevel=2)
        return None
    return directory

