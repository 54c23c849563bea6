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

Reductions in a simulated format (softmax, accumulation) run in the order the code defines: by
default sequentially, index 0 first (other accumulation models below). Masked entries contribute
exact zeros at the end of each causal row, which leaves a rounded sum unchanged in every model, so
with both set (the "-pure" presets) the one-pass prefix property holds bit for bit: row j of a
length-N forward equals the last row of a length-j forward.
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

Accumulation models (squash_sim.accumulate defines them exactly). Three kinds of reduction each
have one: `matmul_sum` (every dot product: matmuls, attention scores, weights·values), `norm_sum`
(the sums inside a norm) and `softmax_sum` (the softmax denominator). The mode is `sequential`
(above; the default, so every preset keeps its bits), `pairwise` (a fixed binary tree), `blocked`
(partial sums of K terms promoted to a wider format) or `kahan` (compensated). The accumulator
format is the field above (`accumulation` for dot products and norms, `softmax` for the softmax
sum) unless the Accumulation names its own: storage (activations) and accumulator formats are
separate.

Two dot products of attention may take their own accumulation (the per-sum counterfactuals of
squash_sim.analysis.mechanism use this; no preset or policy string sets them): `score_sum` (the
scores q·k, a sum over the head dimension) and `value_sum` (weights·values, the attention output's
sum over keys). None, the default, means `matmul_sum`, so `matmul_sum` alone still covers every
dot product and every existing policy keeps its bits. Likewise `off_hardware` (no policy string
sets it) names contraction sites ("matmul", "scores", "values") taken off a "+tc:<gpu>" policy's
tensor cores: such a site keeps the MMA's operand rounding (to its input format) and output
format, and adds the exact products with its own Accumulation instead of the MMA chain (the
per-sum counterfactual of a tensor-core sum: one site at a time, everything else unchanged).

String grammar (the CLI's --precision and the presets):

    policy    := base ("+" modifier)*            base: a preset above
    modifier  := [scope ":"] mode                scope: matmul | norm | softmax (none: all three)
    mode      := sequential | pairwise | kahan   ["/" fmt]     fmt: accumulator format
               | "block" K ["/" inner ["/" outer]]             inner "=": the default

A modifier's accumulator format, unless it names one: the base's format for that reduction; where
the base leaves the reduction to XLA's float32 (storage presets such as "bf16", "fp8_e4m3fn"),
fp32 for sequential/pairwise/kahan and e8m13 for the inner sums of a block (14 significant bits,
the FP8 accumulator width DeepSeek-V3 reported; the measured H100 MMA truncates once per 32
products rather than rounding every addition, which "+tc:h100" models:
docs/precision_hardware.md). The outer (promotion) format of a block defaults to fp32. Examples:

    bf16-pure                 everything in bf16, every sum sequential in bf16 (unchanged bits)
    bf16-pure+pairwise        the same, every sum (dot products, norms, softmax) a pairwise tree in bf16
    bf16-pure+kahan           the same, every sum Kahan-compensated with bf16 operations
    bf16-pure+block32         bf16 partial sums of 32 terms, added in fp32
    bf16-pure+softmax:kahan   only the softmax denominator compensated
    fp8_e4m3fn+block128       params, activations, logits stored in fp8 e4m3fn; every sum adds 128
                              terms at a time in e8m13 (products rounded to e8m13) and the partial
                              sums in fp32 (DeepSeek-V3's promotion interval N_C = 128)
    fp8_e4m3fn+block128/fp32  the same with an fp32 inner accumulator

Hardware matmuls (squash_sim.hardware holds the arithmetic; this module only parses and wires):

    modifier  := "tc:" gpu ["/" out]        gpu: v100 | a100 | h100 | b200; out: fp32 | fp16

makes every contraction (matmuls, attention scores, weights·values) the tensor-core MMA chain of
that GPU, bit for bit as the hardware computes it (validated on measured outputs:
docs/precision_hardware.md), with the base's format as the MMA input format (its params'
format: bf16, fp16, tf32, fp8_e4m3fn or fp8_e5m2); the operands are rounded to it first (storage
presets already hold them in it). Norm and softmax sums keep the base's arithmetic. Examples:
"bf16+tc:h100", "fp8_e4m3fn+tc:h100", "fp16+tc:v100/fp16", "tf32+tc:a100".

Scaled low-precision GEMMs (what FP8 inference does: Transformer Engine, vLLM's per-token fp8):

    modifier  := "scaled:" fmt              after a "tc:" modifier; fmt: e.g. fp8_e4m3fn (e4m3)

makes the projections, MLP and logits matmuls (the "matmul" site; attention's q·k and
weights·values keep the tc modifier's arithmetic) MMAs of that GPU with fmt inputs, each operand
vector (one token's activations, one output channel of a weight) first scaled by the power of two
that puts its largest magnitude into fmt's top binade, the result scaled back exactly
(squash_sim.hardware.einsum, `scaled`). Unscaled e4m3 storage overflows real models (448 is its
largest value); scaled, it stays in range. Example: "bf16+tc:h100+scaled:e4m3" (bf16 storage,
bf16 tensor-core attention, fp8 e4m3 tensor-core GEMMs).

"tpu-default" is float32 everywhere except that every contraction rounds its operands to bf16
(nearest-even) and multiplies and accumulates in fp32 (XLA's order): what a float32 matmul gets
on TPU by default. Sources: JAX, "Matmul precision" (docs.jax.dev/en/latest/201/precision.html:
float32 dot products are computed with bfloat16 internally on TPU by default; the explicit
algorithm is "BF16_BF16_F32", one pass); Google Cloud, "Improve your model's performance with
bfloat16" (cloud.google.com/tpu/docs/bfloat16: matmuls with bfloat16 values and float32
accumulation, the conversion rounding to nearest-even).
"""

from __future__ import annotations

import dataclasses
import re

import jax.numpy as jnp
from jax import lax

from squash_sim import floats, hardware
from squash_sim.accumulate import SEQUENTIAL, Accumulation, accumulated_einsum, accumulated_sum
from squash_sim.floats import FloatFormat, round_to

_FIELDS = ("params", "activations", "attention_logits", "softmax", "accumulation")
_SUMS = {"matmul": "matmul_sum", "norm": "norm_sum", "softmax": "softmax_sum"}
# The dot products inside attention that may be set apart from the other matmuls (None: matmul_sum).
_DOT_SITES = {"scores": "score_sum", "values": "value_sum"}
_CONTRACTIONS = frozenset({"matmul", *_DOT_SITES})  # the sites Numerics.einsum is called with
# Where a modifier finds no accumulator format in its base (module docstring).
_FALLBACK = floats.FP32
_BLOCK_FALLBACK = floats.FloatFormat(8, 13)  # e8m13: 14 significant bits
MAX_BLOCK = 2**20  # a block of K terms: K above any sequence or width this package runs


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
    matmul_sum: Accumulation = SEQUENTIAL
    norm_sum: Accumulation = SEQUENTIAL
    softmax_sum: Accumulation = SEQUENTIAL
    matmul_hardware: hardware.Matmul | None = None  # "+tc:<gpu>" / "tpu-default" (docstring)
    score_sum: Accumulation | None = None  # q·k; None: matmul_sum
    value_sum: Accumulation | None = None  # weights·values; None: matmul_sum
    off_hardware: frozenset = frozenset()  # contraction sites off matmul_hardware (docstring)
    scaled_matmul: hardware.Matmul | None = None  # "+scaled:<fmt>": the "matmul" site (docstring)

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
        for scope, field in _SUMS.items():
            how = getattr(self, field)
            if not isinstance(how, Accumulation):
                raise TypeError(f"Precision: {field} must be an Accumulation, got {how!r}")
            if how.format is None and self._field_format(scope) is None and how != SEQUENTIAL:
                raise ValueError(f"Precision: {field}={how} needs an accumulator format: set "
                                 f"{'softmax' if scope == 'softmax' else 'accumulation'} or "
                                 f"{field}.format")
        if self.matmul_hardware is not None and not isinstance(self.matmul_hardware,
                                                               hardware.Matmul):
            raise TypeError(f"Precision: matmul_hardware must be a hardware.Matmul or None, got "
                            f"{self.matmul_hardware!r}")
        if self.scaled_matmul is not None and not (
                isinstance(self.scaled_matmul, hardware.Matmul) and self.scaled_matmul.scaled):
            raise TypeError(f"Precision: scaled_matmul must be a scaled hardware.Matmul or None, "
                            f"got {self.scaled_matmul!r}")
        for field in _DOT_SITES.values():
            how = getattr(self, field)
            if how is not None and not isinstance(how, Accumulation):
                raise TypeError(f"Precision: {field} must be an Accumulation or None, got {how!r}")
            if how is not None and how.format is None and self.accumulation is None:
                raise ValueError(f"Precision: {field}={how} needs an accumulator format: set "
                                 f"accumulation or {field}.format")
        if not isinstance(self.off_hardware, frozenset) or not self.off_hardware <= _CONTRACTIONS:
            raise ValueError(f"Precision: off_hardware must be a frozenset of "
                             f"{sorted(_CONTRACTIONS)}, got {self.off_hardware!r}")
        if self.compute_dtype not in ("float32", "float64"):
            raise ValueError(f"Precision: compute_dtype must be 'float32' or 'float64', got "
                             f"{self.compute_dtype!r}")
        if self.compute_dtype == "float32":  # e.g. "fp64-pure" used to compute in float32
            for field, fmt in self._formats():
                if fmt.exponent_bits > 8 or fmt.mantissa_bits > 23:
                    raise ValueError(
                        f"Precision{f' {self.name!r}' if self.name else ''}: {field} = {fmt} is "
                        f"wider than the float32 container it would be computed in (at most 8 "
                        f"exponent and 23 mantissa bits); use 'fp64' for the float64 reference")

    def _formats(self):
        """(field, format) of every format this policy rounds to (fields and accumulators)."""
        for field in _FIELDS:
            if getattr(self, field) is not None:
                yield field, getattr(self, field)
        for field in _SUMS.values():
            how = getattr(self, field)
            for part, fmt in (("format", how.format), ("promote", how.promote)):
                if fmt is not None:
                    yield f"{field}.{part}", fmt

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

    def _field_format(self, scope: str) -> FloatFormat | None:
        return self.softmax if scope == "softmax" else self.accumulation

    def summation(self, scope: str) -> Accumulation:
        """How a reduction adds: "matmul", "norm", "softmax", or the attention dot products
        "scores" / "values" (their own Accumulation if set, else matmul_sum's)."""
        if scope in _DOT_SITES:
            return getattr(self, _DOT_SITES[scope]) or self.matmul_sum
        return getattr(self, _SUMS[scope])

    def sum_format(self, scope: str) -> FloatFormat | None:
        """The accumulator format of a reduction (scopes as in `summation`); None: XLA's."""
        field_scope = "matmul" if scope in _DOT_SITES else scope
        return self.summation(scope).format or self._field_format(field_scope)

    def on_tensor_cores(self, site: str) -> bool:
        """Whether a contraction site ("matmul", "scores", "values") runs the "+tc:<gpu>" MMA
        chain (not "tpu-default", whose sums are XLA's fp32, nor a site in off_hardware)."""
        return (self.matmul_hardware is not None and self.matmul_hardware.core is not None
                and site not in self.off_hardware)

    @property
    def ordered_matmuls(self) -> bool:
        tensor_cores = self.matmul_hardware is not None and self.matmul_hardware.core is not None
        return tensor_cores or any(self.sum_format(scope) is not None
                                   for scope in ("matmul", *_DOT_SITES))

    @property
    def ordered_softmax(self) -> bool:
        return self.sum_format("softmax") is not None

    @property
    def prefix_bit_exact(self) -> bool:
        """Whether a one-pass prefix sweep equals separate runs bit for bit (see module doc)."""
        return self.ordered_matmuls and self.ordered_softmax

    def __str__(self) -> str:
        return self.name or repr(self)


def get(precision: "Precision | str") -> Precision:
    """A Precision from a policy string (grammar in the module docstring) or a Precision."""
    if isinstance(precision, Precision):
        return precision
    if not isinstance(precision, str):
        raise TypeError(f"precision must be a preset name or a Precision, got "
                        f"{type(precision).__name__}")
    base, *modifiers = precision.strip().lower().split("+")
    policy = _base(base.strip(), precision)
    for modifier in modifiers:
        if modifier.strip().startswith("tc:"):
            policy = _tensor_cores(policy, modifier.strip(), precision)
        elif modifier.strip().startswith("scaled:"):
            policy = _scaled(policy, modifier.strip(), precision)
        else:
            policy = _apply(policy, modifier.strip(), precision)
    if modifiers:
        policy = dataclasses.replace(policy, name="+".join(
            [policy.name] + [m.strip() for m in modifiers]))
    return policy


def _base(key: str, text: str) -> Precision:
    if key == "fp32":
        return Precision(name="fp32")
    if key == "fp64":
        return Precision(compute_dtype="float64", name="fp64")
    if key == "tpu-default":
        return Precision(name="tpu-default", matmul_hardware=hardware.Matmul(None, floats.BF16))
    pure = key.endswith("-pure")
    base = key[: -len("-pure")] if pure else key
    try:
        fmt = floats.get(base)
    except ValueError:
        raise ValueError(
            f"unknown precision {_short(text)}: use 'fp32', 'fp64', a float format name "
            f"({', '.join(floats.names())}) or spec like 'e5m7', optionally with '-pure', then "
            f"optionally '+pairwise', '+kahan', '+block128', ... (precision module docstring)"
        ) from None
    return Precision.pure(fmt) if pure else Precision.storage(fmt)


def _short(text: str) -> str:
    """A policy string as an error quotes it: at most 60 characters (a 5,000-digit block size
    would otherwise fill the terminal)."""
    return repr(text) if len(text) <= 60 else repr(text[:57]) + f"… ({len(text):,} characters)"


def _modifier_error(text: str, modifier: str, why: str) -> ValueError:
    return ValueError(f"precision {_short(text)}: bad accumulation modifier {_short(modifier)} "
                      f"({why}); use "
                      f"[matmul:|norm:|softmax:](sequential|pairwise|kahan)[/fmt] or "
                      f"[scope:]block<K>[/inner[/outer]], e.g. 'bf16-pure+pairwise', "
                      f"'fp8_e4m3fn+block128'")


def _tensor_cores(policy: Precision, modifier: str, text: str) -> Precision:
    """The policy with "+tc:<gpu>[/<out>]" applied: the base's format into that GPU's MMAs."""
    gpu, _, output = modifier[len("tc:"):].partition("/")
    if policy.params is None:
        raise ValueError(f"precision {text!r}: '+{modifier}' needs a base with a format for the "
                         f"MMA inputs, e.g. 'bf16+{modifier}' or 'fp8_e4m3fn+{modifier}'")
    try:
        matmul = hardware.tensor_core(gpu, policy.params, output or "fp32")
    except (TypeError, ValueError) as error:
        raise ValueError(f"precision {text!r}: bad tensor-core modifier {modifier!r} ({error}); "
                         f"use tc:<gpu>[/fp16], e.g. 'bf16+tc:h100', 'fp16+tc:v100/fp16'") from None
    return dataclasses.replace(policy, matmul_hardware=matmul)


def _scaled(policy: Precision, modifier: str, text: str) -> Precision:
    """The policy with "+scaled:<fmt>" applied: its "matmul" site on the tc modifier's GPU with
    fmt inputs, operands scaled per vector (module docstring)."""
    tc = policy.matmul_hardware
    if tc is None or tc.core is None:
        raise ValueError(f"precision {_short(text)}: '+{_short(modifier)[1:-1]}' needs a tensor-core "
                         f"modifier before it, e.g. 'bf16+tc:h100+scaled:e4m3'")
    try:
        matmul = hardware.tensor_core(tc.core.gpu, modifier[len("scaled:"):], tc.output_format)
    except (TypeError, ValueError) as error:
        raise ValueError(f"precision {_short(text)}: bad scaled modifier {_short(modifier)} "
                         f"({error}); use scaled:<fmt>, e.g. 'bf16+tc:h100+scaled:e4m3'") from None
    return dataclasses.replace(policy, scaled_matmul=dataclasses.replace(matmul, scaled=True))


def _apply(policy: Precision, modifier: str, text: str) -> Precision:
    """The policy with one '+' modifier applied (grammar in the module docstring)."""
    scope, _, mode = modifier.rpartition(":")
    if scope and scope not in _SUMS:
        raise _modifier_error(text, modifier, f"scope must be one of {', '.join(_SUMS)}")
    word, *formats = mode.split("/")
    try:
        formats = [None if f in ("", "=") else floats.get(f) for f in formats]
    except ValueError as error:
        raise _modifier_error(text, modifier, str(error)) from None
    changes = {}
    for name in [scope] if scope else list(_SUMS):
        base_format = policy._field_format(name)
        if word.startswith("block"):
            digits = word[len("block"):]
            if (not re.fullmatch(r"[0-9]{1,7}", digits) or not 1 <= int(digits) <= MAX_BLOCK
                    or len(formats) > 2):  # ASCII digits: not '²', '٣' or 5,000 of them
                raise _modifier_error(text, modifier, f"block needs a size K in 1..{MAX_BLOCK} "
                                                      "written in digits 0-9, and at most two "
                                                      "formats")
            inner = formats[0] if formats else None
            outer = formats[1] if len(formats) > 1 else None
            how = Accumulation("blocked", inner or (None if base_format else _BLOCK_FALLBACK),
                               block=int(digits), promote=outer)
        elif word in ("sequential", "pairwise", "kahan"):
            if len(formats) > 1:
                raise _modifier_error(text, modifier, "one accumulator format at most")
            fmt = formats[0] if formats else None
            how = Accumulation(word, fmt or (None if base_format else _FALLBACK))
        else:
            raise _modifier_error(text, modifier, "unknown mode")
        changes[_SUMS[name]] = how
    try:
        return dataclasses.replace(policy, **changes)
    except ValueError as error:  # e.g. an accumulator wider than the float32 container
        raise _modifier_error(text, modifier, str(error)) from None


EXAMPLES = ("bf16-pure+pairwise", "bf16-pure+kahan", "bf16-pure+block32", "fp8_e4m3fn+block128",
            "bf16+tc:h100", "fp8_e4m3fn+tc:h100", "fp16+tc:v100/fp16", "bf16+tc:h100+scaled:e4m3",
            "tpu-default")


def names() -> list[str]:
    """The base presets, then a few accumulation examples (the grammar allows many more)."""
    listed = ["fp32", "fp32-pure", "fp64"]
    for name in floats.names():
        if name not in ("fp64", "fp32"):
            listed += [name, f"{name}-pure"]
    return listed + list(EXAMPLES)


# ---------------------------------------------------------------------------------------------


def _round(x, fmt: FloatFormat | None):
    return x if fmt is None else round_to(x, fmt)


def ordered_sum(x, axis: int, fmt: FloatFormat, keepdims: bool = False):
    """Σ over `axis`, index 0 first, rounding the running sum to fmt after every addition."""
    return accumulated_sum(x, axis, fmt, SEQUENTIAL, keepdims)


def ordered_einsum(spec: str, a, b, fmt: FloatFormat):
    """einsum with the contraction done in a defined order: for k = 0, 1, …, K−1 (contracted axes
    flattened in the order they appear in `a`), acc ← fmt(acc + fmt(a_k · b_k))."""
    return accumulated_einsum(spec, a, b, fmt, SEQUENTIAL)


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

    def einsum(self, spec: str, a, b, site: str = "matmul"):
        """A contraction: XLA's when its accumulator format is None, else the ordered one. site:
        "matmul" (projections, MLP, logits), "scores" (q·k) or "values" (weights·values). The
        caller rounds the result to where it is stored (act / logits). Under "+tc:<gpu>" /
        "tpu-default" every contraction is that hardware's, except a site in off_hardware (a
        per-sum counterfactual): the MMA's operands (rounded to its input format), summed by the
        site's own Accumulation, the result rounded to the MMA's output format. "+scaled:<fmt>"
        takes the "matmul" site onto its own scaled MMAs."""
        if site == "matmul" and self.p.scaled_matmul is not None:
            return hardware.einsum(spec, a, b, self.p.scaled_matmul)
        hw = self.p.matmul_hardware
        if hw is not None and site not in self.p.off_hardware:
            return hardware.einsum(spec, a, b, hw)
        if hw is not None:  # off the hardware: the MMA's operands
            a, b = round_to(a, hw.input_format), round_to(b, hw.input_format)
        fmt = self.p.sum_format(site)
        if fmt is None:
            out = jnp.einsum(spec, a, b, precision=lax.Precision.HIGHEST)
        else:
            out = accumulated_einsum(spec, a, b, fmt, self.p.summation(site))
        if hw is not None and hw.output_format != floats.FP32:  # and the MMA's output format
            out = round_to(out, hw.output_format)
        return out

    def sum(self, x, axis: int = -1, keepdims: bool = False):
        """A reduction inside a norm (over features)."""
        fmt = self.p.sum_format("norm")
        if fmt is None:
            return jnp.sum(x, axis=axis, keepdims=keepdims)
        return accumulated_sum(x, axis % x.ndim, fmt, self.p.norm_sum, keepdims)

    def elementwise(self, x):
        """Intermediate elementwise results (norm statistics, gates) stored in the accumulation
        format when one is set: in the "-pure" presets every operation is rounded."""
        return _round(x, self.p.accumulation)

    def softmax_terms(self, scores, valid):
        """The terms of the softmax denominator: exp(score − row max) in the softmax format,
        exact zeros at masked keys (softmax adds these; the explorer shows their running sum)."""
        fmt = self.p.softmax
        row_max = jnp.max(jnp.where(valid, scores, -jnp.inf), axis=-1, keepdims=True)
        exps = _round(jnp.exp(_round(scores - row_max, fmt)), fmt)
        return jnp.where(valid, exps, 0.0)

    def softmax(self, scores, valid):
        """Softmax over the last axis, restricted to `valid` keys (every row has at least one).

        Masking is a select on the exponentials, so masked keys contribute exact zeros whatever the
        format (a saturating format could not hold −inf)."""
        fmt = self.p.softmax
        exps = self.softmax_terms(scores, valid)
        sum_format = self.p.sum_format("softmax")
        if sum_format is None:
            total = jnp.sum(exps, axis=-1, keepdims=True)
        else:
            total = accumulated_sum(exps, exps.ndim - 1, sum_format, self.p.softmax_sum,
                                    keepdims=True)
        # The weights stay in the softmax format (not `activations`): the online-softmax path never
        # stores them, and both paths must compute the same function.
        return _round(exps / total, fmt)
