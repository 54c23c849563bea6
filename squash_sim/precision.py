"""Precision: where rounding happens in a forward pass, and the arithmetic that obeys it.

Values always live in a float32 container (float64 for the "fp64" reference). A `Precision` names,
for each place where a real implementation would store or reduce, the format it rounds to (None =
leave the container's result alone):

    params            every weight, rounded once when the forward pass starts
    activations       every stored tensor: the residual stream h[ℓ], embeddings, norm outputs,
                      q/k/v, attention weights and outputs, MLP hidden units, logits
    attention_logits  the attention scores q·k (after scaling and positional bias)
    softmax           exp(score − max), the running sum of those exps, and the division by it
    accumulation      every dot product / norm sum: products and partial sums rounded at each step

Reductions in a simulated format (softmax, accumulation) run in the order the code defines:
sequentially, index 0 first. Masked entries contribute exact zeros at the end of each causal row,
which leaves a rounded sum unchanged, so with both set (the "-pure" presets) the one-pass prefix
property holds bit for bit: row j of a length-N forward equals the last row of a length-j forward.
With accumulation=None the matmuls are XLA's (fast, order unspecified); prefixes then agree to
float32 rounding, not bit for bit.

Arithmetic happens in float32 and is then rounded to the format: for formats with at most 10
mantissa bits this is correctly rounded (float32 carries ≥ 2p+2 bits, so double rounding of
+, −, ×, ÷ is innocuous). Formats wider than that may see double rounding. XLA:CPU flushes float32
subnormals in arithmetic, so bf16/tf32 subnormals flush to zero inside the model (fp16 and fp8
subnormals are normal float32 numbers and survive).

Presets: "fp32" (nothing rounded), "fp64" (float64 container, the reference), "bf16" (bf16 storage
of params, activations and logits; fp32 softmax and accumulation: what LLM inference does),
"bf16-pure" (everything rounded to bf16, reductions accumulated in bf16 in a defined order), and
"<format>" / "<format>-pure" for every named format and spec ("fp16", "fp8_e4m3fn-pure", "e5m7").
"fp32-pure" is float32 everywhere with ordered reductions: the bit-exact prefix reference.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
from jax import lax

from squash_sim import floats
from squash_sim.floats import FloatFormat, round_to

_FIELDS = ("params", "activations", "attention_logits", "softmax", "accumulation")


@dataclasses.dataclass(frozen=True)
class Precision:
    """Where a forward pass rounds; see the module docstring."""

    params: FloatFormat | None = None
    activations: FloatFormat | None = None
    attention_logits: FloatFormat | None = None
    softmax: FloatFormat | None = None
    accumulation: FloatFormat | None = None
    compute_dtype: str = "float32"
    name: str | None = None

    def __post_init__(self):
        for field in _FIELDS:
            value = getattr(self, field)
            if value is None:
                continue
            if isinstance(value, str):
                try:
                    object.__setattr__(self, field, floats.get(value))
                except ValueError as err:
                    raise ValueError(f"Precision: {field}: {err}") from None
            elif not isinstance(value, FloatFormat):
                raise TypeError(f"Precision: {field} must be a FloatFormat, a format name or None, "
                                f"got {value!r}")
        if self.name is not None and not isinstance(self.name, str):
            raise TypeError(f"Precision: name must be a str or None, got {self.name!r}")
        if self.compute_dtype not in ("float32", "float64"):
            raise ValueError(f"Precision: compute_dtype must be 'float32' or 'float64', got "
                             f"{self.compute_dtype!r}")

    @classmethod
    def storage(cls, fmt: FloatFormat | str) -> "Precision":
        """Params, activations and logits stored in fmt; softmax and accumulation in float32."""
        fmt = floats.get(fmt)
        return cls(params=fmt, activations=fmt, attention_logits=fmt, name=str(fmt))

    @classmethod
    def pure(cls, fmt: FloatFormat | str) -> "Precision":
        """Every rounding point in fmt, every reduction accumulated in fmt in a defined order."""
        fmt = floats.get(fmt)
        return cls(*(fmt,) * len(_FIELDS), name=f"{fmt}-pure")

    @property
    def ordered_matmuls(self) -> bool:
        return self.accumulation is not None

    @property
    def ordered_softmax(self) -> bool:
        return self.softmax is not None

    @property
    def prefix_bit_exact(self) -> bool:
        """Whether a one-pass prefix sweep equals separate runs bit for bit (see module doc)."""
        return self.ordered_matmuls and self.ordered_softmax

    def __str__(self) -> str:
        return self.name or repr(self)


def get(precision: "Precision | str") -> Precision:
    """A Precision from a preset name (see the module docstring) or a Precision."""
    if isinstance(precision, Precision):
        return precision
    if not isinstance(precision, str):
        raise TypeError(f"precision must be a preset name or a Precision, got "
                        f"{type(precision).__name__}")
    key = precision.strip().lower()
    if key == "fp32":
        return Precision(name="fp32")
    if key == "fp64":
        return Precision(compute_dtype="float64", name="fp64")
    pure = key.endswith("-pure")
    base = key[: -len("-pure")] if pure else key
    try:
        fmt = floats.get(base)
    except ValueError:
        raise ValueError(
            f"unknown precision {precision!r}: use 'fp32', 'fp64', a float format name "
            f"({', '.join(floats.names())}) or spec like 'e5m7', optionally with '-pure'"
        ) from None
    return Precision.pure(fmt) if pure else Precision.storage(fmt)


def names() -> list[str]:
    listed = ["fp32", "fp32-pure", "fp64"]
    for name in floats.names():
        if name not in ("fp64", "fp32"):
            listed += [name, f"{name}-pure"]
    return listed


# ---------------------------------------------------------------------------------------------


def _round(x, fmt: FloatFormat | None):
    return x if fmt is None else round_to(x, fmt)


def ordered_sum(x, axis: int, fmt: FloatFormat, keepdims: bool = False):
    """Σ over `axis`, index 0 first, rounding the running sum to fmt after every addition."""
    xs = jnp.moveaxis(x, axis, 0)

    def add(total, term):
        return round_to(total + term, fmt), None

    total, _ = lax.scan(add, jnp.zeros(xs.shape[1:], x.dtype), xs)
    return jnp.expand_dims(total, axis) if keepdims else total


def ordered_einsum(spec: str, a, b, fmt: FloatFormat):
    """einsum with the contraction done in a defined order: for k = 0, 1, …, K−1 (contracted axes
    flattened in the order they appear in `a`), acc ← fmt(acc + fmt(a_k · b_k))."""
    inputs, out = spec.replace(" ", "").split("->")
    sa, sb = inputs.split(",")
    contracted = [c for c in sa if c in sb and c not in out]
    if not contracted:
        return _round(jnp.einsum(spec, a, b), fmt)
    rest_a = "".join(c for c in sa if c not in contracted)
    rest_b = "".join(c for c in sb if c not in contracted)
    # Contracted axes to the front, flattened: a (K, *rest_a), b (K, *rest_b).
    a_k = jnp.transpose(a, [sa.index(c) for c in contracted] + [sa.index(c) for c in rest_a])
    b_k = jnp.transpose(b, [sb.index(c) for c in contracted] + [sb.index(c) for c in rest_b])
    K = 1
    for c in contracted:
        K *= a.shape[sa.index(c)]
    a_k = a_k.reshape(K, *a_k.shape[len(contracted):])
    b_k = b_k.reshape(K, *b_k.shape[len(contracted):])
    step_spec = f"{rest_a},{rest_b}->{out}"

    def accumulate(acc, ab):
        product = round_to(jnp.einsum(step_spec, *ab), fmt)
        return round_to(acc + product, fmt), None

    out_shape = jnp.einsum(step_spec, a_k[0], b_k[0]).shape
    acc, _ = lax.scan(accumulate, jnp.zeros(out_shape, a.dtype), (a_k, b_k))
    return acc


class Numerics:
    """The arithmetic of one forward pass under a Precision: the model calls these, never bare
    jnp reductions, so every rounding point and reduction order is decided here."""

    def __init__(self, precision: Precision):
        self.p = precision

    def params(self, x):
        return _round(x, self.p.params)

    def act(self, x):
        return _round(x, self.p.activations)

    def logits(self, x):
        return _round(x, self.p.attention_logits)

    def einsum(self, spec: str, a, b):
        """A contraction: XLA's when accumulation is None, else the ordered one. The caller
        rounds the result to where it is stored (act / logits)."""
        if self.p.accumulation is None:
            return jnp.einsum(spec, a, b, precision=lax.Precision.HIGHEST)
        return ordered_einsum(spec, a, b, self.p.accumulation)

    def sum(self, x, axis: int = -1, keepdims: bool = False):
        """A reduction inside a norm (over features)."""
        if self.p.accumulation is None:
            return jnp.sum(x, axis=axis, keepdims=keepdims)
        return ordered_sum(x, axis % x.ndim, self.p.accumulation, keepdims)

    def elementwise(self, x):
        """Intermediate elementwise results (norm statistics, gates) stored in the accumulation
        format when one is set: in the "-pure" presets every operation is rounded."""
        return _round(x, self.p.accumulation)

    def softmax(self, scores, valid):
        """Softmax over the last axis, restricted to `valid` keys (every row has at least one).

        Masking is a select on the exponentials, so masked keys contribute exact zeros whatever the
        format (a saturating format could not hold −inf)."""
        fmt = self.p.softmax
        row_max = jnp.max(jnp.where(valid, scores, -jnp.inf), axis=-1, keepdims=True)
        exps = _round(jnp.exp(_round(scores - row_max, fmt)), fmt)
        exps = jnp.where(valid, exps, 0.0)
        if fmt is None:
            total = jnp.sum(exps, axis=-1, keepdims=True)
        else:
            total = ordered_sum(exps, exps.ndim - 1, fmt, keepdims=True)
        # The weights stay in the softmax format (not `activations`): the online-softmax path never
        # stores them, and both paths must compute the same function.
        return _round(exps / total, fmt)
