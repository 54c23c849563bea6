"""Tensor-core arithmetic: block fused multiply-add models that reproduce NVIDIA hardware bit for bit.

One tensor-core MMA instruction computes d = a·b + c over vectors of K products. Real hardware does
not round each addition to nearest (squash_sim.accumulate's models); Khattak & Mikaitis, *Accurate
Models of NVIDIA Tensor Cores* (arXiv 2512.07004, 2025), measured what it does instead. This module
is written from that published description and fitted to their hardware outputs
(../shared/hardware/tensor_cores; docs/precision_hardware.md, "Tensor cores, bit for bit"):

  1. products are exact and unnormalised: a·b has exponent e_a + e_b (each input's exponent, its
     format's emin for subnormals) and an integer significand M_a·M_b;
  2. a fused group of G products and the accumulator input c are aligned to the largest exponent
     E among them (zero terms take no part): each term keeps 23 + X fraction bits below 2^E
     (fp32's 23, X the "extra alignment bits"; negative: fewer), and its lower bits are truncated
     toward zero (sign-magnitude);
  3. the exact sum of the truncated terms is normalised and rounded once: toward zero to fp32
     (fp32 output; H100 fp8 to 13 fraction bits); for fp16 output, c is rounded to fp16 first
     and the fp32 result rounded again to nearest-even fp16 (B200: the exact sum rounded once);
     subnormals are kept;
  4. a dot product longer than G adds successive groups: d ← group(products, d), d held in the
     output format (c is the first d);
  5. fp8 MMAs of 32 products on B200, and on H100 with fp16 output, differ (measured; the
     published model does not say how c enters or how the groups interleave): the products go,
     in adjacent pairs, to two interleaved groups of 16 (0, 1, 4, 5, … and 2, 3, 6, 7, …) with
     X = 2; the first group's sum (from 0) is rounded, then aligned and summed with the second
     group's products and rounded again (toward zero to fp32, or nearest-even to fp16 for fp16
     output); c is added after, in one addition rounded to nearest-even in the output format.

Everything is integer arithmetic: the aligned terms and their sum are uint32 where they fit
(`_narrow`: positive and negative parts summed apart) and int64 otherwise, under a scoped
`jax.enable_x64(True)` that touches nothing outside it (the arrays coming in and going out are
float32), so the model runs under jit, inside scans, on any backend, and gives the same bits
eagerly. Non-finite inputs (never in the measured data) give what float32 arithmetic gives.

Validated (tests/test_hardware.py): every row of every measured file, 22 GPU × input × output
formats × 5,000 rows, bit for bit. The parameters that differ from the published ones, and how
they were found, are in docs/precision_hardware.md. (H100 fp8 with fp32 output was measured from
c = 0 only: c's place in its group is assumed, as in the published model.)

Entry points: `mma(a, b, c, gpu="h100", input_format="bf16", output_format="fp32")` over rows of
K-vectors; `einsum(spec, a, b, tensor_core("h100", "bf16"))` for every contraction of a forward
(the precision policies "bf16+tc:h100", ...: squash_sim.precision); `validate(folder)` against
measured data.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from squash_sim import floats
from squash_sim.floats import FloatFormat

GPUS = ("v100", "a100", "h100", "b200")
OUTPUTS = {"fp32": floats.FP32, "fp16": floats.FP16}
# Tensor-core vocabulary where floats.get reads a name otherwise (it has every other alias,
# e5m2 among them): NVIDIA's "e4m3" and "fp8" are e4m3fn, floats' "e4m3" the IEEE-style spec.
_INPUT_ALIASES = {"e4m3": "fp8_e4m3fn", "fp8": "fp8_e4m3fn"}


@dataclasses.dataclass(frozen=True)
class TensorCore:
    """One GPU's MMA for one input format (the module docstring's steps).

    group        G, products fused per alignment (with the accumulator input)
    extra_bits   X, bits kept below the output precision when aligning (may be negative)
    k            the MMA instruction's vector length (the measured data's K); informative
    accumulator  the format a group's exact sum is rounded to before it leaves the adder: fp32,
                 or e8m13 (14 significant bits) for H100 fp8 (found from the data: 100 %)
    fp32_rounding  the final rounding of a group's exact sum ("toward_zero" or "nearest")
    fp16_exact   fp16 output: c enters rounded to fp16; False: each group's fp32 result (above) is
                 rounded again to fp16, nearest-even (V100, A100, H100); True: the exact sum is
                 rounded once to fp16, nearest-even (B200). What the measured fp16 d need.
    split        an MMA of G·split products deals them, in adjacent pairs, into `split`
                 interleaved groups (products 0, 1, 4, 5, … and 2, 3, 6, 7, … for 2), summed one
                 after the other, the first group's rounded sum entering the second's alignment
                 (fp8 on B200, and on H100 with fp16 output: 2)
    late_c       the group sums start from 0 and c (the previous MMA's d) is added after them, in
                 one addition rounded to nearest-even in the output format; for fp16 output each
                 group's sum is rounded to nearest-even fp16 (fp8, where measured)
    fp16         the model for fp16 output where it differs from this one (H100 fp8), else None
    """

    gpu: str
    input_format: FloatFormat
    group: int
    extra_bits: int
    k: int
    accumulator: FloatFormat = floats.FP32
    fp16_exact: bool = False
    fp32_rounding: str = "toward_zero"
    split: int = 1
    late_c: bool = False
    fp16: TensorCore | None = None

    def __str__(self) -> str:
        return f"{self.gpu}/{self.input_format}"

    @property
    def mma_length(self) -> int:
        """Products per MMA: a dot product is a chain of MMAs of this many (zero-padded)."""
        return self.group * self.split


def _presets() -> dict[tuple[str, str], TensorCore]:
    f16, b16, t32, e4, e5 = (floats.FP16, floats.BF16, floats.TF32, floats.FP8_E4M3FN,
                             floats.FP8_E5M2)
    e8m13 = FloatFormat(8, 13)
    rz = "toward_zero"
    rows = [  # gpu, input, G, X, K, accumulator, final rounding (fp32 out)
        ("v100", f16, 4, 0, 4, floats.FP32, rz),
        ("a100", f16, 8, 1, 8, floats.FP32, rz), ("a100", b16, 8, 1, 8, floats.FP32, rz),
        ("a100", t32, 4, 1, 4, floats.FP32, rz),
        ("h100", f16, 16, 2, 16, floats.FP32, rz), ("h100", b16, 16, 2, 16, floats.FP32, rz),
        ("h100", t32, 8, 2, 4, floats.FP32, rz),
        ("b200", f16, 16, 2, 16, floats.FP32, rz), ("b200", b16, 16, 2, 16, floats.FP32, rz),
        ("b200", t32, 8, 2, 4, floats.FP32, rz),
    ]
    presets = {(gpu, fmt.name): TensorCore(gpu, fmt, g, x, k, accumulator=acc, fp32_rounding=mode,
                                           fp16_exact=gpu == "b200")
               for gpu, fmt, g, x, k, acc, mode in rows}
    for fmt in (e4, e5):
        # fp8 (docs/precision_hardware.md, "Tensor cores, bit for bit"): as published, two
        # interleaved groups of 16 with 2 extra bits, toward zero (B200); c is added after them,
        # rounded to nearest, which the published model does not say and the data need.
        fp8 = TensorCore("b200", fmt, 16, 2, 32, split=2, late_c=True)
        presets[("b200", fmt.name)] = fp8
        # H100, fp32 output: one fused group of 32, −10 bits, the sum truncated to e8m13, c in the
        # group (the data started from c = 0). fp16 output: the B200 model.
        presets[("h100", fmt.name)] = TensorCore("h100", fmt, 32, -10, 32, accumulator=e8m13,
                                                 fp16=dataclasses.replace(fp8, gpu="h100"))
    return presets


PRESETS: dict[tuple[str, str], TensorCore] = _presets()


def preset(gpu: str, input_format: str | FloatFormat = "bf16") -> TensorCore:
    """The TensorCore of a GPU ("v100", "a100", "h100", "b200") for an input format."""
    if not isinstance(gpu, str) or gpu.strip().lower() not in GPUS:
        raise ValueError(f"hardware: gpu must be one of {', '.join(GPUS)}, got {gpu!r}")
    gpu = gpu.strip().lower()
    if isinstance(input_format, str):
        input_format = _INPUT_ALIASES.get(input_format.strip().lower(), input_format)
    try:
        fmt = floats.get(input_format)
    except (TypeError, ValueError) as err:
        raise type(err)(f"hardware: input_format: {err}") from None
    core = PRESETS.get((gpu, fmt.name))
    if core is None:
        known = sorted(name for g, name in PRESETS if g == gpu)
        raise ValueError(f"hardware: {gpu} has no tensor-core model for input format {fmt}; "
                         f"use one of {', '.join(known)}")
    return core


def _output(output_format) -> FloatFormat:
    key = output_format if isinstance(output_format, str) else getattr(output_format, "name", None)
    if key not in OUTPUTS:
        raise ValueError(f"hardware: output_format must be 'fp32' or 'fp16', got {output_format!r}")
    return OUTPUTS[key]


# ---- the integer core -----------------------------------------------------------------------


def _decompose(x, emin, mantissa_bits):
    """float32 values of a format (emin, mantissa_bits: ints or traced int32) → (negative,
    exponent, integer significand M) with x = ±M·2^(e − m), e = max(⌊log₂|x|⌋, emin). int32
    parts; M = 0 for zeros."""
    bits = lax.bitcast_convert_type(x, jnp.uint32)
    negative = (bits >> np.uint32(31)) == np.uint32(1)
    field = ((bits >> np.uint32(23)) & np.uint32(0xFF)).astype(jnp.int32)
    significand = ((bits & np.uint32(0x7FFFFF))
                   | jnp.where(field > 0, np.uint32(1 << 23), np.uint32(0))).astype(jnp.int32)
    leading = jnp.maximum(field, 1) - 127  # float32 subnormals: below any format's emin here
    exponent = jnp.maximum(leading, emin)
    shift = (exponent - mantissa_bits) - (jnp.maximum(field, 1) - 150)  # ≥ 0: x is in the format
    return negative, exponent, significand >> jnp.clip(shift, 0, 31)


def _shift(value, right):
    """value · 2^(−right), truncated toward zero (value ≥ 0, int64; right any int64)."""
    down = value >> jnp.clip(right, 0, 63)
    up = value << jnp.clip(-right, 0, 62)
    return jnp.where(right >= 0, down, up)


def _round_sum(total, quantum_exp, p):
    """The exact value total·2^quantum_exp (int64) rounded to the accumulator format of the
    parameters p (_parameters: traced int32 scalars) toward zero or to nearest-even → float32
    bits (uint32)."""
    negative = total < 0
    magnitude = jnp.abs(total)
    length = 64 - lax.clz(magnitude)  # bit length; 0 for zero
    lead = quantum_exp + length - 1
    q = jnp.maximum(lead, p["acc_emin"]) - p["acc_m"]  # the result quantum's exponent
    drop = q - quantum_exp
    kept = _shift(magnitude, drop)  # truncated
    d = jnp.clip(drop, 1, 62)
    remainder = magnitude & ((jnp.int64(1) << d) - 1)
    half = jnp.int64(1) << (d - 1)
    up = (remainder > half) | ((remainder == half) & ((kept & 1) == 1))
    up = up & (drop > 0) & (drop < 63) & (p["nearest"] == 1)
    kept = kept + up.astype(jnp.int64)
    # kept·2^q as float32 bits: kept < 2^(m+2) (2^(m+1) after a carry, a power of two).
    klen = 64 - lax.clz(kept)
    top = q + klen - 1  # exponent of the result's leading bit
    normal_bits = (((top + 127).astype(jnp.int64) << 23)
                   | (_shift(kept, klen - 24) & ((1 << 23) - 1)))
    subnormal_bits = _shift(kept, -(q + 149))  # q ≥ −149 below float32's normal range
    bits = jnp.where(top >= -126, normal_bits, subnormal_bits)
    overflow_bits = jnp.where(p["nearest"] == 1, 0x7F800000, p["acc_max_bits"].astype(jnp.int64))
    bits = jnp.where(top > p["acc_emax"], overflow_bits, bits)
    bits = jnp.where(kept == 0, 0, bits)
    bits = bits | jnp.where(negative, 1 << 31, 0)
    return bits.astype(jnp.uint32)


def _group_sum(neg, exp, sig, c, p):
    """d = group(products, c) for one fused group, in fp32 (module docstring, steps 2–3):
    products ±sig·2^(exp − 2m) (int64 sig), c float32."""
    c_neg, c_exp, c_sig = _decompose(c, floats.FP32.emin, 23)
    c_sig = c_sig.astype(jnp.int64)
    none = jnp.int32(-(1 << 20))
    p_exp = jnp.where(sig != 0, exp, none)
    top = jnp.maximum(jnp.max(p_exp, axis=-1), jnp.where(c_sig != 0, c_exp, none))  # E (...)
    quantum = (top - p["keep"]).astype(jnp.int64)  # the kept bits' lowest weight
    frac_bits = 2 * p["in_m"]
    p_terms = _shift(sig, quantum[..., None] - (exp - frac_bits).astype(jnp.int64))
    c_term = _shift(c_sig, quantum - (c_exp - 23).astype(jnp.int64))
    total = (jnp.sum(jnp.where(neg, -p_terms, p_terms), axis=-1)
             + jnp.where(c_neg, -c_term, c_term))
    return lax.bitcast_convert_type(_round_sum(total, quantum, p), jnp.float32)


# ---- the same in 32 bits, where every term and the sum fit ------------------------------------
# With G products below 2^(keep+2) and c below 2^(keep+1), the positive and the negative terms
# each sum below 2^32 when G·2^(keep+2) + 2^(keep+1) < 2^32 (every fp16/bf16/tf32 model with fp32
# output, and every fp8 model): two uint32 sums and one subtraction give the exact total, at about
# twice the speed of int64 on a CPU (benchmarks/bench_tensor_cores.py). The same bits (tested on
# the measured data, which the test checks through both paths).


def _shift32(value, right):
    """value · 2^(−right), truncated (value uint32; right int32)."""
    down = value >> jnp.clip(right, 0, 31).astype(jnp.uint32)
    up = value << jnp.clip(-right, 0, 31).astype(jnp.uint32)
    return jnp.where(right >= 0, down, up)


def _round_sum32(magnitude, negative, quantum_exp, p):
    """_round_sum for a uint32 magnitude and its sign → float32 bits (uint32)."""
    length = 32 - lax.clz(magnitude).astype(jnp.int32)
    lead = quantum_exp + length - 1
    q = jnp.maximum(lead, p["acc_emin"]) - p["acc_m"]
    drop = q - quantum_exp
    kept = _shift32(magnitude, drop)
    d = jnp.clip(drop, 1, 31).astype(jnp.uint32)
    one = np.uint32(1)
    remainder = magnitude & ((one << d) - one)
    half = one << (d - one)
    up = (remainder > half) | ((remainder == half) & ((kept & one) == one))
    up = up & (drop > 0) & (drop < 32) & (p["nearest"] == 1)
    kept = kept + up.astype(jnp.uint32)
    klen = 32 - lax.clz(kept).astype(jnp.int32)
    top = q + klen - 1
    normal_bits = (((top + 127).astype(jnp.uint32) << np.uint32(23))
                   | (_shift32(kept, klen - 24) & np.uint32((1 << 23) - 1)))
    subnormal_bits = _shift32(kept, -(q + 149))
    bits = jnp.where(top >= -126, normal_bits, subnormal_bits)
    overflow_bits = jnp.where(p["nearest"] == 1, np.uint32(0x7F800000),
                              p["acc_max_bits"].astype(jnp.uint32))
    bits = jnp.where(top > p["acc_emax"], overflow_bits, bits)
    bits = jnp.where(kept == 0, np.uint32(0), bits)
    return bits | jnp.where(negative, np.uint32(1 << 31), np.uint32(0))


def _group_sum32(neg, exp, sig, c, p):
    """_group_sum with uint32 terms (sig: uint32 products)."""
    c_neg, c_exp, c_sig = _decompose(c, floats.FP32.emin, 23)
    c_sig = c_sig.astype(jnp.uint32)
    none = jnp.int32(-(1 << 20))
    p_exp = jnp.where(sig != 0, exp, none)
    top = jnp.maximum(jnp.max(p_exp, axis=-1), jnp.where(c_sig != 0, c_exp, none))
    quantum = top - p["keep"]
    p_terms = _shift32(sig, quantum[..., None] - (exp - 2 * p["in_m"]))
    c_term = _shift32(c_sig, quantum - (c_exp - 23))
    zero = np.uint32(0)
    positive = jnp.sum(jnp.where(neg, zero, p_terms), axis=-1) + jnp.where(c_neg, zero, c_term)
    negative = jnp.sum(jnp.where(neg, p_terms, zero), axis=-1) + jnp.where(c_neg, c_term, zero)
    below = negative > positive
    magnitude = jnp.where(below, negative - positive, positive - negative)
    return lax.bitcast_convert_type(_round_sum32(magnitude, below, quantum, p), jnp.float32)


def _add_nearest32(x, y, p):
    """x + y (float32 values) rounded once to nearest-even in the output format (p's out_*): a
    late c's addition (TensorCore.late_c). Both are aligned to the larger exponent with 3 bits
    more than fp32 and a sticky bit, which round a two-term sum exactly as its exact value."""
    x_neg, x_exp, x_sig = _decompose(x, floats.FP32.emin, 23)
    y_neg, y_exp, y_sig = _decompose(y, floats.FP32.emin, 23)
    none = jnp.int32(-(1 << 20))
    top = jnp.maximum(jnp.where(x_sig != 0, x_exp, none), jnp.where(y_sig != 0, y_exp, none))

    def term(sig, exp):  # sig·2^(exp − 23) in units of 2^(top − 26), the lost bits as a sticky 1
        sig = sig.astype(jnp.uint32) << np.uint32(3)  # < 2^27
        right = jnp.clip(top - exp, 0, 31).astype(jnp.uint32)
        lost = (sig & ((np.uint32(1) << right) - np.uint32(1))) != np.uint32(0)
        return (sig >> right) | lost.astype(jnp.uint32)

    x_term, y_term = term(x_sig, x_exp), term(y_sig, y_exp)
    zero = np.uint32(0)
    positive = jnp.where(x_neg, zero, x_term) + jnp.where(y_neg, zero, y_term)
    negative = jnp.where(x_neg, x_term, zero) + jnp.where(y_neg, y_term, zero)
    below = negative > positive
    magnitude = jnp.where(below, negative - positive, positive - negative)
    out = dict(acc_m=p["out_m"], acc_emin=p["out_emin"], acc_emax=p["out_emax"],
               acc_max_bits=p["out_max_bits"], nearest=np.int32(1))
    bits = _round_sum32(magnitude, below, top - 26, out)
    return lax.bitcast_convert_type(bits, jnp.float32)


def _narrow(core: TensorCore, out: FloatFormat) -> bool:
    """Whether the 32-bit path holds this model's terms and sums exactly (comment above)."""
    keep = int(_parameters(core, out)["keep"])
    return core.group * 2 ** (keep + 2) + 2 ** (keep + 1) < 2**32


def _products(a_sig, b_sig, narrow: bool):
    if narrow:
        return a_sig.astype(jnp.uint32) * b_sig.astype(jnp.uint32)  # < 2^22
    return a_sig.astype(jnp.int64) * b_sig.astype(jnp.int64)


# B200's fp16 output shows no truncation (the exact a·b + c, c rounded to fp16 first, rounded once
# to nearest-even fp16 matches every row; the fp32 path misses one): terms are then kept to 55 bits
# below the largest exponent, the most int64 holds for 33 terms.
EXACT_KEEP = 55


def _for_output(core: TensorCore, out: FloatFormat) -> TensorCore:
    """The model that computes `out`: core.fp16 for fp16 output where it has one."""
    return core.fp16 if out is floats.FP16 and core.fp16 is not None else core


def _parameters(core: TensorCore, out: FloatFormat = floats.FP32) -> dict:
    """A model's numbers as int32 scalars: traced, so that every model of the same group shape
    shares one compiled program (the hardware test compiles a handful, not 22). `core` is the
    model for `out` (_for_output)."""
    if core.fp32_rounding not in ("nearest", "toward_zero"):
        raise ValueError(f"hardware: final rounding {core.fp32_rounding!r} is not modelled")
    fp16 = out is floats.FP16 and (core.fp16_exact or core.late_c)
    acc = floats.FP16 if fp16 else core.accumulator
    exact = fp16 and not core.late_c
    keep = EXACT_KEEP if exact else min(23 + core.extra_bits, EXACT_KEEP)
    values = dict(in_m=core.input_format.mantissa_bits, in_emin=core.input_format.emin,
                  keep=keep, acc_m=acc.mantissa_bits, acc_emin=acc.emin,
                  acc_emax=acc.emax, acc_max_bits=int(np.float32(acc.max).view(np.uint32)),
                  nearest=int(fp16 or core.fp32_rounding == "nearest"),
                  out_m=out.mantissa_bits, out_emin=out.emin, out_emax=out.emax,
                  out_max_bits=int(np.float32(out.max).view(np.uint32)))
    return {name: np.int32(value) for name, value in values.items()}


def _interleaved(x, group: int, split: int):
    """(..., K) → (..., K), K a multiple of group·split: within each MMA, the products of its
    `split` groups consecutive (TensorCore.split: adjacent pairs dealt in turn to the groups)."""
    if split == 1:
        return x
    lead, k = x.shape[:-1], x.shape[-1]
    x = x.reshape(*lead, k // (group * split), group // 2, split, 2)
    return jnp.swapaxes(x, -3, -2).reshape(*lead, k)


def _padded(x, length: int):
    """(..., K) zero-padded to a multiple of `length` (zero products take no part)."""
    pad = -x.shape[-1] % length
    return jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, pad)]) if pad else x


def _one_mma(a, b, d, p, shape: tuple):
    """d = MMA(a·b, d) for one MMA's operands a, b: each (negative, exponent, significand) of
    (..., G·split) values (_decompose), already interleaved; shape = (group, split, late_c,
    fp16_after, narrow)."""
    group, split, late_c, fp16_after, narrow = shape
    (a_neg, a_exp, a_sig), (b_neg, b_exp, b_sig) = a, b
    group_sum = _group_sum32 if narrow else _group_sum
    with jax.enable_x64(not narrow):
        sig = _products(a_sig, b_sig, narrow)
        neg = a_neg != b_neg
        exp = a_exp + b_exp
        acc = jnp.zeros_like(d) if late_c else d
        for start in range(0, group * split, group):
            part = slice(start, start + group)
            acc = group_sum(neg[..., part], exp[..., part], sig[..., part], acc, p)
            if fp16_after:  # fp16 output by the fp32 path: its result rounded again
                acc = floats.round_to(acc, floats.FP16)
    return _add_nearest32(d, acc, p) if late_c else acc


def _shape(core: TensorCore, out: FloatFormat, narrow: bool | None = None) -> tuple:
    """The static part of a model (_one_mma's shape); narrow None: the 32-bit path where it
    holds (False forces int64)."""
    narrow = _narrow(core, out) if narrow is None else narrow and _narrow(core, out)
    return core.group, core.split, core.late_c, _fp16_after(core, out), narrow


@functools.partial(jax.jit, static_argnames=("shape",))
def _mma_rows(a, b, c, p, shape: tuple):
    """a, b (..., K) float32 values of the input format, c (...) float32 values of the output;
    p: _parameters; shape: _shape. A chain of MMAs of G·split products. → float32 (...)."""
    group, split = shape[:2]
    a, b = (_decompose(_interleaved(_padded(x, group * split), group, split), p["in_emin"],
                       p["in_m"]) for x in (a, b))
    d = c
    for start in range(0, a[0].shape[-1], group * split):
        part = slice(start, start + group * split)
        d = _one_mma([x[..., part] for x in a], [x[..., part] for x in b], d, p, shape)
    return d


def _run(a, b, c, core: TensorCore, out: FloatFormat, narrow: bool | None = None):
    """mma's arithmetic; narrow None: the 32-bit path where it holds (False forces int64)."""
    core = _for_output(core, out)
    return _mma_rows(a, b, c, _parameters(core, out), _shape(core, out, narrow))


def _fp16_after(core: TensorCore, out: FloatFormat) -> bool:
    return out is floats.FP16 and not core.fp16_exact and not core.late_c


def mma(a, b, c=None, gpu: str = "h100", input_format="bf16", output_format="fp32"):
    """d = a·b + c for rows of K-vectors, as the tensor cores of `gpu` compute it.

    a, b: (..., K) float arrays, rounded to `input_format` (nearest-even) first: values already in
    it pass unchanged. c: (...) accumulator input (None: zeros), rounded to `output_format`
    ("fp32" or "fp16"). K longer than the GPU's fused group adds successive groups into d in the
    output format. Returns float32 (...) values of the output format; the same bits under jit
    and eagerly.
    """
    core = preset(gpu, input_format)
    out = _output(output_format)
    a = jnp.asarray(a)
    b = jnp.asarray(b)
    if a.shape != b.shape or a.ndim < 1:
        raise ValueError(f"hardware.mma: a and b must have the same shape (..., K), got {a.shape} "
                         f"and {b.shape}")
    for name, value in (("a", a), ("b", b)):
        if not jnp.issubdtype(value.dtype, jnp.floating):
            raise TypeError(f"hardware.mma: {name} must be a floating-point array, got "
                            f"{value.dtype}")
    a = floats.round_to(a.astype(jnp.float32), core.input_format)
    b = floats.round_to(b.astype(jnp.float32), core.input_format)
    c = jnp.zeros(a.shape[:-1], jnp.float32) if c is None else jnp.asarray(c, jnp.float32)
    if c.shape != a.shape[:-1]:
        raise ValueError(f"hardware.mma: c must have shape {a.shape[:-1]} (a's rows), got "
                         f"{c.shape}")
    c = floats.round_to(c, out)
    return _with_specials(a, b, c, _run(a, b, c, core, out))


def _with_specials(a, b, c, d):
    """Rows with an infinite or NaN input take float32 arithmetic's result (inf, NaN)."""
    finite = jnp.all(jnp.isfinite(a) & jnp.isfinite(b), axis=-1) & jnp.isfinite(c)
    naive = jnp.sum(a * b, axis=-1) + c
    return jnp.where(finite, d, naive)


def describe(core: TensorCore, output_format="fp32") -> str:
    """One line: the parameters of a model for an output format."""
    out = _output(output_format)
    core = _for_output(core, out)
    text = (f"{core.gpu} {core.input_format} → {out}: MMAs of {core.mma_length} products"
            + (f" in {core.split} interleaved groups of {core.group}" if core.split > 1 else "")
            + f", {core.extra_bits:+d} extra alignment bits")
    fp16 = out is floats.FP16
    acc = floats.FP16 if fp16 and (core.late_c or core.fp16_exact) else core.accumulator
    mode = "nearest" if fp16 and (core.late_c or core.fp16_exact) else core.fp32_rounding
    text += f", group sums rounded {mode} to {acc}"
    if fp16 and not (core.late_c or core.fp16_exact):
        text += ", then to fp16 (nearest)"
    return text + (f"; c added after them, rounded nearest to {out}" if core.late_c else "")


# ---- every matmul of a forward ------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Matmul:
    """How a policy's contractions run on hardware (squash_sim.precision's "+tc:<gpu>" and
    "tpu-default"): `core` a TensorCore (None: the operands are rounded to `input_format` and
    multiplied and summed in float32 by XLA, which is what a TPU's default precision does: one
    bf16 pass, fp32 accumulation), `output_format` fp32 or fp16."""

    core: TensorCore | None
    input_format: FloatFormat
    output_format: FloatFormat = floats.FP32
    scaled: bool = False  # each operand vector scaled by a power of two into range (`einsum`)

    def __str__(self) -> str:
        if self.core is None:
            return f"{self.input_format} inputs, fp32 accumulation"
        out = "" if self.output_format is floats.FP32 else f"/{self.output_format}"
        scaled = ", operands scaled per vector" if self.scaled else ""
        return f"tc:{self.core.gpu}{out} ({self.input_format}{scaled})"


def tensor_core(gpu: str, input_format, output_format="fp32") -> Matmul:
    return Matmul(preset(gpu, input_format), preset(gpu, input_format).input_format,
                  _output(output_format))


def scale_exponents(x, fmt: FloatFormat):
    """For vectors x (..., K): the integer k (...) that puts each vector's largest magnitude into
    fmt's top binade, max|x|·2^k ∈ (fmt.max/2, fmt.max] (Transformer Engine's amax scaling, the
    scale rounded down to a power of two so that multiplying by it is exact). 0 for a vector of
    zeros or with a non-finite entry; clipped to ±126 (2^k a normal float32)."""
    amax = jnp.max(jnp.abs(x), axis=-1)
    _, e = jnp.frexp(amax)  # amax = f·2^e, f ∈ [0.5, 1)
    k = math.frexp(fmt.max)[1] - e  # amax·2^k < 2^(top + 1): at most one binade too high
    k = jnp.where(jnp.ldexp(amax, k) > fmt.max, k - 1, k)
    k = jnp.where((amax > 0) & jnp.isfinite(amax), k, 0)
    return jnp.clip(k, -126, 126).astype(jnp.int32)


def _power_of_two(k):
    return jnp.ldexp(jnp.float32(1.0), k)


def einsum(spec: str, a, b, matmul: Matmul):
    """jnp.einsum(spec, a, b) as `matmul` computes it: every output element is one dot product
    over the contracted axes (flattened in the order they appear in `a`), a chain of MMAs of
    `core.group` products each, d starting at 0. → float32 (out)

    `matmul.scaled`: each operand vector (a row of `a`, a column of `b`: what one output element
    contracts, e.g. one token's activations and one output channel of a weight) is first multiplied
    by 2^k (`scale_exponents`: its largest magnitude into the input format's top binade), then
    rounded to the input format; the MMA's result is multiplied by 2^−k_a and 2^−k_b. Powers of two
    make both multiplications exact, so where the unscaled operands would not overflow or go
    subnormal the result has the unscaled bits (the MMA aligns to its largest exponent: a common
    power of two passes through). The scale of a row depends on that row alone: a token's result
    never depends on other tokens (unlike one scale per tensor, which mixes a batch)."""
    fmt = matmul.input_format
    a = jnp.asarray(a, jnp.float32)
    b = jnp.asarray(b, jnp.float32)
    if matmul.scaled and matmul.core is None:
        raise ValueError("hardware.einsum: scaled operands need a tensor-core model")
    if not matmul.scaled:
        a = floats.round_to(a, fmt)
        b = floats.round_to(b, fmt)
    if matmul.core is None:
        return jnp.einsum(spec, a, b, precision=lax.Precision.HIGHEST)
    inputs, out = spec.replace(" ", "").split("->")
    sa, sb = inputs.split(",")
    contracted = "".join(c for c in sa if c in sb and c not in out)
    if any(c not in out and c not in contracted for c in sa + sb):
        raise ValueError(f"hardware.einsum: {spec!r} sums an axis of one operand alone")

    def as_vectors(x, letters):  # → (out axes, size 1 where x lacks one, K)
        own = "".join(c for c in out if c in letters)
        x = jnp.einsum(f"{letters}->{own}{contracted}", x)  # a transpose
        k = math.prod(x.shape[len(own):])
        x = x.reshape(*x.shape[:len(own)], k)
        return x.reshape(*[x.shape[own.index(c)] if c in own else 1 for c in out], k)

    a_v, b_v = as_vectors(a, sa), as_vectors(b, sb)
    if matmul.scaled:
        k_a, k_b = scale_exponents(a_v, fmt), scale_exponents(b_v, fmt)
        a_v = floats.round_to(a_v * _power_of_two(k_a)[..., None], fmt)
        b_v = floats.round_to(b_v * _power_of_two(k_b)[..., None], fmt)
    core = _for_output(matmul.core, matmul.output_format)
    out = matmul.output_format
    d = _dot_groups(a_v, b_v, _parameters(core, out), _shape(core, out))
    if matmul.scaled:
        d = d * _power_of_two(-k_a) * _power_of_two(-k_b)
    finite = jnp.all(jnp.isfinite(a_v), axis=-1) & jnp.all(jnp.isfinite(b_v), axis=-1)
    return jnp.where(finite, d, jnp.einsum(spec, a, b, precision=lax.Precision.HIGHEST))


@functools.partial(jax.jit, static_argnames=("shape",))
def _dot_groups(a, b, p, shape: tuple):
    """a (..., K), b (..., K) broadcastable float32 values of the input format: Σ a·b by a chain
    of MMAs of G·split products (zero-padded at the end: zeros change nothing), d carried
    between them from 0; shape: _shape."""
    group, split = shape[:2]
    length = group * split
    batch = jnp.broadcast_shapes(a.shape[:-1], b.shape[:-1])

    def split_mmas(x):  # (..., K) → (n, ..., G·split) × 3: each MMA's groups consecutive
        x = _interleaved(_padded(x, length), group, split)
        parts = _decompose(x, p["in_emin"], p["in_m"])
        return tuple(jnp.moveaxis(y.reshape(*y.shape[:-1], -1, length), -2, 0) for y in parts)

    def one(d, slices):
        return _one_mma(*slices, d, p, shape), None

    # The operands are decomposed once, before the loop: fused into the broadcast products
    # inside it, XLA would redo it for every pair of rows (2–3× the time on a CPU).
    d, _ = lax.scan(one, jnp.zeros(batch, jnp.float32), (split_mmas(a), split_mmas(b)))
    return d


# ---- the measured data ----------------------------------------------------------------------


def read_measurements(folder, gpu: str, input_format: str, output_format: str = "fp32"):
    """Khattak & Mikaitis's hardware outputs for one GPU × input format × output format, from
    `folder` (…/tensor_cores, laid out as `<GPU>/<fmt>/{a,b,c,d}_<GPU>_<fmt>.txt`: see
    ../shared/hardware/README.md) → (a, b, c, d) float32 NumPy arrays, (n, K) and (n,).
    FileNotFoundError when that combination was not measured."""
    from pathlib import Path

    gpu_dir = gpu.upper()
    fmt_dir = {"fp8_e4m3fn": "E4M3", "fp8_e5m2": "E5M2"}.get(input_format, input_format)
    base = Path(folder) / gpu_dir / fmt_dir

    def words(path):  # hex float32 bit patterns, K per row
        rows = path.read_text().split("\n")
        rows = [row.split() for row in rows if row.strip()]
        flat = bytes.fromhex("".join(w.rjust(8, "0") for row in rows for w in row))
        return np.frombuffer(flat, ">u4").astype(np.uint32).reshape(len(rows), -1).view(np.float32)

    def binary(path):  # one 32-character binary string per row
        lines = [line.strip() for line in path.read_text().split("\n") if line.strip()]
        digits = np.frombuffer("".join(lines).encode(), np.uint8).reshape(len(lines), 32) - 48
        weights = (np.uint64(1) << np.arange(31, -1, -1, dtype=np.uint64))
        return (digits.astype(np.uint64) @ weights).astype(np.uint32).view(np.float32)

    a = words(base / f"a_{gpu_dir}_{fmt_dir}.txt")
    b = words(base / f"b_{gpu_dir}_{fmt_dir}.txt")
    c = binary(base / f"c_{gpu_dir}_fp32.txt")
    d = binary(base / f"d_{gpu_dir}_{output_format}.txt")
    return a, b, c, d


def c_is_zero(gpu: str, input_format: str, output_format: str) -> bool:
    """H100 fp8, fp32 output: the hardware runs started from d = 0 (README of the data), so c is
    taken as 0 there (the fp16-output runs read c: with 0 only 0.1 % of rows match)."""
    return gpu == "h100" and input_format.startswith("fp8") and output_format == "fp32"


def validate(folder) -> list[dict]:
    """Every GPU × input × output format measured under `folder`, against the models: one dict
    per file, {gpu, input, output, rows, matching} (matching: rows whose bits are identical).
    The one definition behind the test and the docs' match table."""
    from pathlib import Path

    results = []
    for (gpu, fmt_name), core in PRESETS.items():
        for output, out in OUTPUTS.items():
            try:
                a, b, c, d = read_measurements(folder, gpu, fmt_name, output)
            except FileNotFoundError:
                continue
            if c_is_zero(gpu, fmt_name, output):
                c = np.zeros_like(c)
            # The data are finite values of the formats: mma's arithmetic without its input
            # rounding (the identity here) and special-value select, one program per group shape.
            c = np.asarray(floats.round_to(c, out))
            got = np.asarray(_run(a, b, c, core, out))
            same = got.view(np.uint32) == d.view(np.uint32)
            results.append(dict(gpu=gpu, input=fmt_name, output=output, rows=int(same.size),
                                matching=int(same.sum()), k=int(a.shape[1]),
                                mismatched_rows=np.flatnonzero(~same)[:5].tolist()))
    if not results:
        raise FileNotFoundError(f"hardware.validate: no measurements under {Path(folder)}")
    return results

