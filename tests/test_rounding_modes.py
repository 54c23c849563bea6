"""Rounding modes other than nearest-even: toward zero, up, down, odd, stochastic.

Two references written apart from squash_sim.floats: the exact Fraction rounder (exact_rounder.py)
on a sample with every kind of hard case, and a vectorised float64 NumPy rounder (below) on every
rounding boundary of every float32 binade and of each format (float32 values divided by a power of
two and floored are exact in float64)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from exact_rounder import exact_round
from test_floats import NEIGHBOURHOODS, format_ties, mismatches

from squash_sim import floats
from squash_sim.floats import FloatFormat, round_to

DIRECTED = ("toward_zero", "up", "down", "odd")
FORMATS = {
    "bf16": floats.BF16, "fp16": floats.FP16,
    "fp8_e4m3fn": floats.FP8_E4M3FN, "fp8_e5m2": floats.FP8_E5M2,
    "fp8_e4m3fnuz": floats.FP8_E4M3FNUZ, "fp4_e2m1fn": floats.FP4_E2M1FN,
    "e3m2-ftz-sat": FloatFormat(3, 2, subnormals=False, saturate=True),
    "e9m7 (wider than float32)": FloatFormat(9, 7),
}


def numpy_round(x: np.ndarray, fmt: FloatFormat, mode: str, random_bits=None) -> np.ndarray:
    """float32 x rounded to fmt by mode, in float64 NumPy arithmetic (exact for float32 inputs)."""
    x = x.astype(np.float64)
    a = np.abs(x)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        exponent = np.floor(np.log2(np.where(a > 0, a, 1.0)))
        exponent += (2.0**exponent > a)  # log2 rounding guard: 2^e ≤ a < 2^(e+1)
        exponent -= (2.0 ** (exponent + 1) <= a)
        quantum = 2.0 ** (np.maximum(exponent, fmt.emin) - fmt.mantissa_bits)
        steps = a / quantum
        low = np.floor(steps)
        frac = steps - low
        positive = ~np.signbit(x)
        if mode == "toward_zero":
            up = np.zeros_like(positive)
        elif mode == "up":
            up = (frac > 0) & positive
        elif mode == "down":
            up = (frac > 0) & ~positive
        elif mode == "odd":
            up = (frac > 0) & (np.fmod(low, 2) == 0)
        else:  # stochastic, 32 random bits
            up = random_bits.astype(np.float64) < np.floor(frac * 2.0**32)
        r = (low + up) * quantum
        if not fmt.subnormals:
            r = np.where(r < fmt.smallest_normal, 0.0, r)
        toward_zero = {"toward_zero": True, "odd": True, "up": ~positive, "down": positive,
                       "stochastic": False}[mode]
        if fmt.saturate or fmt.nan == "none":
            over = fmt.max
        else:
            over = np.where(toward_zero, fmt.max, np.inf if fmt.nan == "ieee" else np.nan)
        r = np.where(r > fmt.max, over, r)
        inf_in = np.inf if fmt.nan == "ieee" and not fmt.saturate else (
            fmt.max if fmt.saturate or fmt.nan == "none" else np.nan)
        r = np.where(np.isinf(x), inf_in, r)
        out = np.copysign(r, x)
        if fmt.nan == "fnuz":
            out = np.where(out == 0, 0.0, out)
        out = np.where(np.isnan(x), np.nan, out)
        return out.astype(np.float32)  # beyond float32's range: inf, as round_to


def hard_cases(fmt) -> np.ndarray:
    return np.concatenate([NEIGHBOURHOODS, format_ties(fmt)]).view(np.float32)


def fraction_round(x: np.ndarray, fmt: FloatFormat, mode: str, words: np.ndarray) -> np.ndarray:
    want = []
    for value, word in zip(x, words, strict=True):
        w = exact_round(float(value), e=fmt.exponent_bits, m=fmt.mantissa_bits, bias=fmt.bias,
                        nan=fmt.nan, subnormals=fmt.subnormals, saturate=fmt.saturate,
                        mode=mode, random_word=int(word))
        want.append(np.float32(w) if not np.isfinite(w) or abs(w) <= 3.4028234663852886e38
                    else np.float32(np.copysign(np.inf, w)))
    return np.array(want, np.float32)


@pytest.mark.parametrize("mode", DIRECTED + ("stochastic",))
def test_every_mode_equals_two_independent_references(mode):
    """Every format above, every rounding boundary of float32 and of the format (±1 ulp, both
    signs, subnormals, overflow, inf), jitted, against the float64 NumPy rounder; a strided sample
    (NaNs added) against the exact Fraction rounder."""
    key = jax.random.key(7)
    for name, fmt in FORMATS.items():
        x = hard_cases(fmt)
        x = np.concatenate([x[~np.isnan(x)], np.float32([np.nan, -np.nan])])
        words = np.asarray(jax.random.bits(key, x.shape, jnp.uint32))
        if mode == "stochastic":
            got = np.asarray(round_to(x, fmt, mode, key=key))
        else:
            got = np.asarray(round_to(x, fmt, mode))
        bad = mismatches(got[:-2], numpy_round(x[:-2], fmt, mode, words[:-2]))
        assert bad.size == 0, (name, mode, x[bad[:4]], got[bad[:4]])
        sample = np.r_[0:x.size - 2:331, x.size - 2, x.size - 1]
        bad = mismatches(got[sample], fraction_round(x[sample], fmt, mode, words[sample]))
        assert bad.size == 0, (name, mode, x[sample][bad[:4]], got[sample][bad[:4]])


def test_every_mode_gives_the_same_bits_under_jit_and_eagerly():
    fmt = floats.FP8_E4M3FN
    x = hard_cases(fmt)[::211]
    key = jax.random.key(5)
    for mode in DIRECTED + ("stochastic",):
        kwargs = dict(key=key) if mode == "stochastic" else {}
        jitted = np.asarray(jax.jit(lambda v, mode=mode, kw=kwargs: round_to(v, fmt, mode, **kw))(x))
        with jax.disable_jit():
            eager = np.asarray(round_to(x, fmt, mode, **kwargs))
        assert np.array_equal(jitted.view(np.uint32), eager.view(np.uint32)), mode


def test_nearest_is_unchanged_and_modes_differ_where_they_must():
    x = np.array([1 + 2**-9, -(1 + 2**-9), 1 + 3 * 2**-9, 1.5 * 2**-134], np.float32)
    assert round_to(x, "bf16", "rne").tolist() == round_to(x, "bf16").tolist()
    rz = round_to(x, "bf16", "rz").tolist()
    assert rz == [1.0, -1.0, 1.0, 0.0]
    assert round_to(x, "bf16", "up").tolist()[:4] == [1 + 2**-7, -1.0, 1 + 2**-7, 2.0**-133]
    assert round_to(x, "bf16", "down").tolist()[:2] == [1.0, -(1 + 2**-7)]
    assert round_to(x, "bf16", "odd").tolist()[:3] == [1 + 2**-7, -(1 + 2**-7), 1 + 2**-7]
    assert round_to(np.float32(1 + 2**-7 + 2**-9), "bf16", "odd").tolist() == 1 + 2**-7
    assert round_to(np.float32(500.0), "fp8_e4m3fn", "rz").tolist() == 448.0  # RZ overflow: max
    assert np.isnan(round_to(np.float32(500.0), "fp8_e4m3fn", "up"))


@pytest.mark.parametrize("mutant", ["nearest for toward_zero", "odd sets the bit when exact",
                                    "toward_zero overflows to inf", "stochastic off by one bit"])
def test_mutant_rounders_are_caught(mutant):
    """Plausible slips, each rejected by the comparison the tests above make."""
    fmt = floats.FP8_E5M2
    x = hard_cases(fmt)
    x = x[np.isfinite(x)]
    bits = np.asarray(jax.random.bits(jax.random.key(7), x.shape, jnp.uint32))
    if mutant == "nearest for toward_zero":
        got, mode = np.asarray(round_to(x, fmt)), "toward_zero"
    elif mutant == "odd sets the bit when exact":
        rz = np.asarray(round_to(x, fmt, "toward_zero"))
        quantum = np.asarray(floats.spacing(rz, fmt))
        steps = np.abs(rz) / quantum
        got = np.copysign((steps + (np.fmod(steps, 2) == 0)) * quantum, rz).astype(np.float32)
        mode = "odd"
    elif mutant == "toward_zero overflows to inf":
        got = np.asarray(round_to(x, fmt, "toward_zero"))
        got = np.where(np.abs(x) >= 2 * fmt.max, np.copysign(np.inf, x), got).astype(np.float32)
        mode = "toward_zero"
    else:
        got = numpy_round(x, fmt, "stochastic", bits >> np.uint32(1))
        mode = "stochastic"
    want = numpy_round(x, fmt, mode, bits)
    assert mismatches(got, want).size > 0


def test_stochastic_is_reproducible_unbiased_and_needs_a_key():
    x = jnp.full((4096,), 1 + 2**-9 + 2**-12, jnp.float32)  # 0.28125 of a bf16 quantum above 1
    first = round_to(x, "bf16", "stochastic", key=jax.random.key(0))
    again = round_to(x, "bf16", "stochastic", key=jax.random.key(0))
    other = round_to(x, "bf16", "stochastic", key=jax.random.key(1))
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert set(np.unique(first).tolist()) == {1.0, 1 + 2**-7}
    share_up = float(np.mean(np.asarray(first) > 1))
    assert abs(share_up - 0.28125) < 0.03, share_up  # 4096 draws: σ ≈ 0.007
    with pytest.raises(ValueError, match="key"):
        round_to(x, "bf16", "stochastic")
    with pytest.raises(ValueError, match="key"):
        round_to(x, "bf16", "up", key=jax.random.key(0))
    with pytest.raises(ValueError, match="mode must be one of"):
        round_to(x, "bf16", "sideways")
