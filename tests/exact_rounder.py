"""An exact rational rounder, written independently of squash_sim.floats (no bit tricks).

Given a float and a format described by plain numbers, find the nearest representable value with
Python Fractions and round-half-even, then apply the special-value rules stated in floats.py.
"""

from __future__ import annotations

import math
from fractions import Fraction


def exact_round(x: float, *, e: int, m: int, bias: int, nan: str, subnormals: bool,
                saturate: bool) -> float:
    """Nearest value of the format to x, as a Python float (nan for NaN)."""
    emin = 1 - bias
    top_field = 2**e - (2 if nan == "ieee" else 1)
    emax = top_field - bias
    top_mantissa = 2**m - (2 if nan == "fn" else 1)
    max_value = Fraction(2**m + top_mantissa, 2**m) * Fraction(2) ** emax
    has_nan = nan != "none"

    def overflow(sign):
        if saturate or nan == "none":
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
        return overflow(sign)
    value = abs(Fraction(x))
    if value == 0:
        return 0.0 if nan == "fnuz" else sign * 0.0
    exponent = value.numerator.bit_length() - value.denominator.bit_length()
    if Fraction(2) ** exponent > value:  # make 2^exponent ≤ value < 2^(exponent+1)
        exponent -= 1
    quantum = Fraction(2) ** (max(exponent, emin) - m)
    rounded = round(value / quantum) * quantum  # Python rounds a Fraction half to even
    if rounded > max_value:
        return overflow(sign)
    if not subnormals and 0 < rounded < Fraction(2) ** emin:
        rounded = Fraction(0)
    if rounded == 0 and nan == "fnuz":
        return 0.0
    return sign * float(rounded)
