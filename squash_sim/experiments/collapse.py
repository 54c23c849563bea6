"""Representational collapse (theory.md, Theorem B.3), swept over n in one forward pass.

The pair for each n is a prompt followed by n ones, and the same followed by n + 1 ones: identical
except that the last token is repeated once more. Both are prefixes of prompt + 1^(N+1), and a
causal model's row j is the last-token output of the prefix of length j + 1 (theory.md §1), so ONE
forward pass yields every pair:

    y_n  = final[p + n − 1],   y*_{n+1} = final[p + n],   p = prompt length.

For a model without a vocabulary the "one" is a fixed N(0, I) vector and the prompt is N(0, I)
vectors, both drawn from `seed`.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import numpy as np

from squash_sim import floats
from squash_sim.config import ModelConfig
from squash_sim.model import forward, init_params
from squash_sim.precision import Precision
from squash_sim.precision import get as get_precision

ONE_TOKEN = 1


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

    @property
    def collapse_length(self) -> int | None:
        """First n from which the outputs are bit-identical for every larger n swept (None if
        they still differ at the end)."""
        differs = np.flatnonzero(~self.bit_identical)
        if differs.size == 0:
            return int(self.n[0])
        last = differs[-1]
        return int(self.n[last + 1]) if last + 1 < self.n.size else None

    def decay_exponent(self, n_min: int = 10) -> float | None:
        """Slope of log ‖Δ‖₁ against log n over n ≥ n_min with ‖Δ‖₁ > 0 (−1 means c/n)."""
        keep = (self.n >= n_min) & (self.l1 > 0)
        if keep.sum() < 3:
            return None
        return float(np.polyfit(np.log(self.n[keep]), np.log(self.l1[keep]), 1)[0])

    def table(self) -> list[dict]:
        return [{"n": int(n), "l1": float(a), "linf": float(b), "bit_identical": bool(c)}
                for n, a, b, c in zip(self.n, self.l1, self.linf, self.bit_identical, strict=True)]


def make_sequence(config: ModelConfig, max_len: int, prompt_len: int, seed: int):
    """prompt + 1^(max_len + 1): token ids (length p + N + 1,) or vectors (p + N + 1, d)."""
    rng = np.random.default_rng(seed)
    total = prompt_len + max_len + 1
    if config.takes_tokens:
        if config.vocab_size <= ONE_TOKEN:
            raise ValueError(f"collapse: the model's vocab_size must exceed {ONE_TOKEN}")
        prompt = rng.integers(0, config.vocab_size, prompt_len)
        return np.concatenate([prompt, np.full(max_len + 1, ONE_TOKEN)]).astype(np.int32)
    one = rng.standard_normal(config.d_model)
    prompt = rng.standard_normal((prompt_len, config.d_model))
    return np.concatenate([prompt, np.tile(one, (total - prompt_len, 1))]).astype(np.float32)


def run(config: ModelConfig, precision: Precision | str = "fp32", *, max_len: int = 1024,
        prompt_len: int = 8, seed: int = 0, params=None) -> CollapseResult:
    """One forward pass over prompt + 1^(max_len+1); distances for n = 1..max_len."""
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1:
        raise ValueError(f"collapse: max_len must be a positive int, got {max_len!r}")
    if isinstance(prompt_len, bool) or not isinstance(prompt_len, int) or prompt_len < 0:
        raise ValueError(f"collapse: prompt_len must be an int >= 0, got {prompt_len!r}")
    precision = get_precision(precision)
    if config.positional == "learned" and prompt_len + max_len + 1 > config.max_len:
        raise ValueError(f"collapse: prompt_len + max_len + 1 = {prompt_len + max_len + 1} exceeds "
                         f"the learned positions' max_len={config.max_len}")
    if params is None:
        params = init_params(config, jax.random.key(seed))
    sequence = make_sequence(config, max_len, prompt_len, seed)
    start = time.perf_counter()
    final = np.asarray(forward(params, sequence, config, precision, logits="none").final)
    seconds = time.perf_counter() - start
    if not np.all(np.isfinite(final)):
        raise FloatingPointError(f"collapse: the forward pass produced non-finite outputs under "
                                 f"{precision}; distances would be meaningless")
    shorter = final[prompt_len: prompt_len + max_len]  # y_n, n = 1..N       (N, d)
    longer = final[prompt_len + 1: prompt_len + max_len + 1]  # y*_{n+1}    (N, d)
    diff = shorter.astype(np.float64) - longer.astype(np.float64)
    return CollapseResult(
        n=np.arange(1, max_len + 1),
        l1=np.abs(diff).sum(axis=1),
        linf=np.abs(diff).max(axis=1),
        bit_identical=np.all(shorter.view(np.uint32) == longer.view(np.uint32), axis=1),
        config=config, precision=precision, prompt_len=prompt_len, seed=seed, seconds=seconds,
    )


def reference_spacing(fmt: floats.FloatFormat = floats.BF16) -> float:
    """The horizontal line of the paper's figures: the spacing above 1 (bf16: 2⁻⁷)."""
    return fmt.eps
