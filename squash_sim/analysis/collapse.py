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

The one definition of collapse (docs/theory.md, "Collapse length, one definition") is `judge`:
every command, experiment, proofs_check claim and squash_sim.testing reads n*, the first identical
pair and the share of identical pairs from it, and nowhere else.
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
REACH = 2  # a sweep to N calls a lasting collapse n* only if N ≥ REACH · n* (docs/theory.md)


@dataclasses.dataclass(frozen=True)
class Collapse:
    """What a sweep says about collapse, by the one rule (`judge`; docs/theory.md).

    n_star           the lasting collapse: every sound pair from n* through the end of the sweep is
                     bit-identical, and the sweep reaches REACH · n*; None: "not within the sweep"
    reason           why n_star is None, in words ("" when it is not None)
    first_identical  the first n whose pair is bit-identical (sound), lasting or not
    identical        how many swept n are bit-identical (sound); share = identical / pairs
    status           "sound", or "overflow" / "non-finite" when any pair's numbers overflowed or
                     went non-finite: then never a collapse (n_star None)
    run_from         where the identical run that reaches the end starts (None: the last pair
                     differs), whether or not the sweep reaches far enough to call it n*
    """

    n_star: int | None
    reason: str
    first_identical: int | None
    identical: int
    pairs: int
    status: str
    run_from: int | None
    max_n: int
    lasting: int = 0  # identical pairs from n* through the end (0 without an n*)

    @property
    def share(self) -> float:
        return self.identical / self.pairs if self.pairs else 0.0

    @property
    def intermittent(self) -> int:
        """Identical pairs that come and go: those before n* (all of them without an n*)."""
        return self.identical - self.lasting

    def lasting_pairs(self, n) -> np.ndarray:
        """(N,) bool over the swept n this record was judged on: the pairs of the lasting
        collapse, n* through the end (none without an n*)."""
        n = np.asarray(n)
        return n >= self.n_star if self.n_star is not None else np.zeros(n.shape, bool)

    def text(self) -> str:
        """"n* = 398" or "not within the sweep (…)"; the numerical status when unsound."""
        if self.n_star is not None:
            return f"n* = {self.n_star}"
        return f"not within the sweep ({self.reason})"

    def short(self) -> str:
        """For table cells (`short`)."""
        return short(self.n_star, self.max_n, self.status)

    def row(self) -> dict:
        """The fields every JSON/CSV carries beside n*."""
        return {"n_star": self.n_star, "n_star_reason": self.reason,
                "first_identical_n": self.first_identical, "identical_pairs": self.identical,
                "identical_share": round(self.share, 6), "intermittent_pairs": self.intermittent,
                "pairs": self.pairs,
                "numerical_status": self.status}


def short(n_star: int | None, max_n: int, status: str = "sound") -> str:
    """THE table cell for a collapse length: "398", "> 1024" (no lasting collapse called within a
    sweep to max_n), or the numerical status when it is not "sound"."""
    if status != "sound":
        return status
    return str(n_star) if n_star is not None else f"> {max_n // REACH}"


def failure(outcome) -> str | None:
    """THE classification of a run that cannot be judged, for every caller: "overflow" for a
    raised OverflowError (a format saturated), "non-finite" for any other ArithmeticError
    (FloatingPointError: inf/NaN outputs), the numerical status of a result whose sweep `judge`
    calls unsound; None: the run can be judged. Such a run is never a collapse."""
    if isinstance(outcome, OverflowError):
        return "overflow"
    if isinstance(outcome, ArithmeticError):
        return "non-finite"
    found = getattr(outcome, "collapse", None)
    return None if found is None or found.status == "sound" else found.status


def judge(n, identical, status=None) -> Collapse:
    """THE definition of collapse for a sweep (docs/theory.md, "Collapse length, one definition").

    n: (N,) the swept lengths, ascending; identical: (N,) bool, the pair's outputs are the same
    bits; status: (N,) str per pair ("ok" / "distinct" / "bit-identical" are sound, "overflow" /
    "non-finite" are not) or a (N,) bool "sound", or None (every pair sound).

    n* is the first n from which every pair through the end is bit-identical, called only when
    the sweep reaches REACH · n* (N ≥ 2 n*: the identical run covers at least the second half of
    the sweep); a sweep with an unsound pair (overflow, non-finite) never collapses."""
    n = np.asarray(n)
    identical = np.asarray(identical, bool)
    if n.ndim != 1 or n.shape != identical.shape or n.size == 0:
        raise ValueError(f"judge: n and identical must be non-empty (N,) arrays of one length, "
                         f"got {n.shape} and {identical.shape}")
    if status is None:
        sound = np.ones(n.shape, bool)
        status = np.full(n.shape, "ok")
    else:
        status = np.asarray(status)
        sound = status if status.dtype == bool else np.isin(status, ("ok", "distinct",
                                                                     "bit-identical"))
        if status.dtype == bool:
            status = np.where(sound, "ok", "overflow")
    same = identical & sound
    first = int(n[np.argmax(same)]) if same.any() else None
    run_from = first_from(same, n)
    max_n = int(n[-1])
    common = dict(first_identical=first, identical=int(same.sum()), pairs=int(n.size),
                  run_from=run_from, max_n=max_n)
    for bad in ("non-finite", "overflow"):
        if (status == bad).any():
            at = int(n[np.argmax(status == bad)])
            return Collapse(None, f"{bad} from n = {at}, not collapse", status=bad, **common)
    if run_from is None:
        why = f"the pair at n = {max_n} differs"
        if first is not None:
            why += f"; {int(same.sum())} identical pairs from n = {first} come and go"
        return Collapse(None, why, status="sound", **common)
    if REACH * run_from > max_n:
        return Collapse(None, f"identical from n = {run_from} to the end, but a lasting collapse "
                        f"is called only when the sweep reaches {REACH}·n* = {REACH * run_from}",
                        status="sound", **common)
    found = Collapse(run_from, "", status="sound", **common)
    return dataclasses.replace(found, lasting=int(found.lasting_pairs(n).sum()))


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
    def collapse(self) -> Collapse:
        """The sweep judged by the one rule (`judge`)."""
        return judge(self.n, self.bit_identical, self.status)

    @property
    def collapse_length(self) -> int | None:
        """The lasting collapse n* (`judge`); None: not within the sweep."""
        return self.collapse.n_star

    @property
    def verdict(self) -> str:
        """In words: "n* = …" or "not within the sweep (why)"."""
        return self.collapse.text()

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
