"""ModelConfig: the static, validated description of one decoder-only Transformer.

A config is a frozen dataclass, hashable, so it can be a static argument of `jax.jit`. Every field
is checked on construction: a bad value raises ValueError/TypeError naming the field and what is
allowed, before anything is traced.

The same fields express the theory model of "Transformers need glasses!" (vector inputs, one head,
W_V = W_O = I, the linear theory norm x ↦ x/β) and a real LLM such as Gemma 3 270M (GQA, sandwich
RMSNorm, qk-norm, alternating local/global attention with two RoPE bases, GeGLU).
"""

from __future__ import annotations

import dataclasses
import math
import numbers

POSITIONALS = ("none", "sinusoidal", "learned", "rope", "alibi")
NORMS = ("layernorm", "rmsnorm", "none", "theory")
NORM_PLACEMENTS = ("pre", "post", "sandwich")
MLPS = ("none", "relu", "gelu", "gelu_tanh", "swiglu", "geglu")
GATED_MLPS = ("swiglu", "geglu")


def _per_layer(name, value, n_layers, check):
    """Normalise a scalar-or-per-layer field to a tuple of length n_layers, checking each entry."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,) * n_layers
    if len(values) != n_layers:
        raise ValueError(f"ModelConfig: {name} has {len(values)} entries, n_layers is {n_layers}")
    for v in values:
        check(name, v)
    return values


def _check_int(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"ModelConfig: {name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"ModelConfig: {name} must be >= {minimum}, got {value}")


def _check_positive_float(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"ModelConfig: {name} must be a number, got {type(value).__name__} {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"ModelConfig: {name} must be finite and > 0, got {value}")


def _check_choice(name, value, allowed):
    if not isinstance(value, str):
        raise TypeError(f"ModelConfig: {name} must be a str, one of {allowed}; got {value!r}")
    if value not in allowed:
        raise ValueError(f"ModelConfig: {name} must be one of {allowed}, got {value!r}")


def _check_bool(name, value):
    if not isinstance(value, bool):
        raise TypeError(f"ModelConfig: {name} must be a bool, got {value!r}")


def _check_window(name, value):
    if value is not None:
        _check_int(name, value, minimum=1)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """A decoder-only Transformer. Defaults describe a small pre-LN RoPE model.

    Attention: key j is visible to query i iff j ≤ i (causal) and i − j < sliding_window (if set).
    Scores are (q·query_scale)·k + positional bias; query_scale defaults to d_head^−½.
    Layer-indexed fields (sliding_window, theory_beta1, theory_beta2) take one value for every layer
    or a tuple with one entry per layer. rope_base_local is used on layers that have a window.
    """

    vocab_size: int | None = None  # None or 0: the model takes input vectors (n, d_model)
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    n_kv_heads: int | None = None  # None → n_heads; fewer → grouped-query attention
    d_head: int | None = None  # None → d_model // n_heads
    d_ff: int | None = None  # None → 4·d_model
    positional: str = "rope"
    max_len: int | None = None  # table size of "learned" positions (required for it)
    rope_base: float = 10_000.0
    rope_base_local: float | None = None  # RoPE base on windowed layers; None → rope_base
    alibi_slopes: tuple[float, ...] | None = None  # None → 2^(−8h/H), h = 1..H
    norm: str = "rmsnorm"
    norm_placement: str = "pre"
    norm_eps: float = 1e-6
    theory_beta1: float | tuple[float, ...] = 1.0  # norm₁ = x/β₁ (before attention)
    theory_beta2: float | tuple[float, ...] = 1.0  # norm₂ = x/β₂ (before the MLP)
    theory_beta3: float = 1.0  # final norm₃ = x/β₃
    qk_norm: bool = False  # RMSNorm over d_head of each query and key head
    mlp: str = "gelu"
    causal: bool = True
    sliding_window: int | None | tuple[int | None, ...] = None
    embed_scale: float = 1.0  # token embeddings are multiplied by this (Gemma: √d_model)
    query_scale: float | None = None  # None → d_head^−½
    tied_embedding: bool = True  # unembedding = embeddingᵀ
    identity_value_output: bool = False  # W_V = W_O = I, the paper's "abuse of notation" model
    init_std: float | None = None  # None → 1/√fan_in for every matrix (variance preserving)
    name: str | None = None

    def __post_init__(self):
        set_ = lambda field, value: object.__setattr__(self, field, value)  # noqa: E731
        if self.vocab_size is not None:
            _check_int("vocab_size", self.vocab_size, minimum=0)
            if self.vocab_size == 0:
                set_("vocab_size", None)
        for field in ("d_model", "n_layers", "n_heads"):
            _check_int(field, getattr(self, field))
        if self.n_kv_heads is None:
            set_("n_kv_heads", self.n_heads)
        _check_int("n_kv_heads", self.n_kv_heads)
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"ModelConfig: n_kv_heads ({self.n_kv_heads}) must divide n_heads "
                             f"({self.n_heads})")
        if self.d_head is None:
            if self.d_model % self.n_heads:
                raise ValueError(f"ModelConfig: d_model ({self.d_model}) must be divisible by "
                                 f"n_heads ({self.n_heads}), or give d_head explicitly")
            set_("d_head", self.d_model // self.n_heads)
        _check_int("d_head", self.d_head)
        if self.d_ff is None:
            set_("d_ff", 4 * self.d_model)
        _check_int("d_ff", self.d_ff)
        _check_choice("positional", self.positional, POSITIONALS)
        _check_choice("norm", self.norm, NORMS)
        _check_choice("norm_placement", self.norm_placement, NORM_PLACEMENTS)
        _check_choice("mlp", self.mlp, MLPS)
        if self.max_len is not None:
            _check_int("max_len", self.max_len)
        if self.positional == "learned" and self.max_len is None:
            raise ValueError("ModelConfig: positional='learned' needs max_len (the table size)")
        if self.positional == "rope" and self.d_head % 2:
            raise ValueError(f"ModelConfig: positional='rope' needs an even d_head, got {self.d_head}")
        if self.positional == "sinusoidal" and self.d_model % 2:
            raise ValueError(f"ModelConfig: positional='sinusoidal' needs an even d_model, got "
                             f"{self.d_model}")
        _check_positive_float("rope_base", self.rope_base)
        if self.rope_base_local is not None:
            _check_positive_float("rope_base_local", self.rope_base_local)
        if self.alibi_slopes is not None:
            slopes = tuple(self.alibi_slopes) if isinstance(self.alibi_slopes, (tuple, list)) else None
            if slopes is None or len(slopes) != self.n_heads:
                raise ValueError(f"ModelConfig: alibi_slopes must be a tuple of n_heads "
                                 f"({self.n_heads}) positive numbers, got {self.alibi_slopes!r}")
            for s in slopes:
                _check_positive_float("alibi_slopes", s)
            set_("alibi_slopes", tuple(float(s) for s in slopes))
        _check_positive_float("norm_eps", self.norm_eps)
        set_("theory_beta1", _per_layer("theory_beta1", self.theory_beta1, self.n_layers,
                                        _check_positive_float))
        set_("theory_beta2", _per_layer("theory_beta2", self.theory_beta2, self.n_layers,
                                        _check_positive_float))
        _check_positive_float("theory_beta3", self.theory_beta3)
        set_("sliding_window", _per_layer("sliding_window", self.sliding_window, self.n_layers,
                                          _check_window))
        for field in ("qk_norm", "causal", "tied_embedding", "identity_value_output"):
            _check_bool(field, getattr(self, field))
        _check_positive_float("embed_scale", self.embed_scale)
        if self.query_scale is None:
            set_("query_scale", self.d_head ** -0.5)
        _check_positive_float("query_scale", self.query_scale)
        if self.init_std is not None:
            _check_positive_float("init_std", self.init_std)
        if self.identity_value_output and not (
            self.n_kv_heads == self.n_heads and self.n_heads * self.d_head == self.d_model
        ):
            raise ValueError("ModelConfig: identity_value_output needs n_kv_heads == n_heads and "
                             f"n_heads·d_head == d_model; got {self.n_kv_heads}, {self.n_heads}·"
                             f"{self.d_head} vs {self.d_model}")
        if self.name is not None and not isinstance(self.name, str):
            raise TypeError(f"ModelConfig: name must be a str or None, got {self.name!r}")

    def replace(self, **changes) -> "ModelConfig":
        """A copy with some fields changed, validated again. Derived defaults (d_head, d_ff,
        query_scale, n_kv_heads) are recomputed unless given, when the fields they derive from
        change."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise TypeError(f"ModelConfig.replace: unknown field(s) {sorted(unknown)}")
        # A derived field that still holds its default follows the fields it derives from.
        derived = {
            "d_head": ("d_model", "n_heads") if self.d_model == self.d_head * self.n_heads else (),
            "d_ff": ("d_model",) if self.d_ff == 4 * self.d_model else (),
            "query_scale": ("d_model", "n_heads", "d_head")
            if self.query_scale == self.d_head ** -0.5 else (),
            "n_kv_heads": ("n_heads",) if self.n_kv_heads == self.n_heads else (),
        }
        for field, sources in derived.items():
            if field not in changes and any(s in changes for s in sources):
                changes[field] = None
        if "n_layers" in changes:
            for field in ("sliding_window", "theory_beta1", "theory_beta2"):
                values = getattr(self, field)
                if field not in changes and len(set(values)) == 1:
                    changes[field] = values[0]
        return dataclasses.replace(self, **changes)

    # ---- derived facts used by the model ----
    @property
    def takes_tokens(self) -> bool:
        return self.vocab_size is not None

    @property
    def group_size(self) -> int:
        """Query heads per key/value head."""
        return self.n_heads // self.n_kv_heads

    def rope_base_of(self, layer: int) -> float:
        if self.sliding_window[layer] is not None and self.rope_base_local is not None:
            return self.rope_base_local
        return self.rope_base

    def alibi_slopes_or_default(self) -> tuple[float, ...]:
        if self.alibi_slopes is not None:
            return self.alibi_slopes
        return tuple(2.0 ** (-8.0 * h / self.n_heads) for h in range(1, self.n_heads + 1))
