"""Representational collapse (theory.md, Theorem B.3): the sequences and the measurement, swept
over n in one forward pass. (experiments/collapse.py is the experiment that uses it; proofs_check
and squash_sim.testing measure with it too.)

The pair for each n is a prompt followed by n ones, and the same followed by n + 1 ones: identical
except that the last token is repeated once more. Both are prefixes of prompt + 1^(N+1), and a
causal model's row j is the last-token output of the prefix of length j + 1 (theory.md §1), so ONE
forward pass yields every pair:

    y_n  = final[p + n − 1],   y*_{n+1} = final[p + n],   p = prompt length.

For a model without a vocabulary the "one" is a fixed N(0, I) vector and the prompt is N(0, I)
vectors, both drawn from `seed`.

A verdict is only as good as the numbers under it: the forward pass keeps its numerics diagnostic
(model.Health) and every n whose pair saw a value overflow, saturate or go non-finite on its path
(positions ≤ the longer prefix's last row; all positions without a causal mask) gets the status
"overflow" / "non-finite" instead of "bit-identical" or "distinct", and never counts as collapse
(e.g. `embed_scale=1e20`: RMSNorm's x² overflows, rsqrt(inf) = 0, both outputs are exactly 0).

`pattern` generalises the ones: the sequence is prompt + pattern repeated ("1" → the plain sweep,
"111," → a comma after every third one, "01" → interleaved), and the pair for n is the prefix ending
at the n-th "1" against the prefix ending at the (n+1)-th — still rows of one forward pass.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import numpy as np

from squash_sim import checks, floats
from squash_sim.analysis.onset import first_from
from squash_sim.config import ModelConfig
from squash_sim.model import forward, init_params
from squash_sim.precision import Precision
from squash_sim.precision import get as get_precision

ONE_TOKEN = 1
SYMBOL_TOKENS = {"1": ONE_TOKEN, "0": 0, ",": 2}  # ids used by token models
STATUSES = ("distinct", "bit-identical", "overflow", "non-finite")


@dataclasses.dataclass
class CollapseResult:
    """Distances between last-token outputs of (prompt + 1^n) and (prompt + 1^(n+1)), n = 1..N."""

    n: np.ndarray  # (N,) number of ones
    l1: np.ndarray  # ‖y_n − y*_{n+1}‖₁
    linf: np.ndarray  # max |y_n − y*_{n+1}|
    bit_identical: np.ndarray  # (N,) bool: the two float32 outputs are the same bits
    config: ModelConfig
    precision: Precision
    prompt_len: int
    seed: int
    seconds: float
    pattern: str = "1"
    outputs: np.ndarray | None = None  # (N, d) y_n in float32, when asked for (keep_outputs)
    delta: np.ndarray | None = None  # (N, d) |y_n − y*_{n+1}| per coordinate, likewise
    status: np.ndarray | None = None  # (N,) str, one of STATUSES (None: every n sound)

    def __post_init__(self):
        if self.status is None:
            self.status = np.where(self.bit_identical, "bit-identical", "distinct")

    @property
    def sound(self) -> np.ndarray:
        """(N,) bool: nothing overflowed or went non-finite on the pair's path."""
        return np.isin(self.status, ("distinct", "bit-identical"))

    @property
    def collapse_length(self) -> int | None:
        """First n from which the outputs are bit-identical — and sound — for every larger n swept
        (None if they still differ at the end, or overflowed there)."""
        return first_from(self.bit_identical & self.sound, self.n)

    @property
    def verdict(self) -> str:
        """In words: "collapse from n = …", "overflow", "non-finite" or "no collapse"."""
        if self.collapse_length is not None:
            return f"collapse from n = {self.collapse_length}"
        for status in ("non-finite", "overflow"):
            if (self.status == status).any():
                first = int(self.n[np.argmax(self.status == status)])
                return f"{status} from n = {first} (not collapse)"
        return f"no collapse up to n = {int(self.n[-1])}"

    def decay_exponent(self, n_min: int = 10) -> float | None:
        """Slope of log ‖Δ‖₁ against log n over n ≥ n_min with ‖Δ‖₁ > 0 (−1 means c/n)."""
        keep = (self.n >= n_min) & (self.l1 > 0)
        if keep.sum() < 3:
            return None
        return float(np.polyfit(np.log(self.n[keep]), np.log(self.l1[keep]), 1)[0])

    def table(self) -> list[dict]:
        return [{"n": int(n), "l1": float(a), "linf": float(b), "bit_identical": bool(c),
                 "status": str(s)}
                for n, a, b, c, s in zip(self.n, self.l1, self.linf, self.bit_identical,
                                         self.status, strict=True)]


def make_sequence(config: ModelConfig, max_len: int, prompt_len: int, seed: int,
                  pattern: str = "1"):
    """prompt + pattern repeated until it holds max_len + 1 ones. → (inputs, rows of the ones)

    inputs: token ids (length T,) or vectors (T, d); rows: (max_len + 1,) index of each "1"."""
    checks.config("collapse", "config", config)
    checks.integer("collapse", "max_len", max_len)
    checks.integer("collapse", "prompt_len", prompt_len, minimum=0)
    checks.seed("collapse", seed)
    if not isinstance(pattern, str):
        raise TypeError(f"collapse: pattern must be a str over '1', '0', ',', got {pattern!r:.60}")
    if not pattern or set(pattern) - set(SYMBOL_TOKENS) or "1" not in pattern:
        raise ValueError(f"collapse: pattern must be a string over '1', '0', ',' containing a '1', "
                         f"got {pattern!r}")
    rng = np.random.default_rng(seed)
    repeats = -(-(max_len + 1) // pattern.count("1"))
    symbols = np.array(list(pattern * repeats))
    ones = np.flatnonzero(symbols == "1")[: max_len + 1]
    symbols = symbols[: ones[-1] + 1]  # stop at the (max_len + 1)-th one
    rows = prompt_len + ones
    if config.takes_tokens:
        if config.vocab_size <= max(SYMBOL_TOKENS.values()):
            raise ValueError(f"collapse: the model's vocab_size must exceed "
                             f"{max(SYMBOL_TOKENS.values())}")
        prompt = rng.integers(0, config.vocab_size, prompt_len)
        body = np.array([SYMBOL_TOKENS[c] for c in symbols])
        return np.concatenate([prompt, body]).astype(np.int32), rows
    one = rng.standard_normal(config.d_model)
    prompt = rng.standard_normal((prompt_len, config.d_model))
    vectors = {"1": one, "0": rng.standard_normal(config.d_model),
               ",": rng.standard_normal(config.d_model)}
    body = np.stack([vectors[c] for c in symbols])
    return np.concatenate([prompt, body]).astype(np.float32), rows


def run(config: ModelConfig, precision: Precision | str = "fp32", *, max_len: int = 1024,
        prompt_len: int = 8, seed: int = 0, params=None, pattern: str = "1",
        keep_outputs: bool = False) -> CollapseResult:
    """One forward pass over prompt + 1^(max_len+1) (or the pattern); distances for n = 1..max_len.
    keep_outputs: also return y_n and the per-coordinate |Δ| (N × d floats each)."""
    checks.config("collapse", "config", config)
    checks.integer("collapse", "max_len", max_len)
    checks.integer("collapse", "prompt_len", prompt_len, minimum=0)
    checks.seed("collapse", seed)
    checks.flag("collapse", "keep_outputs", keep_outputs)
    precision = get_precision(precision)
    sequence, rows = make_sequence(config, max_len, prompt_len, seed, pattern)
    if config.positional == "learned" and len(sequence) > config.max_len:
        raise ValueError(f"collapse: the sequence has {len(sequence)} positions, more than the "
                         f"learned positions' max_len={config.max_len}")
    if params is None:
        params = init_params(config, jax.random.key(seed))
    start = time.perf_counter()
    trace = forward(params, sequence, config, precision, logits="none", numerics=True)
    final = np.asarray(trace.final)
    seconds = time.perf_counter() - start
    return measure(final, rows, trace.health, config, precision, prompt_len=prompt_len, seed=seed,
                   seconds=seconds, pattern=pattern, keep_outputs=keep_outputs)


def measure(final, rows, health, config: ModelConfig, precision: Precision, *, prompt_len: int,
            seed: int, seconds: float = 0.0, pattern: str = "1",
            keep_outputs: bool = False) -> CollapseResult:
    """Distances and statuses from one forward pass: final (T, d) float32, rows (N + 1,) the row of
    each "1", health the pass's model.Health (None: not measured, every n assumed sound)."""
    shorter = final[rows[:-1]]  # y_n, n = 1..N       (N, d)
    longer = final[rows[1:]]  # y*_{n+1}               (N, d)
    diff = np.abs(shorter.astype(np.float64) - longer.astype(np.float64))
    identical = np.all(shorter.view(np.uint32) == longer.view(np.uint32), axis=1)
    status = np.where(identical, "bit-identical", "distinct").astype(object)
    if health is not None:
        on_path = health.status_upto(config.causal)[rows[1:]]  # (N,) of the longer prefix
        status = np.where(on_path == "ok", status, on_path)
    nonfinite = ~np.all(np.isfinite(shorter) & np.isfinite(longer), axis=1)
    status = np.where(nonfinite, "non-finite", status).astype(str)
    return CollapseResult(
        n=np.arange(1, len(rows)),
        l1=diff.sum(axis=1),
        linf=diff.max(axis=1),
        bit_identical=identical,
        config=config, precision=precision, prompt_len=prompt_len, seed=seed, seconds=seconds,
        pattern=pattern, outputs=shorter if keep_outputs else None,
        delta=diff if keep_outputs else None, status=status,
    )


def reference_spacing(fmt: floats.FloatFormat = floats.BF16) -> float:
    """The horizontal line of the paper's figures: the spacing above 1 (bf16: 2⁻⁷)."""
    return fmt.eps


@dataclasses.dataclass(frozen=True)
class Summary:
    """What a collapse sweep shows, in the numbers a reader quotes (summarize)."""

    status: str  # "collapse" | "no collapse" | "overflow" | "non-finite"
    lasting: int | None  # n*: bit-identical from here to the end of the sweep (run far enough)
    first_identical: int | None  # the first n whose pair is bit-identical (and sound)
    identical_share: float  # share of the sound n swept whose pair is bit-identical
    max_len: int  # N, the last n swept


def summarize(result: CollapseResult, *, far_enough: float = 0.75) -> Summary:
    """The sweep's lasting collapse n* (the first n from which every larger swept n is
    bit-identical and sound, counted only when it starts by far_enough · N, so that it lasts over
    the last quarter of the sweep: a few identical n at the end can be chance), the first
    identical pair and the share of identical pairs. Any pair that overflowed or went non-finite
    makes the sweep that status, with no n* (never a collapse). The one place these numbers are
    decided for the explorer (issue 22 gives the project one collapse definition; swap it here)."""
    if not 0 < far_enough <= 1:
        raise ValueError(f"summarize: far_enough must be in (0, 1], got {far_enough!r}")
    n_max = int(result.n[-1])
    sound = result.sound
    identical = result.bit_identical & sound
    first = int(result.n[np.argmax(identical)]) if identical.any() else None
    share = float(identical.sum() / max(1, sound.sum()))
    if not sound.all():
        status = "non-finite" if (result.status == "non-finite").any() else "overflow"
        return Summary(status, None, first, share, n_max)
    lasting = result.collapse_length
    if lasting is not None and lasting > int(far_enough * n_max):
        lasting = None
    return Summary("collapse" if lasting is not None else "no collapse", lasting, first, share,
                   n_max)


def truncate(result: CollapseResult, n_max: int) -> CollapseResult:
    """The sweep for n = 1..n_max of a longer one-pass sweep (a causal model's prefix rows; bit
    for bit the shorter run under ordered ("-pure") policies, within float32 rounding otherwise)."""
    keep = result.n <= n_max
    cut = {name: getattr(result, name)[keep] for name in ("n", "l1", "linf", "bit_identical",
                                                          "status")}
    for name in ("outputs", "delta"):
        if getattr(result, name) is not None:
            cut[name] = getattr(result, name)[keep]
    return dataclasses.replace(result, **cut)
