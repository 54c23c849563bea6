"""Hypothesis strategies for squash_sim (public: use them in your own property tests).

Needs `hypothesis` (the `test` extra). Float values are drawn as bit patterns, so every value of a
format — ±0, subnormals, max, inf and NaN — is reachable; Hypothesis has no bf16/fp8 strategy.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from squash_sim import checks
from squash_sim import config as config_module
from squash_sim.floats import NAMED, FloatFormat


def _int_at_least(name: str, value, low: int, high: int | None = None) -> None:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"in {low}..{high}"
        raise ValueError(f"{name} must be {allowed}, got {value}")


def float_formats(max_exponent_bits: int = 8, max_mantissa_bits: int = 23, named: bool = True):
    """Named formats and random (e, m) formats of every NaN style, bias, FTZ and saturation."""
    _int_at_least("max_exponent_bits", max_exponent_bits, 2, 8)
    _int_at_least("max_mantissa_bits", max_mantissa_bits, 2, 23)
    named = checks.flag("float_formats", "named", named)  # "no" is not False
    return _float_formats(int(max_exponent_bits), int(max_mantissa_bits), named)


@st.composite
def _float_formats(draw, max_exponent_bits: int, max_mantissa_bits: int,
                   named: bool) -> FloatFormat:
    if named and draw(st.booleans()):
        return draw(st.sampled_from([f for f in NAMED.values()
                                     if f.exponent_bits <= max_exponent_bits]))
    nan = draw(st.sampled_from(["ieee", "fn", "fnuz", "none"]))
    e = draw(st.integers(2 if nan == "ieee" else 1, max_exponent_bits))
    m = draw(st.integers(1 if not (nan == "fn" and e == 1) else 2, max_mantissa_bits))
    default_bias = 2 ** (e - 1) - (0 if nan == "fnuz" else 1)
    bias = default_bias + draw(st.integers(-2, 2)) if e < max_exponent_bits else default_bias
    return FloatFormat(e, m, bias=bias, inf=nan == "ieee", nan=nan,
                       subnormals=draw(st.booleans()), saturate=draw(st.booleans()))


def float32_bits():
    """Any float32, drawn as its bit pattern: NaNs, infs, subnormals and ±0 included."""
    return st.integers(0, 2**32 - 1).map(lambda b: float(np.uint32(b).view(np.float32)))


def float32_arrays(size: int = 64):
    _int_at_least("size", size, 0)
    size = int(size)
    return st.lists(st.integers(0, 2**32 - 1), min_size=size, max_size=size).map(
        lambda bits: np.array(bits, np.uint32).view(np.float32))


def model_configs(max_d_model: int = 32, max_layers: int = 2, tokens: bool | None = None):
    """Valid small ModelConfigs across positional encodings, norms, placements, MLPs and GQA."""
    _int_at_least("max_d_model", max_d_model, 8)
    _int_at_least("max_layers", max_layers, 1)
    max_d_model, max_layers = int(max_d_model), int(max_layers)
    if tokens is not None and not isinstance(tokens, bool):
        raise TypeError(f"tokens must be True, False or None, got {tokens!r}")

    @st.composite
    def build(draw):
        n_kv = draw(st.sampled_from([1, 2]))
        group = draw(st.sampled_from([1, 2]))
        n_heads = n_kv * group
        d_head = draw(st.sampled_from([2, 4, 8]))
        d_model = draw(st.sampled_from([d for d in (8, 16, 32) if d <= max_d_model]))
        positional = draw(st.sampled_from(config_module.POSITIONALS))
        use_tokens = draw(st.booleans()) if tokens is None else tokens
        n_layers = draw(st.integers(1, max_layers))
        return config_module.ModelConfig(
            vocab_size=draw(st.integers(2, 50)) if use_tokens else None,
            d_model=d_model, n_layers=n_layers, n_heads=n_heads, n_kv_heads=n_kv, d_head=d_head,
            d_ff=draw(st.sampled_from([8, 16])), positional=positional,
            max_len=64 if positional == "learned" else None,
            norm=draw(st.sampled_from(config_module.NORMS)),
            norm_placement=draw(st.sampled_from(config_module.NORM_PLACEMENTS)),
            qk_norm=draw(st.booleans()), mlp=draw(st.sampled_from(config_module.MLPS)),
            causal=draw(st.booleans()),
            sliding_window=draw(st.sampled_from([None, 1, 3, 8])),
        )

    return build()


def causal_attention_matrices(min_n: int = 2, max_n: int = 10, sparse: bool = True):
    """Lower-triangular row-stochastic matrices Λ (lists of lists, JSON-ready): softmax rows over
    j ≤ i of logits in [−4, 4], some entries zeroed (and the row renormalised) when sparse."""
    _int_at_least("min_n", min_n, 1)
    _int_at_least("max_n", max_n, min_n)
    sparse = checks.flag("causal_attention_matrices", "sparse", sparse)
    return _causal_attention_matrices(int(min_n), int(max_n), sparse)


@st.composite
def _causal_attention_matrices(draw, min_n: int, max_n: int, sparse: bool):
    n = draw(st.integers(min_n, max_n))
    rows = []
    for i in range(n):
        logits = np.array(draw(st.lists(st.floats(-4, 4), min_size=i + 1, max_size=i + 1)))
        weights = np.exp(logits - logits.max())
        if sparse and i > 0 and draw(st.booleans()):
            keep = np.array(draw(st.lists(st.booleans(), min_size=i + 1, max_size=i + 1)))
            keep[int(np.argmax(weights))] = True
            weights = weights * keep
        weights = weights / weights.sum()
        rows.append([float(w) for w in weights] + [0.0] * (n - i - 1))
    return rows


def bounded_vectors(min_n: int = 2, max_n: int = 200, low: float = -3.0, high: float = 3.0):
    _int_at_least("min_n", min_n, 0)
    _int_at_least("max_n", max_n, min_n)
    low = checks.number("bounded_vectors", "low", low)  # NumPy scalars too; bools refused
    high = checks.number("bounded_vectors", "high", high)
    if low > high:
        raise ValueError(f"bounded_vectors: low must be <= high, got low={low}, high={high}")
    return st.lists(st.floats(low, high), min_size=int(min_n), max_size=int(max_n))


COLLAPSE_LENGTHS = (1, 2, 5, 13, 34)  # bucketed lengths: each compiles once
B3_POSITIONALS = ("none", "rope", "alibi", "sinusoidal", "learned")
B3_NORMS = ("none", "theory")


def _nonempty_choices(name: str, values, allowed=None, kind=None) -> tuple:
    """Validate a collection of choices up front: a clear error naming the parameter (Hypothesis
    would raise InvalidArgument later, without saying which argument)."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name} must be a tuple of choices, got {values!r}")
    values = tuple(values)
    if not values:
        raise ValueError(f"{name} must not be empty")
    kinds = (kind, np.integer) if kind is int else kind
    for value in values:
        if kind is not None and (isinstance(value, (bool, np.bool_))
                                 or not isinstance(value, kinds)):
            raise TypeError(f"{name} must hold {kind.__name__} values, got {value!r}")
        if allowed is not None and value not in allowed:
            raise ValueError(f"{name}: {value!r} is not one of {allowed}")
    return tuple(int(v) for v in values) if kind is int else values


def collapse_pairs(lengths=COLLAPSE_LENGTHS, positionals=("none", "rope", "alibi", "sinusoidal"),
                   widths=(4,), *, config: config_module.ModelConfig | None = None):
    """Theorem B.3 instances (JSON-ready): a sequence v of n random vectors and v* = [v, v_n], for
    a one-layer, one-head, W_V = W_O = I model with the given positional encodings and norm
    "none" or "theory" (β). Evaluate with proofs_check.claims.theorem_b3.

    config: draw instances for YOUR model's choices instead — its positional encoding, width
    (d_model) and norm ("none", or "theory" with its theory_beta1[0]); the rest of the model is the
    theorem's (one layer, one head, W_V = W_O = I). Additive encodings (sinusoidal, learned) are
    reported by the claim as "assumption not met", never passed as holding."""
    lengths = _nonempty_choices("lengths", lengths, kind=int)
    if min(lengths) < 1:
        raise ValueError(f"lengths must be positive ints, got {lengths}")
    norms, betas = B3_NORMS, (0.5, 1.0, 2.5)
    if config is not None:
        if not isinstance(config, config_module.ModelConfig):
            raise TypeError(f"config must be a ModelConfig, got {type(config).__name__}")
        if config.norm not in B3_NORMS:
            raise ValueError(f"config: Theorem B.3's instances need norm 'none' or 'theory' "
                             f"(u = norm₁(v) is read off the stream), got norm={config.norm!r}")
        positionals, widths, norms = (config.positional,), (config.d_model,), (config.norm,)
        betas = (float(config.theory_beta1[0]),)
    positionals = _nonempty_choices("positionals", positionals, allowed=B3_POSITIONALS)
    widths = _nonempty_choices("widths", widths, kind=int)
    if min(widths) < 1:
        raise ValueError(f"widths must be positive ints, got {widths}")
    return st.fixed_dictionaries({
        "n": st.sampled_from(lengths), "d": st.sampled_from(widths),
        "positional": st.sampled_from(positionals), "norm": st.sampled_from(norms),
        "beta": st.sampled_from(betas), "scale": st.floats(0.1, 3.0),
        "seed": st.integers(0, 2**31 - 1)}).map(
        lambda inst: inst if inst["norm"] == "theory" else {**inst, "beta": 1.0})  # β unused
