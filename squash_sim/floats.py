"""Floating-point formats of any exponent/mantissa width, and exact rounding to them.

A `FloatFormat` describes a binary floating-point format: 1 sign bit, `exponent_bits`, `mantissa_bits`
(the stored fraction, without the implicit leading one), a bias, and what the top of the range holds:

    nan="ieee"  the top exponent field is reserved for ±inf and NaNs (fp16, bf16, fp32, fp8 e5m2)
    nan="fn"    finite + NaN: no inf, only the all-ones pattern is NaN (fp8 e4m3fn, max 448)
    nan="fnuz"  finite + NaN, unsigned zero: NaN takes the −0 pattern, default bias 2^(e−1)
    nan="none"  every pattern is a finite number (fp6 e2m3fn, fp6 e3m2fn, fp4 e2m1fn)

`round_to(x, fmt)` rounds to nearest, ties to even (`mode=` also offers toward zero, up, down,
round-to-odd and stochastic with an explicit key: round_to's docstring; those run on the integer
reference `_round_bits`, the short paths below are nearest-even only), and returns the nearest
value of `fmt` held in x's container dtype (float32, or float64 inside `jax.enable_x64(True)`).
Two measured facts rule out `lax.reduce_precision` and naive float arithmetic:
  * XLA:CPU flushes float32 subnormals to zero in float arithmetic (1e-40 + 1e-40 == 0 under jit);
  * `lax.reduce_precision` flushes the *target's* subnormals (fp16: 1.3·2⁻²⁰ → 0, not 1.25e-6).
So the reference rounder, `_round_bits`, works on the bit pattern with integer arithmetic only. Two
shorter paths give the same bits where their arguments hold (checked on every binade's ties in the
tests and on all 2³² float32 inputs by benchmarks/bench_rounder.py); reductions are made of
roundings, so their cost is most of a simulated forward:
  * `_round_carry`, formats with float32's exponent range (bf16, tf32, e8m13): one integer addition
    on the bit pattern (~6 integer operations instead of ~40; about 3× faster);
  * `_round_magic`, formats whose every value is a float32 normal and whose smallest subnormal is
    far above float32's subnormals (fp16, every fp8/fp6/fp4): (|x| + C) − C with C = 1.5·2^(q+23),
    q the exponent of the quantum at |x|. The sum lands in C's binade, whose spacing is 2^q, so the
    float addition itself rounds |x| to the format, ties to even; the subtraction is exact.
    Flushed float32 subnormals are correct here (they round to 0 anyway), and C's product is exact,
    so a fused multiply-add cannot change a bit. Float operations run 8 lanes wide on AVX, where
    XLA's integer operations run 4: 2–6× faster than `_round_bits` (docs/benchmarks.md).
All of them are bit-identical to ml_dtypes casts (tested exhaustively on every 16-bit source) and
give the same bits under jit and eagerly.

Special values follow ml_dtypes, which the tests use as the oracle:
  * overflow (after rounding, |r| > max): ±inf for "ieee", NaN for "fn"/"fnuz", ±max for "none";
    `saturate=True` gives ±max always (and maps ±inf to ±max, like the OCP "satfinite" conversion);
  * ±inf input: ±inf for "ieee", NaN for "fn"/"fnuz", ±max for "none" or when saturating;
  * NaN input: NaN; for a format with no NaN ("none"), ml_dtypes returns a zero whose sign bit is
    the complement of the NaN's sign bit (+NaN → −0), and so do we;
  * "fnuz" has no −0: anything that rounds to zero is +0.
`subnormals=False` flushes results that would be subnormal to a signed zero after rounding (the
hardware FTZ convention); values that round up to the smallest normal are kept.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

NanStyle = Literal["ieee", "fn", "fnuz", "none"]
_NAN_STYLES = ("ieee", "fn", "fnuz", "none")


@dataclasses.dataclass(frozen=True)
class FloatFormat:
    """A binary floating-point format; see the module docstring for the `nan` styles."""

    exponent_bits: int
    mantissa_bits: int
    bias: int | None = None  # None → IEEE bias 2^(e−1) − 1, or 2^(e−1) for "fnuz"
    subnormals: bool = True
    inf: bool = True
    nan: NanStyle | None = None  # None → "ieee" when inf else "fn"
    saturate: bool = False
    name: str | None = dataclasses.field(default=None, compare=False)  # a label, not identity

    def __post_init__(self):
        for field in ("exponent_bits", "mantissa_bits"):
            value = getattr(self, field)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise TypeError(f"FloatFormat: {field} must be an int, got {type(value).__name__}")
        if not 1 <= self.exponent_bits <= 11:
            raise ValueError(f"FloatFormat: exponent_bits must be in 1..11, got {self.exponent_bits}")
        if not 1 <= self.mantissa_bits <= 52:
            raise ValueError(f"FloatFormat: mantissa_bits must be in 1..52, got {self.mantissa_bits}")
        for field in ("subnormals", "inf", "saturate"):
            if not isinstance(getattr(self, field), bool):
                raise TypeError(f"FloatFormat: {field} must be a bool, got {getattr(self, field)!r}")
        nan = self.nan if self.nan is not None else ("ieee" if self.inf else "fn")
        if nan not in _NAN_STYLES:
            raise ValueError(f"FloatFormat: nan must be one of {_NAN_STYLES}, got {self.nan!r}")
        if self.inf != (nan == "ieee"):
            raise ValueError(
                f"FloatFormat: inf={self.inf} needs nan='ieee' (inf=True) or nan in "
                f"('fn', 'fnuz', 'none') (inf=False); got nan={nan!r}"
            )
        if nan == "ieee" and self.exponent_bits < 2:
            raise ValueError("FloatFormat: an IEEE format (inf=True) needs exponent_bits >= 2")
        if nan == "fn" and self.exponent_bits == 1 and self.mantissa_bits == 1:
            raise ValueError("FloatFormat: e1m1 'fn' would have no finite value above zero")
        default_bias = 2 ** (self.exponent_bits - 1) - (0 if nan == "fnuz" else 1)
        bias = default_bias if self.bias is None else self.bias
        if not isinstance(bias, (int, np.integer)) or isinstance(bias, bool):
            raise TypeError(f"FloatFormat: bias must be an int or None, got {self.bias!r}")
        if self.name is not None and not isinstance(self.name, str):
            raise TypeError(f"FloatFormat: name must be a str or None, got {self.name!r}")
        object.__setattr__(self, "nan", nan)
        object.__setattr__(self, "bias", int(bias))
        if self.emax > 16383 or self.emin < -16382 - 52:
            raise ValueError(f"FloatFormat: bias {bias} puts the exponent range out of any float")

    # ---- derived constants (exact Python numbers) ----
    @property
    def bits(self) -> int:
        return 1 + self.exponent_bits + self.mantissa_bits

    @property
    def emin(self) -> int:
        """Exponent of the smallest normal number."""
        return 1 - self.bias

    @property
    def emax(self) -> int:
        """Exponent of the largest finite number."""
        top_field = 2**self.exponent_bits - (2 if self.nan == "ieee" else 1)
        return top_field - self.bias

    @property
    def eps(self) -> float:
        """Spacing of the format just above 1: 2^−mantissa_bits."""
        return math.ldexp(1.0, -self.mantissa_bits)

    @property
    def max(self) -> float:
        """Largest finite value. "fn" loses the all-ones mantissa of the top exponent to NaN."""
        top_mantissa = 2**self.mantissa_bits - (2 if self.nan == "fn" else 1)
        return math.ldexp(1.0 + top_mantissa / 2**self.mantissa_bits, self.emax)

    @property
    def smallest_normal(self) -> float:
        return math.ldexp(1.0, self.emin)

    @property
    def smallest_subnormal(self) -> float:
        """Smallest positive value; equals smallest_normal when the format has no subnormals."""
        if not self.subnormals:
            return self.smallest_normal
        return math.ldexp(1.0, self.emin - self.mantissa_bits)

    @property
    def has_nan(self) -> bool:
        return self.nan != "none"

    def __str__(self) -> str:
        return self.name or _spec_name(self)

    def __repr__(self) -> str:
        return f"FloatFormat({_spec_name(self)})"


def _spec_name(fmt: FloatFormat) -> str:
    name = f"e{fmt.exponent_bits}m{fmt.mantissa_bits}"
    if fmt.nan != "ieee":
        name += fmt.nan if fmt.nan in ("fn", "fnuz") else "fn"  # "none" is spelled fn (OCP)
    default = 2 ** (fmt.exponent_bits - 1) - (0 if fmt.nan == "fnuz" else 1)
    if fmt.bias != default:
        name += f"b{fmt.bias}"
    if not fmt.subnormals:
        name += "-ftz"
    if fmt.saturate:
        name += "-sat"
    return name


FP64 = FloatFormat(11, 52, name="fp64")
FP32 = FloatFormat(8, 23, name="fp32")
TF32 = FloatFormat(8, 10, name="tf32")
FP16 = FloatFormat(5, 10, name="fp16")
BF16 = FloatFormat(8, 7, name="bf16")
FP8_E4M3FN = FloatFormat(4, 3, inf=False, nan="fn", name="fp8_e4m3fn")
FP8_E5M2 = FloatFormat(5, 2, name="fp8_e5m2")
FP8_E4M3FNUZ = FloatFormat(4, 3, inf=False, nan="fnuz", name="fp8_e4m3fnuz")
FP8_E5M2FNUZ = FloatFormat(5, 2, inf=False, nan="fnuz", name="fp8_e5m2fnuz")
FP6_E2M3FN = FloatFormat(2, 3, inf=False, nan="none", name="fp6_e2m3fn")
FP6_E3M2FN = FloatFormat(3, 2, inf=False, nan="none", name="fp6_e3m2fn")
FP4_E2M1FN = FloatFormat(2, 1, inf=False, nan="none", name="fp4_e2m1fn")

NAMED: dict[str, FloatFormat] = {
    f.name: f
    for f in (FP64, FP32, TF32, FP16, BF16, FP8_E4M3FN, FP8_E5M2, FP8_E4M3FNUZ, FP8_E5M2FNUZ,
              FP6_E2M3FN, FP6_E3M2FN, FP4_E2M1FN)
}
_ALIASES = {"float64": "fp64", "float32": "fp32", "float16": "fp16", "half": "fp16",
            "bfloat16": "bf16", "e4m3fn": "fp8_e4m3fn", "e5m2": "fp8_e5m2",
            "e4m3fnuz": "fp8_e4m3fnuz", "e5m2fnuz": "fp8_e5m2fnuz", "e2m3fn": "fp6_e2m3fn",
            "e3m2fn": "fp6_e3m2fn", "e2m1fn": "fp4_e2m1fn"}
_SPEC = re.compile(r"^e(\d+)m(\d+)(fnuz|fn)?$")


def get(name: str | FloatFormat) -> FloatFormat:
    """A named format ("bf16", "fp8_e4m3fn", "float16", ...) or a spec "e5m7" (IEEE-style),
    "e4m3fn" (finite + NaN) or "e4m3fnuz". Case, '-' and '_' are ignored where they can be."""
    if isinstance(name, FloatFormat):
        return name
    if not isinstance(name, str):
        raise TypeError(f"float format name must be a str or FloatFormat, got {type(name).__name__}")
    key = name.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key in NAMED:
        return NAMED[key]
    match = _SPEC.match(key.replace("_", ""))
    if match:
        e, m, style = int(match[1]), int(match[2]), match[3]
        if style is None:
            return FloatFormat(e, m)
        return FloatFormat(e, m, inf=False, nan=style)
    raise ValueError(
        f"unknown float format {name!r}: use one of {sorted(NAMED)} or a spec like 'e5m7', "
        "'e4m3fn', 'e4m3fnuz'"
    )


def names() -> list[str]:
    return list(NAMED)


# ---------------------------------------------------------------------------------------------
# The rounder. Everything below works on the container's bit pattern with unsigned integers.


@dataclasses.dataclass(frozen=True)
class _Container:
    """The IEEE dtype that holds values while we compute: float32 or float64."""

    float_dtype: np.dtype
    uint_dtype: np.dtype
    width: int
    mantissa: int  # M: stored fraction bits
    bias: int

    @property
    def emin(self) -> int:
        return 1 - self.bias


_F32 = _Container(np.dtype(np.float32), np.dtype(np.uint32), 32, 23, 127)
_F64 = _Container(np.dtype(np.float64), np.dtype(np.uint64), 64, 52, 1023)


def _container_for(x, caller: str = "round_to") -> tuple[_Container, jax.Array]:
    # The array's own dtype: jnp.result_type would canonicalise float64 to float32 when x64 is off,
    # silently rounding twice. Python floats (and lists of them) have none and are taken as float32
    # (weak type), as JAX takes Python scalars.
    if hasattr(x, "dtype"):
        dtype = np.dtype(x.dtype)
    elif isinstance(x, float):
        dtype = np.dtype(np.float32)
    elif isinstance(x, (list, tuple)):
        try:
            array = np.asarray(x)
        except ValueError:  # ragged: numpy's "inhomogeneous shape"
            raise TypeError(f"{caller}: x must be a rectangular (nested) list of floats, got a "
                            f"ragged {type(x).__name__}") from None
        if array.dtype.kind != "f":
            raise TypeError(f"{caller}: x must be a float or a floating-point array, got a "
                            f"{type(x).__name__} of dtype {array.dtype}")
        x, dtype = array.astype(np.float32), np.dtype(np.float32)
    else:
        raise TypeError(f"{caller}: x must be a float or a floating-point array, got "
                        f"{type(x).__name__} {x!r:.60}")
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"{caller}: x must be a floating-point array, got dtype {dtype}")
    if dtype == jnp.float64:
        if not jax.config.jax_enable_x64:
            raise TypeError(f"{caller}: x is float64 but JAX float64 is off; use "
                            "jax.enable_x64(True) or pass float32")
        return _F64, jnp.asarray(x, jnp.float64)
    # float16 / bfloat16 / float8 containers widen to float32 exactly.
    return _F32, jnp.asarray(x).astype(jnp.float32)


def _format(fmt, caller: str) -> FloatFormat:
    """get(fmt), with errors that name the argument."""
    try:
        return get(fmt)
    except (TypeError, ValueError) as err:
        raise type(err)(f"{caller}: fmt: {err}") from None


def _pow2_bits(c: _Container, exponent: int) -> int:
    """Bit pattern of 2^exponent in the container (0 below its smallest subnormal, inf above)."""
    if exponent > c.bias:
        return ((2 * c.bias + 1) << c.mantissa)  # +inf
    if exponent >= c.emin:
        return (exponent + c.bias) << c.mantissa
    if exponent >= c.emin - c.mantissa:
        return 1 << (exponent - (c.emin - c.mantissa))
    return 0


def _float_bits(c: _Container, value: float) -> int:
    """Bit pattern of a positive Python float that the container holds exactly (or +inf)."""
    if value > float(np.finfo(c.float_dtype).max):
        return _pow2_bits(c, c.bias + 1)
    return int(np.array(value, c.float_dtype).view(c.uint_dtype))


# Rounding modes: the name round_to takes, then the short names it also accepts.
MODES = ("nearest", "toward_zero", "up", "down", "odd", "stochastic")
_MODE_ALIASES = {"rne": "nearest", "nearest_even": "nearest", "rz": "toward_zero",
                 "truncate": "toward_zero", "ru": "up", "rd": "down", "ro": "odd",
                 "sr": "stochastic"}


def rounding_mode(mode: str, caller: str = "round_to") -> str:
    """The canonical name of a rounding mode (MODES, or an alias such as "rz", "ro", "sr")."""
    if not isinstance(mode, str):
        raise TypeError(f"{caller}: mode must be a str, got {type(mode).__name__}")
    key = mode.strip().lower().replace("-", "_")
    key = _MODE_ALIASES.get(key, key)
    if key not in MODES:
        raise ValueError(f"{caller}: mode must be one of {', '.join(MODES)} (or "
                         f"{', '.join(_MODE_ALIASES)}), got {mode!r}")
    return key


def round_to(x, fmt: FloatFormat | str, mode: str = "nearest", key=None) -> jax.Array:
    """Round x to `fmt` by `mode`, held in float32 (float64 for float64 x).

    mode  "nearest"      nearest, ties to even (the default; the only mode of the short paths)
          "toward_zero"  truncate the magnitude (RZ)
          "up", "down"   toward +inf / −inf (RU / RD)
          "odd"          round to odd: truncate, and set the last kept bit if anything was dropped
          "stochastic"   up in magnitude with probability (distance to the value below) / quantum,
                         from `key` (a jax.random key; required, and the same key gives the same
                         bits): W = the container's width (32 or 64) uniform random bits r per
                         element, drawn as jax.random.bits(key, x.shape, uint32/uint64); the
                         magnitude rounds up iff r < ⌊f·2^W⌋, f the dropped fraction of a quantum
                         (exactly f when the dropped bits number ≤ W).
    Overflow follows IEEE 754 §7.4: the result is ±max where the mode rounds toward zero there
    (toward_zero, odd, up for negatives, down for positives), else what nearest gives (±inf for
    "ieee" formats, NaN for "fn"/"fnuz", ±max for "none" or saturating formats). Infinite and NaN
    inputs, subnormal flushing and "fnuz" zeros are handled as by nearest (module docstring).

    Identical bits under jit and eagerly, whichever path rounds (module docstring). Results that
    `fmt` holds but the container does not (e.g. 2^128 from fp32 max rounded to an e9 format) come
    back as ±inf, as any float32 would hold them.
    """
    fmt = _format(fmt, "round_to")
    mode = rounding_mode(mode)
    c, x = _container_for(x, "round_to")
    if mode != "stochastic":
        if key is not None:
            raise ValueError(f"round_to: key is only used by mode='stochastic', not {mode!r}")
        return rounder(c, fmt, mode)(x)
    if key is None:
        raise ValueError("round_to: mode='stochastic' needs key= (a jax.random key), so that the "
                         "same key gives the same bits")
    random_bits = jax.random.bits(key, x.shape, c.uint_dtype)
    return _round_bits(x, fmt, "stochastic", random_bits)


def rounder(c: "_Container", fmt: FloatFormat, mode: str = "nearest"):
    """The function that rounds container-`c` arrays to `fmt` by a deterministic `mode`: the
    shortest exact path (nearest-even has three; the other modes use the integer reference)."""
    if (fmt.mantissa_bits >= c.mantissa and fmt.emin <= c.emin and fmt.emax >= c.bias
            and fmt.nan == "ieee" and fmt.subnormals and not fmt.saturate):
        return lambda x: x  # fmt holds every container value (fp32 or fp64 on float32)
    if mode != "nearest":
        return functools.partial(_round_bits, fmt=fmt, mode=mode)
    if c is _F32 and _carry_applies(fmt):
        return functools.partial(_round_carry, mantissa_bits=fmt.mantissa_bits)
    if c is _F32 and _magic_applies(fmt):
        return functools.partial(_round_magic, fmt=fmt)
    return functools.partial(_round_bits, fmt=fmt)


def _carry_applies(fmt: FloatFormat) -> bool:
    """float32's exponent range, subnormals and inf/NaN, fewer mantissa bits."""
    return (fmt.exponent_bits == 8 and fmt.bias == 127 and fmt.nan == "ieee" and fmt.subnormals
            and not fmt.saturate and fmt.mantissa_bits < 23)


def _magic_applies(fmt: FloatFormat) -> bool:
    """The conditions _round_magic's argument needs (module docstring), each tight (a reviewer
    found differences one step past every bound):
    m ≤ 21           |x| < 2^(e+1) = 2^(q+m+1) in its (clamped) binade, so |x| + 1.5·2^(q+23) stays
                     below 2^(q+24), inside C's binade: the addition rounds at the quantum 2^q;
    emin − m ≥ −125  half the smallest subnormal is ≥ 2^−126: float32 subnormals (flushed by
                     XLA:CPU) round to zero in fmt as well;
    emax ≤ 103 + m   C = 1.5·2^(emax+1−m+23) is a finite float32."""
    m = fmt.mantissa_bits
    return m <= 21 and fmt.emin - m >= -125 and fmt.emax <= 103 + m


@functools.partial(jax.jit, static_argnames=("fmt", "mode"))
def _round_bits(x, fmt: FloatFormat, mode: str = "nearest", random_bits=None):
    """The rounder proper, every mode (round_to's docstring); jitted so that a model with hundreds
    of rounding points traces it once per (shape, format, mode) and reuses it. `random_bits`
    (stochastic only): an unsigned array of x's shape and the container's width."""
    c = _F64 if x.dtype == jnp.float64 else _F32
    ut = c.uint_dtype
    M = c.mantissa

    def u(v):  # an unsigned constant of the container width (a NumPy literal: free to trace)
        return np.asarray(v, ut)

    bits = lax.bitcast_convert_type(x, ut)
    sign = bits & u(1 << (c.width - 1))
    a = bits & u((1 << (c.width - 1)) - 1)  # |x| as bits
    inf_bits = (2 * c.bias + 1) << M
    is_nan = a > u(inf_bits)
    is_inf = a == u(inf_bits)

    field = (a >> u(M)).astype(jnp.int32)  # biased exponent of the container
    significand = (a & u((1 << M) - 1)) | jnp.where(field > 0, u(1 << M), u(0))  # value = S·2^lsb
    lsb_exponent = jnp.maximum(field, 1) - (c.bias + M)
    if fmt.emin >= c.emin:
        # Container subnormals lie below fmt's normal range: their quantum is fmt's subnormal one.
        leading_exponent = jnp.where(field > 0, field - c.bias, fmt.emin)
    else:
        # fmt reaches lower than the container: find the leading bit of a container subnormal.
        top_bit = (c.width - 1) - lax.clz(significand).astype(jnp.int32)
        leading_exponent = jnp.where(field > 0, field - c.bias, c.emin - M + top_bit)
    quantum_exponent = jnp.maximum(leading_exponent, fmt.emin) - fmt.mantissa_bits
    drop = quantum_exponent - lsb_exponent  # how many low bits of S round away

    # Round S to a multiple of 2^drop. With drop clamped to M+1 the quotient q is 0 and the
    # remainder all of S; past M+1 the value is below half of fmt's smallest quantum, which
    # nearest rounds to zero and the other modes to 0 or that quantum.
    d = jnp.clip(drop, 0, M + 1).astype(ut)
    one = u(1)
    half = (one << d) >> one
    remainder = significand & ((one << d) - one)
    q = significand >> d
    negative = sign != u(0)
    inexact = remainder != u(0)
    tiny = drop > M + 1
    if mode == "nearest":
        round_up = (remainder > half) | ((remainder == half) & ((q & one) == one) & (d > u(0)))
        round_up = round_up & ~tiny  # d was clamped: S is below the true half quantum
    elif mode == "toward_zero":
        round_up = jnp.zeros(x.shape, bool)
    elif mode == "up":
        round_up = inexact & ~negative
    elif mode == "down":
        round_up = inexact & negative
    elif mode == "odd":
        round_up = inexact & ((q & one) == u(0))
    elif mode == "stochastic":
        # ⌊remainder / 2^drop · 2^W⌋ (remainder < 2^drop; below the top quantum it is all of S).
        W = c.width
        drop0 = jnp.maximum(drop, 0)
        fraction = jnp.where(drop0 <= W,
                             remainder << jnp.clip(W - drop0, 0, W - 1).astype(ut),
                             remainder >> jnp.clip(drop0 - W, 0, W - 1).astype(ut))
        round_up = random_bits.astype(ut) < fraction
    else:
        raise ValueError(f"_round_bits: unknown mode {mode!r}")
    rounded = (q + round_up.astype(ut)) << d
    # Put the rounded significand back over the container's exponent. A carry out of the
    # significand moves into the exponent field, which is exactly the next binade.
    r = (a - significand) + rounded
    smallest_quantum = u(_pow2_bits(c, fmt.emin - fmt.mantissa_bits))  # a container normal there
    r = jnp.where(tiny, jnp.where(round_up, smallest_quantum, u(0)),
                  jnp.where(rounded == u(0), u(0), r))

    if not fmt.subnormals:
        min_normal = _pow2_bits(c, fmt.emin)
        r = jnp.where(r < u(min_normal), u(0), r)

    max_bits = _float_bits(c, fmt.max)
    if fmt.saturate or fmt.nan == "none":
        overflow = u(max_bits)
    elif fmt.nan == "ieee":
        overflow = u(inf_bits)
    else:
        overflow = u(inf_bits | (1 << (M - 1)))  # quiet NaN
    inf_result = overflow if fmt.nan != "ieee" or fmt.saturate else u(inf_bits)  # every mode
    if mode in ("toward_zero", "odd"):
        overflow = u(max_bits)
    elif mode in ("up", "down"):  # ±max where the direction points toward zero (IEEE 754 §7.4)
        overflow = jnp.where(negative == (mode == "up"), u(max_bits), overflow)
    r = jnp.where(r > u(max_bits), overflow, r)
    r = jnp.where(is_inf, inf_result, r)

    if fmt.nan == "fnuz":
        sign = jnp.where(r == u(0), u(0), sign)  # no negative zero
    out = r | sign
    if fmt.has_nan:
        out = jnp.where(is_nan, bits, out)
    else:
        out = jnp.where(is_nan, sign ^ u(1 << (c.width - 1)), out)  # ml_dtypes: NaN → ∓0
    return lax.bitcast_convert_type(out, c.float_dtype)


@functools.partial(jax.jit, static_argnames="mantissa_bits")
def _round_carry(x, mantissa_bits: int):
    """Round-to-nearest-even of a float32 to `mantissa_bits`, float32's exponent range: add half a
    quantum minus one plus the kept lowest bit, then clear the dropped bits. A carry into the
    exponent is the next binade, past the top it is inf; subnormals share float32's quantum."""
    drop = 23 - mantissa_bits
    bits = lax.bitcast_convert_type(x, jnp.uint32)
    lsb = (bits >> np.uint32(drop)) & np.uint32(1)
    keep = np.uint32(~((1 << drop) - 1) & 0xFFFFFFFF)
    rounded = (bits + np.uint32((1 << (drop - 1)) - 1) + lsb) & keep
    is_nan = (bits & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
    return lax.bitcast_convert_type(jnp.where(is_nan, bits, rounded), jnp.float32)


@functools.partial(jax.jit, static_argnames="fmt")
def _round_magic(x, fmt: FloatFormat):
    """float32 x rounded to fmt with float arithmetic (module docstring; `_magic_applies` says when).
    Special values follow `_round_bits` exactly."""
    m = fmt.mantissa_bits
    ax = jnp.abs(x)
    # 2^floor(log2|x|) by masking the exponent field (0 for zeros and flushed subnormals, inf for
    # inf/NaN), clamped to the binades whose quantum we need: below emin the quantum is fixed,
    # above emax + 1 everything overflows anyway.
    binade = lax.bitcast_convert_type(
        lax.bitcast_convert_type(x, jnp.uint32) & np.uint32(0x7F800000), jnp.float32)
    binade = jnp.clip(binade, np.float32(2.0**fmt.emin), np.float32(2.0 ** (fmt.emax + 1)))
    magic = binade * np.float32(1.5 * 2.0 ** (23 - m))  # 1.5·2^(q+23), q = e − m: exact
    r = (ax + magic) - magic  # the addition rounds |x| at 2^q, ties to even; the subtraction is exact

    fmt_max = np.float32(fmt.max)
    overflow = r > fmt_max  # also above 2^(emax+2), where C was clamped: there r ≥ |x|(1 − 2^−23)
    if fmt.saturate or fmt.nan == "none":
        overflow_value = fmt_max
    elif fmt.nan == "ieee":
        overflow_value = np.float32(np.inf)
    else:
        overflow_value = np.float32(np.nan)  # quiet NaN, as _round_bits
    r = jnp.where(overflow, overflow_value, r)
    if not fmt.subnormals:
        r = jnp.where(r < np.float32(fmt.smallest_normal), np.float32(0), r)
    out = jnp.copysign(r, x)  # RNE is symmetric; tiny negatives round to −0
    if fmt.nan == "fnuz":
        out = jnp.where(r == 0, np.float32(0), out)  # no negative zero
    is_nan = jnp.isnan(x)
    if fmt.has_nan:
        return jnp.where(is_nan, x, out)  # the NaN's own bits
    return jnp.where(is_nan, jnp.copysign(np.float32(0), -x), out)  # ml_dtypes: NaN → ∓0


def spacing(x, fmt: FloatFormat | str) -> jax.Array:
    """Distance from |x| to the next larger value of `fmt` in x's binade: 2^(max(e_x, emin) − m).

    0 gives the smallest subnormal spacing; values beyond `fmt.max` give the top binade's spacing;
    inf and NaN give NaN. The result is held in x's container and may underflow to 0 for formats
    finer than it.
    """
    fmt = _format(fmt, "spacing")
    c, x = _container_for(x, "spacing")
    ut = c.uint_dtype
    M = c.mantissa
    a = lax.bitcast_convert_type(x, ut) & jnp.asarray((1 << (c.width - 1)) - 1, ut)
    field = (a >> jnp.asarray(M, ut)).astype(jnp.int32)
    if fmt.emin >= c.emin:
        leading_exponent = jnp.where(field > 0, field - c.bias, fmt.emin)
    else:
        top_bit = (c.width - 1) - lax.clz(a).astype(jnp.int32)
        leading_exponent = jnp.where(field > 0, field - c.bias, c.emin - M + top_bit)
    exponent = jnp.clip(leading_exponent, fmt.emin, fmt.emax) - fmt.mantissa_bits
    if not fmt.subnormals:
        exponent = jnp.where(a == 0, fmt.emin, exponent)
    # 2^exponent as bits, through the container's normal and subnormal ranges.
    normal = ((exponent + c.bias).astype(ut)) << jnp.asarray(M, ut)
    sub_shift = jnp.clip(exponent - (c.emin - M), 0, M - 1).astype(ut)
    subnormal = jnp.where(exponent >= c.emin - M, jnp.asarray(1, ut) << sub_shift,
                          jnp.asarray(0, ut))
    out = jnp.where(exponent >= c.emin, normal, subnormal)
    out = lax.bitcast_convert_type(out, c.float_dtype)
    return jnp.where(field > 2 * c.bias, jnp.nan, out)
