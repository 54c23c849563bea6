"""Precision collapse lengths (theory.md, Corollary B.10 and §3): from which n the counts n and n + 1
become indistinguishable in a float format.

For each precision policy one forward pass over prompt + 1^(N+1) (experiments.collapse) gives
‖y_n − y*_{n+1}‖ for n = 1..N and bit-identity per n; the collapse length n*, the first identical
pair and the share of identical pairs are analysis.collapse.judge's (the one definition; None:
not within the sweep). Beside it, two estimates from the float32 curve of the same model and prompt:
  * n_ε     the paper's reading: the first n with ‖Δ‖₁ < ε (the spacing above 1);
  * n_round the first n from which every coordinate differs by less than half the format's spacing
            at that coordinate's magnitude, |Δ_i| < ½ spacing(y_i) — the rounding-interval estimate
            (theory.md §3: whether two reals round together depends on the spacing where they are).
Three families: named formats (storage vs "-pure"), a mantissa sweep at 8 exponent bits, and a
ladder that adds bf16 rounding points one at a time (where rounding happens matters as much as the
format). `sum_of_ones` shows the softmax-sum stall: ones accumulated in bf16 stop at 256.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from squash_sim import checks, floats, presets
from squash_sim.analysis import collapse
from squash_sim.analysis.onset import first_from
from squash_sim.config import ModelConfig
from squash_sim.precision import Precision, ordered_sum
from squash_sim.precision import get as get_precision

NAMED_FORMATS = ("fp16", "bf16", "fp8_e4m3fn", "fp8_e5m2")
MANTISSA_BITS = (2, 3, 4, 5, 6, 7, 8, 10, 12, 16, 23)
BF16 = floats.BF16
# Rounding points added one at a time, all in bf16 (precision.py names the fields).
LADDER = {
    "activations": Precision(activations=BF16, name="bf16 activations"),
    "+ params, logits (bf16)": Precision.storage(BF16),
    "+ softmax": Precision(params=BF16, activations=BF16, attention_logits=BF16, softmax=BF16,
                           name="bf16 + softmax"),
    "+ accumulation (bf16-pure)": Precision.pure(BF16),
}


@dataclasses.dataclass
class CollapseLength:
    family: str
    label: str  # policy label as shown in tables
    precision: str
    fmt: str  # the format the estimates use
    n_star: int | None  # measured collapse length (None: beyond max_len)
    n_eps: int | None  # first n with fp32 ‖Δ‖₁ < ε
    n_round: int | None  # rounding-interval estimate from the fp32 curve
    max_len: int
    status: str = "measured"  # "measured", or "overflow" / "non-finite": n_star is then None
    first_identical: int | None = None  # the first bit-identical pair (intermittent or not)
    identical_share: float = 0.0  # the share of swept n whose pair is bit-identical
    n_star_reason: str = ""  # why n_star is None (judge's reason)

    def row(self) -> dict:
        return dataclasses.asdict(self)


def estimates(reference: collapse.CollapseResult, y: np.ndarray, fmt: floats.FloatFormat):
    """(n_ε, n_round) from a float32 run; y: (N, d) the fp32 outputs y_n."""
    n_eps = first_from(reference.l1 < fmt.eps, reference.n)
    half_spacing = 0.5 * np.asarray(floats.spacing(jnp.asarray(y, jnp.float32), fmt))
    inside = np.all(reference.delta < half_spacing, axis=1)
    return n_eps, first_from(inside, reference.n)


def sum_of_ones(count: int = 1000, fmt: floats.FloatFormat | str = BF16) -> float:
    """Σ 1 over `count` ones accumulated in order in fmt (bf16: stalls at 256 = 2⁸)."""
    checks.integer("sum_of_ones", "count", count, 1, 2**24)
    return float(ordered_sum(jnp.ones(count, jnp.float32), 0, floats.get(fmt)))


def run(config: ModelConfig | None = None, *, max_len: int = 2048, seed: int = 0,
        mantissa_bits=MANTISSA_BITS, named=NAMED_FORMATS, ladder: bool = True,
        progress=None) -> list[CollapseLength]:
    """Collapse lengths for named formats (storage and pure), e8m{mantissa_bits} (storage and pure)
    and the bf16 ladder, on `config` (default: the Figure 10 model, NoPE, one layer)."""
    checks.config("precision_collapse", "config", config, optional=True)
    checks.integer("precision_collapse", "max_len", max_len)
    checks.seed("precision_collapse", seed)
    mantissa_bits = checks.integers("precision_collapse", "mantissa_bits", mantissa_bits, 1, 23)
    if isinstance(named, str) or not all(isinstance(name, str) for name in named):
        raise TypeError(f"precision_collapse: named must be a list of format names, got {named!r}")
    for name in named:  # unknown names fail here, before any work
        try:
            floats.get(name)
        except ValueError as err:
            raise ValueError(f"precision_collapse: named: {err}") from None
    checks.flag("precision_collapse", "ladder", ladder)
    config = config or presets.get("paper-fig10")
    reference = collapse.run(config, "fp32", max_len=max_len, seed=seed, keep_outputs=True)
    jobs = []
    for name in named:
        jobs += [("named", f"{name} storage", name, name), ("named", f"{name}-pure",
                                                            f"{name}-pure", name)]
    for m in mantissa_bits:
        jobs += [("mantissa", f"e8m{m} storage", f"e8m{m}", f"e8m{m}"),
                 ("mantissa", f"e8m{m}-pure", f"e8m{m}-pure", f"e8m{m}")]
    if ladder:
        jobs += [("ladder", label, policy, "bf16") for label, policy in LADDER.items()]
    lengths = []
    for index, (family, label, policy, fmt_name) in enumerate(jobs, 1):
        if progress:
            progress(f"precision [{index}/{len(jobs)}] {label}")
        fmt = floats.get(fmt_name)
        found = collapse.run(config, get_precision(policy), max_len=max_len, seed=seed).collapse
        # a format too narrow for the model's values overflows: never an n*
        status = "measured" if found.status == "sound" else found.status
        n_eps, n_round = estimates(reference, reference.outputs, fmt)
        lengths.append(CollapseLength(family, label, str(policy), fmt_name, found.n_star, n_eps,
                                      n_round, max_len, status, found.first_identical,
                                      round(found.share, 6), found.reason))
    return lengths
