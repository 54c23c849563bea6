"""Float formats: bit-exact against ml_dtypes casts and an independent exact rational rounder."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from exact_rounder import exact_round
from hypothesis import given, settings
from hypothesis import strategies as st
from jax import lax

from squash_sim import floats
from squash_sim import strategies as sst
from squash_sim.floats import FloatFormat, round_to, spacing

# Every format ml_dtypes provides that FloatFormat can describe, with its ml_dtypes oracle.
ORACLES = {
    "bf16": (floats.BF16, ml_dtypes.bfloat16),
    "fp16": (floats.FP16, np.float16),
    "fp8_e4m3fn": (floats.FP8_E4M3FN, ml_dtypes.float8_e4m3fn),
    "fp8_e5m2": (floats.FP8_E5M2, ml_dtypes.float8_e5m2),
    "fp8_e4m3fnuz": (floats.FP8_E4M3FNUZ, ml_dtypes.float8_e4m3fnuz),
    "fp8_e5m2fnuz": (floats.FP8_E5M2FNUZ, ml_dtypes.float8_e5m2fnuz),
    "fp6_e2m3fn": (floats.FP6_E2M3FN, ml_dtypes.float6_e2m3fn),
    "fp6_e3m2fn": (floats.FP6_E3M2FN, ml_dtypes.float6_e3m2fn),
    "fp4_e2m1fn": (floats.FP4_E2M1FN, ml_dtypes.float4_e2m1fn),
    "e4m3 (IEEE)": (FloatFormat(4, 3), ml_dtypes.float8_e4m3),
    "e3m4 (IEEE)": (FloatFormat(3, 4), ml_dtypes.float8_e3m4),
    "e4m3 fnuz bias 11": (FloatFormat(4, 3, bias=11, inf=False, nan="fnuz"),
                          ml_dtypes.float8_e4m3b11fnuz),
    "fp32": (floats.FP32, np.float32),
}

# Every value of every source format of at most 16 bits, widened exactly to float32.
SOURCES = {
    "fp16": np.arange(2**16, dtype=np.uint16).view(np.float16),
    "bf16": np.arange(2**16, dtype=np.uint16).view(ml_dtypes.bfloat16),
    **{name: np.arange(2**8, dtype=np.uint8).view(t) for name, t in [
        ("fp8_e4m3fn", ml_dtypes.float8_e4m3fn), ("fp8_e5m2", ml_dtypes.float8_e5m2),
        ("fp8_e4m3fnuz", ml_dtypes.float8_e4m3fnuz), ("fp8_e5m2fnuz", ml_dtypes.float8_e5m2fnuz),
        ("fp8_e4m3", ml_dtypes.float8_e4m3), ("fp8_e3m4", ml_dtypes.float8_e3m4)]},
    **{name: np.arange(2**bits, dtype=np.uint8).view(t) for name, t, bits in [
        ("fp6_e2m3fn", ml_dtypes.float6_e2m3fn, 6), ("fp6_e3m2fn", ml_dtypes.float6_e3m2fn, 6),
        ("fp4_e2m1fn", ml_dtypes.float4_e2m1fn, 4)]},
}
ALL_SOURCE_VALUES = np.concatenate([v.astype(np.float32) for v in SOURCES.values()])

round_jit = jax.jit(round_to, static_argnums=1)


def oracle(values: np.ndarray, dtype) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):
        return values.astype(dtype).astype(np.float32)


def mismatches(got, want) -> np.ndarray:
    """Indices where two float32 arrays differ in bits (any NaN equals any NaN)."""
    got, want = np.asarray(got, np.float32), np.asarray(want, np.float32)
    same = (got.view(np.uint32) == want.view(np.uint32)) | (np.isnan(got) & np.isnan(want))
    return np.flatnonzero(~same)


@pytest.mark.parametrize("name", list(ORACLES))
def test_equals_ml_dtypes_on_every_value_of_every_16_bit_or_smaller_format(name):
    fmt, dtype = ORACLES[name]
    want = oracle(ALL_SOURCE_VALUES, dtype)
    bad = mismatches(round_jit(ALL_SOURCE_VALUES, fmt), want)
    assert bad.size == 0, (name, ALL_SOURCE_VALUES[bad[:5]], want[bad[:5]])


@pytest.mark.parametrize("name", list(ORACLES))
def test_jit_and_eager_give_identical_bits(name):
    fmt, _ = ORACLES[name]
    with jax.disable_jit():
        eager = np.asarray(round_to(ALL_SOURCE_VALUES, fmt))
    jitted = np.asarray(round_jit(ALL_SOURCE_VALUES, fmt))
    assert np.array_equal(eager.view(np.uint32), jitted.view(np.uint32))


@settings(max_examples=300)
@given(values=sst.float32_arrays(256), name=st.sampled_from(list(ORACLES)))
def test_equals_ml_dtypes_on_float32_bit_patterns(values, name):
    fmt, dtype = ORACLES[name]
    want = oracle(values, dtype)
    bad = mismatches(round_jit(values, fmt), want)
    assert bad.size == 0, (name, values[bad[:5]], want[bad[:5]])


def test_ties_overflow_subnormals_zeros_and_nan_are_in_the_checked_set():
    """The exhaustive sets above really contain the hard cases (guards against a weak sweep)."""
    bf16_values = SOURCES["bf16"].astype(np.float32)
    as_fp8 = oracle(bf16_values, ml_dtypes.float8_e4m3fn)
    assert np.any(np.isnan(as_fp8) & np.isfinite(bf16_values))  # overflow to NaN
    half_way = np.float32(448 + 16)  # tie between 448 and 480 → 448 (even)
    assert half_way in bf16_values and oracle(np.array([half_way]), ml_dtypes.float8_e4m3fn)[0] == 448
    assert np.any((bf16_values != 0) & (np.abs(bf16_values) < 2.0**-126))  # f32 subnormals
    assert np.any(np.signbit(bf16_values) & (bf16_values == 0))  # −0


def test_mutant_reduce_precision_is_caught():
    """lax.reduce_precision flushes target subnormals: the same comparison must reject it."""
    values = ALL_SOURCE_VALUES
    mutant = np.asarray(jax.jit(lambda x: lax.reduce_precision(x, 5, 10))(values))
    assert mismatches(mutant, oracle(values, np.float16)).size > 0


def test_mutant_ties_away_from_zero_is_caught():
    """Round-half-away (np.round is half-even, so build it) differs from RNE on exact ties."""
    values = SOURCES["fp16"].astype(np.float32)
    fmt = floats.FP8_E5M2
    scale = 2.0 ** (np.floor(np.log2(np.maximum(np.abs(values), 2.0**-14))) - 2)
    with np.errstate(invalid="ignore"):
        away = np.sign(values) * np.floor(np.abs(values) / scale + 0.5) * scale
    finite = np.isfinite(values) & (np.abs(values) < 1000)
    assert mismatches(away[finite], oracle(values[finite], ml_dtypes.float8_e5m2)).size > 0
    assert mismatches(round_jit(values[finite], fmt),
                      oracle(values[finite], ml_dtypes.float8_e5m2)).size == 0


@settings(max_examples=400, deadline=None)
@given(fmt=sst.float_formats(), x=sst.float32_bits())
def test_custom_formats_equal_an_exact_rational_rounder(fmt, x):
    want = exact_round(x, e=fmt.exponent_bits, m=fmt.mantissa_bits, bias=fmt.bias, nan=fmt.nan,
                       subnormals=fmt.subnormals, saturate=fmt.saturate)
    want32 = np.float32(want) if abs(want) <= np.finfo(np.float32).max or not np.isfinite(want) \
        else np.float32(np.copysign(np.inf, want))
    got = np.asarray(round_jit(np.float32(x), fmt))
    assert mismatches(got[None], np.array([want32])).size == 0, (fmt, x, want, got)


@pytest.mark.parametrize("fmt", [FloatFormat(3, 2, subnormals=False), FloatFormat(5, 4, saturate=True),
                                 FloatFormat(2, 5, inf=False, nan="none", bias=0),
                                 FloatFormat(6, 9, inf=False, nan="fnuz", bias=30)])
def test_custom_formats_exhaustively_over_fp16_against_the_exact_rounder(fmt):
    values = SOURCES["fp16"].astype(np.float32)
    want = np.array([exact_round(float(v), e=fmt.exponent_bits, m=fmt.mantissa_bits,
                                 bias=fmt.bias, nan=fmt.nan, subnormals=fmt.subnormals,
                                 saturate=fmt.saturate) for v in values], np.float32)
    bad = mismatches(round_jit(values, fmt), want)
    assert bad.size == 0, (fmt, values[bad[:5]], want[bad[:5]])


@pytest.mark.parametrize("name", [n for n in ORACLES if n != "fp32"])
def test_constants_match_ml_dtypes_finfo(name):
    fmt, dtype = ORACLES[name]
    info = ml_dtypes.finfo(dtype)
    assert fmt.max == float(info.max)
    assert fmt.smallest_normal == float(info.smallest_normal)
    assert fmt.smallest_subnormal == float(info.smallest_subnormal)
    assert fmt.eps == float(info.eps)


@pytest.mark.parametrize("name", [n for n in ORACLES if n != "fp32"])
def test_spacing_is_the_gap_to_the_next_value(name):
    """spacing(v) == next representable above v − v, for every positive finite v but the max."""
    fmt, dtype = ORACLES[name]
    storage = np.uint16 if fmt.bits > 8 else np.uint8
    positive_bits = np.arange(2 ** (fmt.bits - 1) - 1, dtype=storage)  # sign bit clear
    with np.errstate(invalid="ignore"):
        values = positive_bits.view(dtype).astype(np.float32)
        following = (positive_bits + 1).view(dtype).astype(np.float32)
    ok = np.isfinite(values) & np.isfinite(following) & (following > values)
    assert ok.sum() >= positive_bits.size - 2 ** (fmt.mantissa_bits + 1)  # all but inf/NaN
    np.testing.assert_array_equal(np.asarray(spacing(values[ok], fmt)), following[ok] - values[ok])


def test_spacing_of_the_table_in_theory_md():
    for fmt, eps in [(floats.FP32, 2**-23), (floats.FP16, 2**-10), (floats.BF16, 2**-7),
                     (floats.FP8_E4M3FN, 2**-3), (floats.FP8_E5M2, 2**-2)]:
        assert float(spacing(jnp.float32(1.0), fmt)) == eps == fmt.eps


def test_named_formats_and_specs_resolve():
    assert floats.get("BF16") is floats.BF16
    assert floats.get("bfloat16") is floats.BF16
    assert floats.get("fp8-e4m3fn") is floats.FP8_E4M3FN
    assert floats.get("e5m7") == FloatFormat(5, 7)
    assert floats.get("e4m3fnuz") == floats.FP8_E4M3FNUZ.__class__(4, 3, inf=False, nan="fnuz")
    import squash_sim

    for name in ("FP64", "FP32", "TF32", "FP16", "BF16", "FP8_E4M3FN", "FP8_E5M2", "FP8_E4M3FNUZ",
                 "FP8_E5M2FNUZ", "FP6_E2M3FN", "FP6_E3M2FN", "FP4_E2M1FN"):
        assert getattr(squash_sim, name) is getattr(floats, name)


@pytest.mark.parametrize("kwargs, error, word", [
    (dict(exponent_bits=0, mantissa_bits=3), ValueError, "exponent_bits"),
    (dict(exponent_bits=4, mantissa_bits=0), ValueError, "mantissa_bits"),
    (dict(exponent_bits=4.0, mantissa_bits=3), TypeError, "exponent_bits"),
    (dict(exponent_bits=4, mantissa_bits=3, nan="weird"), ValueError, "nan"),
    (dict(exponent_bits=4, mantissa_bits=3, inf=True, nan="fn"), ValueError, "inf"),
    (dict(exponent_bits=4, mantissa_bits=3, saturate="yes"), TypeError, "saturate"),
])
def test_bad_formats_are_rejected_clearly(kwargs, error, word):
    with pytest.raises(error, match=word):
        FloatFormat(**kwargs)


def test_bad_round_to_inputs_are_rejected_clearly():
    with pytest.raises(ValueError, match="unknown float format"):
        floats.get("fp7")
    with pytest.raises(TypeError, match="floating-point"):
        round_to(jnp.arange(3), floats.BF16)
    with pytest.raises(TypeError, match="float64"):
        round_to(np.zeros(3, np.float64), floats.BF16)


def test_float64_container_under_x64():
    values = np.random.default_rng(0).standard_normal(10_000) * 1e3
    with jax.enable_x64(True):
        got = np.asarray(round_to(jnp.asarray(values), floats.BF16))
        fp64_identity = np.asarray(round_to(jnp.asarray(values), floats.FP64))
    assert got.dtype == np.float64
    np.testing.assert_array_equal(fp64_identity, values)
    want = np.array([exact_round(float(v), e=8, m=7, bias=127, nan="ieee", subnormals=True,
                                 saturate=False) for v in values])
    np.testing.assert_array_equal(got, want)


# ---- the short paths: _round_carry and _round_magic give _round_bits' bits ------------------------


def tie_neighbourhoods() -> np.ndarray:
    """float32 bit patterns around every rounding boundary any format can have: for every exponent
    field (subnormals, inf and NaN included), every quantum 2^d of the mantissa (d = 0..24) and a
    few multiples k of it, the patterns k·2^d + {−1, 0, 1} and the ties k·2^d + 2^(d−1) + {−1, 0, 1};
    both signs. (benchmarks/bench_rounder.py checks all 2^32 patterns.)"""
    d = np.arange(25, dtype=np.int64)[:, None, None]
    k = np.array([0, 1, 2, 3, 5, 2**7 - 1, 2**10 + 1, 2**23 - 1], np.int64)[None, :, None]
    offsets = np.array([-1, 0, 1], np.int64)[None, None, :]
    base = (k << d)
    half = np.where(d > 0, 1 << np.maximum(d - 1, 0), 0)
    mantissas = np.concatenate([(base + offsets).ravel(), (base + half + offsets).ravel()])
    mantissas = np.unique(mantissas[(mantissas >= 0) & (mantissas < 2**23)])
    fields = np.arange(256, dtype=np.int64)[:, None] << 23
    bits = (fields | mantissas[None, :]).ravel()
    return np.concatenate([bits, bits | 0x80000000]).astype(np.uint32)


NEIGHBOURHOODS = tie_neighbourhoods()


def format_ties(fmt) -> np.ndarray:
    """float32 bit patterns at fmt's own rounding boundaries, ±1 float32 ulp: in every binade from
    the subnormals to emax + 1, every tie (k + ½)·2^q when fmt has ≤ 6 mantissa bits, else the
    first, last and 64 random ones; plus max, the overflow tie above it and 2·max; both signs."""
    rng = np.random.default_rng(fmt.mantissa_bits)
    m = fmt.mantissa_bits
    one_binade = np.arange(2**m) if m <= 6 else np.concatenate(  # significands j − 2^m
        [np.arange(8), 2**m - 1 - np.arange(8), rng.integers(0, 2**m, 64)])
    values = [np.ldexp(one_binade + 0.5, fmt.emin - m)]  # subnormal ties: quantum 2^(emin − m)
    for e in range(fmt.emin, fmt.emax + 2):  # binade e: ties (j + ½)·2^(e − m), 2^m ≤ j < 2^(m+1)
        values.append(np.ldexp(2**m + one_binade + 0.5, e - m))
    quantum_top = 2.0 ** (fmt.emax - m)
    values.append(np.array([fmt.max, fmt.max + quantum_top / 2, 2 * fmt.max]))
    with np.errstate(over="ignore"):  # 2·max of the widest-range formats is inf in float32
        x = np.concatenate(values).astype(np.float32)
    x = np.concatenate([x, np.nextafter(x, np.float32(0)), np.nextafter(x, np.float32(np.inf))])
    return np.concatenate([x, -x]).view(np.uint32)
SHORT_PATHS = {  # format → the path floats.rounder must pick for float32
    "bf16": (floats.BF16, "_round_carry"), "tf32": (floats.TF32, "_round_carry"),
    "e8m13": (FloatFormat(8, 13), "_round_carry"), "e8m1": (FloatFormat(8, 1), "_round_carry"),
    **{name: (fmt, "_round_magic") for name, (fmt, _) in ORACLES.items()
       if name not in ("bf16", "fp32")},
    "e5m21 (widest magic)": (FloatFormat(5, 21), "_round_magic"),
    "e4m3-ftz-sat": (FloatFormat(4, 3, subnormals=False, saturate=True), "_round_magic"),
    "e7m9b100": (FloatFormat(7, 9, bias=100), "_round_magic"),
    "e4m3 bias -92 (highest magic range)": (FloatFormat(4, 3, bias=-92), "_round_magic"),
    "e4m3 bias 123 (lowest magic range)": (FloatFormat(4, 3, bias=123), "_round_magic"),
    "e4m3 bias -93 (reference)": (FloatFormat(4, 3, bias=-93), "_round_bits"),
    "e4m3 bias 124 (reference)": (FloatFormat(4, 3, bias=124), "_round_bits"),
    "e5m22 (too wide: reference)": (FloatFormat(5, 22), "_round_bits"),
    "e8m7 sat (reference)": (FloatFormat(8, 7, saturate=True), "_round_bits"),
    "e9m7 (reference)": (FloatFormat(9, 7), "_round_bits"),
}


def path_name(fmt) -> str:
    chosen = floats.rounder(floats._F32, fmt)
    return getattr(chosen, "func", chosen).__name__


@pytest.mark.parametrize("name", list(SHORT_PATHS))
def test_short_paths_give_the_reference_rounders_bits(name):
    """Each format takes the path listed, and that path equals the integer reference _round_bits
    bit for bit on every tie neighbourhood of every float32 binade and on the format's own ties
    (all of them for ≤ 6 mantissa bits, the overflow tie included), jitted and eagerly."""
    fmt, expected_path = SHORT_PATHS[name]
    assert path_name(fmt) == expected_path
    bits = np.concatenate([NEIGHBOURHOODS, format_ties(fmt)])
    x = jnp.asarray(bits.view(np.float32))
    want = np.asarray(floats._round_bits(x, fmt))
    got = np.asarray(round_to(x, fmt))
    bad = np.flatnonzero(got.view(np.uint32) != want.view(np.uint32))  # NaN payloads included
    assert bad.size == 0, (name, bits[bad[:5]], got[bad[:5]], want[bad[:5]])
    sample = slice(None, None, bits.size // 4096)  # strided: every binade, not just the first
    with jax.disable_jit():
        eager = np.asarray(round_to(x[sample], fmt))
    assert np.array_equal(eager.view(np.uint32), got[sample].view(np.uint32))
    assert np.count_nonzero(np.abs(got[sample]) > 0) > 100  # the eager sample is not all zeros


def test_overflow_ties_are_in_the_checked_set():
    """The overflow ties a reviewer found missing: 464 (e4m3fn: 448, not NaN) and 65,520 (fp16:
    inf) are among the patterns compared above, and the paths get them right."""
    for fmt, tie, want in [(floats.FP8_E4M3FN, 464.0, 448.0), (floats.FP16, 65520.0, np.inf)]:
        assert np.float32(tie).view(np.uint32) in format_ties(fmt)
        assert float(round_to(np.float32(tie), fmt)) == want


def test_a_saturating_format_as_wide_as_the_container_still_saturates():
    """fp32 with saturate=True holds every float32 value except ±inf, which saturate to ±max: the
    identity shortcut must not take it (a reviewer's find)."""
    fmt = FloatFormat(8, 23, saturate=True)
    got = np.asarray(round_to(np.array([np.inf, -np.inf, 1.5], np.float32), fmt))
    assert got.tolist() == [fmt.max, -fmt.max, 1.5]


def magic_mutant(x, fmt, *, constant_exponent=23, clamp_low=True):
    """_round_magic with one plausible slip: C a binade off, or no clamp below emin."""
    ax = jnp.abs(x)
    binade = lax.bitcast_convert_type(
        lax.bitcast_convert_type(x, jnp.uint32) & np.uint32(0x7F800000), jnp.float32)
    low = np.float32(2.0**fmt.emin) if clamp_low else np.float32(0)
    binade = jnp.clip(binade, low, np.float32(2.0 ** (fmt.emax + 1)))
    magic = binade * np.float32(1.5 * 2.0 ** (constant_exponent - fmt.mantissa_bits))
    r = (ax + magic) - magic
    return jnp.copysign(jnp.where(r > fmt.max, np.float32(np.inf), r), x)


@pytest.mark.parametrize("slip", [dict(constant_exponent=22), dict(constant_exponent=24),
                                  dict(clamp_low=False)])
def test_mutant_magic_rounders_are_caught(slip):
    """The neighbourhood comparison above rejects a magic constant one binade off either way and
    a rounder that forgets the fixed quantum of fp16's subnormals."""
    x = jnp.asarray(NEIGHBOURHOODS.view(np.float32))
    want = np.asarray(floats._round_bits(x, floats.FP16))
    assert mismatches(np.asarray(magic_mutant(x, floats.FP16, **slip)), want).size > 0
