"""Representational collapse on a real LLM (the paper's Figure 5 analogue, theory.md §2 Theorem B.3).

For a prompt followed by n ones and the same prompt followed by n + 1 ones, the distance between
the final-layer last-token representations (after the final norm), and whether they are bit for
bit identical. Prompts:
    count-ones    "How many ones are in the following sequence? " + 1…1
    copy          "Can you copy the following number? " + 1…1
    copy-commas   the same with a comma every third digit (111,111,1…)
    digits        "Can you copy the following number? " + n uniformly sampled digits, against the
                  same digits with the last one repeated (the Theorem B.3 pair)
Digits, commas and spaces are single tokens in Gemma's and SmolLM2's vocabularies, so every longer
sequence of the first three prompts extends the shorter ones token by token (checked for every n:
a tokenizer that merges digits is refused rather than swept wrongly): one forward pass over the
longest gives every n (the prefix property), and the dense sweep costs one forward. "digits" needs
one forward per n.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from squash_sim import checks
from squash_sim.analysis import collapse as collapse_lib

PROMPTS = {
    "count-ones": "How many ones are in the following sequence? ",
    "copy": "Can you copy the following number? ",
    "copy-commas": "Can you copy the following number? ",
    "digits": "Can you copy the following number? ",
}
PAPER_N = (1, 2, 6, 11, 51, 101, 501, 1001, 2001)


def body(kind: str, n: int) -> str:
    if kind == "copy-commas":
        ones = "1" * n
        return ",".join(ones[i:i + 3] for i in range(0, n, 3))
    return "1" * n


@dataclasses.dataclass
class RealCollapseResult:
    kind: str
    precision: str
    n: np.ndarray  # (m,) the counts compared: n ones against n + 1
    l1: np.ndarray  # ‖y_n − y*_{n+1}‖₁
    linf: np.ndarray
    bit_identical: np.ndarray  # (m,) bool
    tokens: int  # length of the longest sequence run
    seconds: float
    sound: np.ndarray | None = None  # (m,) bool: nothing overflowed, saturated or went non-finite
    #                                  on the pair's path (one-pass prompts; None: not measured)
    status: np.ndarray | None = None  # (m,) str: "ok", "overflow" or "non-finite" per pair

    @property
    def collapse(self):
        """The sweep judged by the one rule (squash_sim.analysis.collapse.judge)."""
        status = self.status if self.status is not None else self.sound
        return collapse_lib.judge(self.n, self.bit_identical, status)

    def rows(self) -> list[dict]:
        return [{"prompt": self.kind, "precision": self.precision, "n": int(n), "l1": float(a),
                 "linf": float(b), "bit_identical": bool(c)}
                for n, a, b, c in zip(self.n, self.l1, self.linf, self.bit_identical, strict=True)]


def _distances(a: np.ndarray, b: np.ndarray):
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return diff.sum(-1), diff.max(-1), np.all(a == b, axis=-1) & np.isfinite(a).all(-1)


def run(model, kind: str, precision="fp32", *, max_len: int = 2048, seed: int = 0,
        progress=None) -> RealCollapseResult:
    """Sweep n = 1..max_len (one forward) for the one-pass prompts; n in PAPER_N ∪ {max_len} for
    "digits". `model`: a squash_sim.models.LoadedModel (any architecture)."""
    checks.loaded_model("real_collapse", "model", model)
    checks.choice("real_collapse", "kind", kind, sorted(PROMPTS))
    checks.integer("real_collapse", "max_len", max_len, 1, 2**20)
    checks.seed("real_collapse", seed)
    from squash_sim.precision import get as get_precision

    get_precision(precision)  # an unknown policy fails here, not after encoding
    start, prefix = time.perf_counter(), PROMPTS[kind]
    if kind == "digits":
        digits = "".join(np.random.default_rng(seed).choice(list("0123456789"), max_len))
        ns = sorted({n for n in PAPER_N if n <= max_len} | {max_len})
        y, y_star = [], []
        for index, n in enumerate(ns, 1):
            ids = model.encode(prefix + digits[:n] + digits[n - 1])  # the starred sequence
            final = np.asarray(model.forward(ids, precision, logits="none").final)
            y.append(final[-2])  # the unstarred run's last token (prefix property)
            y_star.append(final[-1])
            if progress:
                progress(f"digits: n = {n} ({index}/{len(ns)})")
        l1, linf, same = _distances(np.stack(y), np.stack(y_star))
        return RealCollapseResult(kind, str(precision), np.array(ns), l1, linf, same,
                                  len(ids), time.perf_counter() - start)
    full = model.encode(prefix + body(kind, max_len + 1))
    positions = []  # the last token of prefix + body(n), for n = 1..max_len + 1
    for n in range(1, max_len + 2):
        ids = model.encode(prefix + body(kind, n))
        if not np.array_equal(ids, full[: len(ids)]):
            raise ValueError(f"{kind}: the sequence for n = {n} is not a token prefix of the "
                             f"longest one; a one-pass sweep would be wrong")
        positions.append(len(ids) - 1)
    if progress:
        progress(f"{kind}: one forward pass over {len(full)} tokens, {precision}")
    # numerics=True: a pair read from values that overflowed or saturated is flagged, never
    # counted as a collapse (the diagnostic costs ≈ 1.0–1.2× a plain forward).
    trace = model.forward(full, precision, logits="none", numerics=True)
    final = np.asarray(trace.final)  # (tokens, d)
    positions = np.array(positions)
    l1, linf, same = _distances(final[positions[:-1]], final[positions[1:]])
    status = trace.health.status_upto(model.config.causal)[..., positions[1:]].reshape(-1)
    finite = np.isfinite(final[positions]).all(-1)  # (max_len + 1,)
    status = np.where(finite[:-1] & finite[1:], status, "non-finite")
    return RealCollapseResult(kind, str(precision), np.arange(1, max_len + 1), l1, linf, same,
                              len(full), time.perf_counter() - start, status == "ok", status)
