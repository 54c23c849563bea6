"""Compile notices: no user command compiles silently for minutes.

    with compiling.notice("gemma3-270m bf16-pure, 2,048 tokens", compiling.estimate(config, p)):
        trace = forward(...)

Before: when the measured estimate exceeds THRESHOLD_S, one stderr line says what is compiling
and for about how long. After: when it was announced, or compiling took longer than THRESHOLD_S
anyway, one line says how long the compiler took (XLA's own backend-compile events, summed) and
whether the persistent compilation cache keeps it for the next run. `LoadedModel.forward` calls it
on each program's first call in a process; the CLI may wrap any other long step in it.
"""

from __future__ import annotations

import contextlib
import sys
import threading

THRESHOLD_S = 10.0
_EVENT = "/jax/core/compile/backend_compile_duration"  # jax._src.dispatch.BACKEND_COMPILE_EVENT

# First-call seconds of the scanned forward (trace + compile + run), measured 2026-12-06 on the
# 2-core machine while it was shared (load 6-9; a quiet one is faster) at 4-256 tokens,
# benchmarks/bench_compile.py and docs/benchmarks.md: "ordered" is a policy whose sums run in a
# defined order (the -pure presets, accumulation models), whose loops compile slowest. Gemma
# ordered: 7.3 s idle (bf16+block128/fp32 at 2,060 tokens, XLA's compile events) to 16 s shared;
# 20 s keeps the notice within 3x of either.
ESTIMATES_S = {
    ("smollm2-135m", False): 8.0, ("smollm2-135m", True): 22.0,
    ("gemma3-270m", False): 12.0, ("gemma3-270m", True): 20.0,
}


def estimate(config, precision) -> float | None:
    """Measured compile seconds of `config`'s forward under `precision` (a Precision), or None
    when nothing was measured for that model."""
    ordered = bool(precision.ordered_matmuls or precision.ordered_softmax)
    return ESTIMATES_S.get((config.name, ordered))


def _cache_on() -> bool:
    import jax

    return bool(jax.config.jax_compilation_cache_dir)


# One listener for the process, registered on the first notice and never again (XLA's events
# reach every registered listener, in every thread); it hands each compile to the notices open
# in the thread that compiled, innermost and outer alike, so a notice in another thread never
# counts it and no listener is left behind or added twice.
_OPEN = threading.local()  # .notices: this thread's open notices' lists of compile seconds
_LISTENING = threading.Lock()
_listening = False


def _listener(event: str, duration: float, **_) -> None:
    if event == _EVENT:
        for seconds in getattr(_OPEN, "notices", ()):
            seconds.append(duration)


def _listen() -> None:
    global _listening
    import jax

    with _LISTENING:
        if not _listening:
            jax.monitoring.register_event_duration_secs_listener(_listener)
            _listening = True


@contextlib.contextmanager
def notice(label: str, estimate_s: float | None = None, *, stream=None,
           threshold_s: float = THRESHOLD_S):
    """Tell the user (stderr) before a long compile and how long it took after; see the module
    docstring. A notice counts the compiles its own thread finishes inside it (nested notices
    each count them; a notice in another thread does not)."""
    stream = sys.stderr if stream is None else stream
    seconds: list[float] = []
    announced = estimate_s is not None and estimate_s > threshold_s
    if announced:
        later = ("; later runs load it from the compilation cache" if _cache_on() else
                 "; the compilation cache is off, so every run compiles it")
        print(f"squash-sim: compiling {label} (about {estimate_s:.0f} s, measured on 2 shared "
              f"cores{later})", file=stream, flush=True)
    _listen()
    if not hasattr(_OPEN, "notices"):
        _OPEN.notices = []
    _OPEN.notices.append(seconds)
    try:
        yield
    finally:  # by identity: two notices' lists may be equal
        del _OPEN.notices[next(i for i, open_ in enumerate(_OPEN.notices) if open_ is seconds)]
        compiled = sum(seconds)
        if announced or compiled > threshold_s:
            cached = ("cached for the next run" if _cache_on() else
                      "not cached: the persistent compilation cache is off")
            print(f"squash-sim: {label}: compiled in {compiled:.1f} s ({len(seconds)} XLA "
                  f"program{'s' if len(seconds) != 1 else ''}; {cached})", file=stream,
                  flush=True)
