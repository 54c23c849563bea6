"""An exact rational rounder, written independently of squash_sim.floats (no bit tricks).

Given a float and a format described by plain numbers, find the nearest representable value with
Python Fractions and round-half-even, then apply the special-value rules stated in floats.py.
"""

from __future__ import annotations

import math
from fractions import Fraction


def exact_round(x: float, *, e: int, m: int, bias: int, nan: str, subnormals: bool,
                saturate: bool, mode: str = "nearest", random_word: int = 0,
                width: int = 32) -> float:
    """x rounded to the format by `mode` (nearest = ties to even, toward_zero, up, down, odd,
    stochastic: up in magnitude iff random_word < floor(fraction of a quantum · 2^width)), as a
    Python float (nan for NaN). Overflow: ±max where the mode rounds toward zero there."""
    emin = 1 - bias
    top_field = 2**e - (2 if nan == "ieee" else 1)
    emax = top_field - bias
    top_mantissa = 2**m - (2 if nan == "fn" else 1)
    max_value = Fraction(2**m + top_mantissa, 2**m) * Fraction(2) ** emax
    has_nan = nan != "none"

    def overflow(sign, rounding=True):
        toward_zero = mode in ("toward_zero", "odd") or (mode == "up" and sign < 0) or (
            mode == "down" and sign > 0)
        if saturate or nan == "none" or (rounding and toward_zero):
            return sign * float(max_value)
        return sign * math.inf if nan == "ieee" else math.nan

    if math.isnan(x):
        if has_nan:
            return math.nan
        return math.copysign(0.0, -math.copysign(1.0, x))  # ml_dtypes: NaN → zero of flipped sign
    sign = -1.0 if math.copysign(1.0, x) < 0 else 1.0
    if math.isinf(x):
        if nan == "ieee" and not saturate:
            return x
        return overflow(sign, rounding=False)
    value = abs(Fraction(x))
    if value == 0:
        return 0.0 if nan == "fnuz" else sign * 0.0
    exponent = value.numerator.bit_length() - value.denominator.bit_length()
    if Fraction(2) ** exponent > value:  # make 2^exponent ≤ value < 2^(exponent+1)
        exponent -= 1
    quantum = Fraction(2) ** (max(exponent, emin) - m)
    steps = value / quantum
    low = math.floor(steps)
    inexact = steps != low
    if mode == "nearest":
        k = round(steps)  # Python rounds a Fraction half to even
    elif mode == "toward_zero":
        k = low
    elif mode == "up":
        k = low + (inexact and sign > 0)
    elif mode == "down":
        k = low + (inexact and sign < 0)
    elif mode == "odd":
        k = low + (inexact and low % 2 == 0)
    elif mode == "stochastic":
        k = low + (random_word < math.floor((steps - low) * 2**width))
    else:
        raise ValueError(mode)
    rounded = k * quantum
    if rounded > max_value:
        return overflow(sign)
    if not subnormals and 0 < rounded < Fraction(2) ** emin:
        rounded = Fraction(0)
    if rounded == 0 and nan == "fnuz":
        return 0.0
    return sign * float(rounded)
