"""The one decoder-only Transformer: init_params, forward, Trace.

Read top to bottom. One block (pre-LN, theory.md §1; "post" and "sandwich" placements are variants):

    z = h + attention(norm₁(h))          attention over keys j ≤ i (causal) within the window
    h' = z + mlp(norm₂(z))               the residual stream entering the next block

Parameters are a plain pytree (dicts and a list of per-layer dicts); the config is static. The
blocks run as one lax.scan over the layers stacked on a leading axis (`stack_layers`); the Python
loop over them stays as the reference (scan_layers=False). Dimension
letters follow attention.py: b batch, n position, d model width, k kv heads, g query heads per kv
head, h head width, f MLP width, v vocabulary.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from squash_sim import attention as attn
from squash_sim import positional
from squash_sim.config import GATED_MLPS, ModelConfig
from squash_sim.precision import Numerics, Precision
from squash_sim.precision import get as get_precision


class Health(NamedTuple):
    """The numerics diagnostic of one forward pass (forward(..., numerics=True)), per stage and
    position: stage 0 is the embedding, stage 1 + ℓ block ℓ (q, k, v, attention output, MLP
    output, the stream after each sub-layer), stage L + 1 the final norm and logits. Shapes
    (L+2, n), batched (b, L+2, n); int32 counts over the feature axes.

    nonfinite       values that are NaN or ±inf
    overflow        values that overflowed or saturated the policy's activation format
                    (|x| ≥ its largest finite value; float32's when activations are not rounded)
    norm_overflow   normalisations (RMSNorm/LayerNorm/qk-norm rows) whose mean square was not
                    finite: x² overflowed, so rsqrt gave 0 and the output is 0 whatever x was

    A causal model's row j depends only on positions ≤ j, so a result read at row j is sound when
    every count at positions ≤ j is zero (`clean_upto`)."""

    nonfinite: jax.Array
    overflow: jax.Array
    norm_overflow: jax.Array

    def total(self) -> np.ndarray:
        """Sum of the three counts, (…, L+2, n)."""
        return np.asarray(self.nonfinite) + np.asarray(self.overflow) + np.asarray(
            self.norm_overflow)

    def clean_upto(self, causal: bool = True) -> np.ndarray:
        """(…, n) bool: whether nothing overflowed at any stage on positions 0..j (every position
        when the model is not causal)."""
        bad = self.total().sum(axis=-2) > 0  # (…, n)
        if causal:
            return ~np.logical_or.accumulate(bad, axis=-1)
        return np.broadcast_to(~bad.any(axis=-1, keepdims=True), bad.shape)

    def status_upto(self, causal: bool = True) -> np.ndarray:
        """(…, n) str: "ok", "overflow" (finite but saturated, or a norm's x² overflowed) or
        "non-finite" (a NaN or inf on positions 0..j)."""
        nonfinite = np.asarray(self.nonfinite).sum(axis=-2) > 0
        bad = self.total().sum(axis=-2) > 0
        if causal:
            nonfinite = np.logical_or.accumulate(nonfinite, axis=-1)
            bad = np.logical_or.accumulate(bad, axis=-1)
        else:
            nonfinite = np.broadcast_to(nonfinite.any(axis=-1, keepdims=True), nonfinite.shape)
            bad = np.broadcast_to(bad.any(axis=-1, keepdims=True), bad.shape)
        return np.where(nonfinite, "non-finite", np.where(bad, "overflow", "ok"))

    def first_problem(self) -> str | None:
        """Where the first problem appears, in words (unbatched Health), or None."""
        total = self.total()
        if total.ndim != 2 or not total.any():
            return None
        stage, position = (int(i) for i in np.argwhere(total > 0)[0])
        layers = total.shape[0] - 2
        where = ("the embedding" if stage == 0 else "the final norm/logits" if stage == layers + 1
                 else f"block {stage - 1}")
        kinds = [name for name in self._fields if np.asarray(getattr(self, name))[stage].any()]
        return f"{where}, position {position} ({', '.join(kinds)})"


class Trace(NamedTuple):
    """What a forward pass exposes. Unbatched shapes shown; batched inputs add a leading b.

    hidden     (L+1, n, d)   h[0] … h[L]: the residual stream entering each block; h[L] leaves
                             the last block, before the final norm
    final      (n, d)        after the final norm: y_i of the theory (row i = last-token output of
                             the prefix of length i+1)
    logits     (n, vocab)    unembedded final, when the model has a vocabulary (else None)
    attention  (L, heads, n, n)  attention weights, when return_attention=True (else None)
    health     Health        the numerics diagnostic, when numerics=True (else None)
    cache      dict          the activation cache, when cache=True (else None): name → array
                             stacked over layers, see ACTIVATION_NAMES and docs/activation_cache.md
    """

    hidden: jax.Array
    final: jax.Array
    logits: jax.Array | None = None
    attention: jax.Array | None = None
    health: Health | None = None
    cache: dict | None = None


# name → (shape per layer, unbatched; what it is). Every entry is stacked over layers: (L, …).
ACTIVATION_NAMES = {
    "resid_pre": ("(n, d)", "h[ℓ], the stream entering block ℓ (after any intervention)"),
    "attn_in": ("(n, d)", "norm₁(h[ℓ]): the attention's input (pre-norm; h[ℓ] itself for post-norm)"),
    "q": ("(n, heads, h)", "queries after qk-norm and RoPE, before the query scale"),
    "k": ("(n, kv_heads, h)", "keys after qk-norm and RoPE"),
    "v": ("(n, kv_heads, h)", "values"),
    "attn_out": ("(n, d)", "what the attention branch adds to the stream (after W_O and any "
                 "post-attention norm)"),
    "resid_mid": ("(n, d)", "z: the stream after the attention sub-layer"),
    "mlp_in": ("(n, d)", "norm₂(z): the MLP's input (absent when mlp='none')"),
    "mlp_out": ("(n, d)", "what the MLP branch adds (after any post-MLP norm; absent when "
                "mlp='none')"),
    "resid_post": ("(n, d)", "h[ℓ+1], the stream leaving block ℓ (before a later intervention)"),
}


@runtime_checkable
class Hook(Protocol):
    """What forward(..., intervention=hook) calls: squash_sim.interventions.Intervention is one; a
    user's own hook needs these three methods (and to be a pytree if it holds arrays).

        check(config, batch, n)      raise ValueError before tracing if it cannot apply
        start(h0) → state            state carried through the blocks
        before_block(j, h, state) → (h, kv_source, skip_attention, state)
                                     for j = 0..L: the stream to use for block j (j = L: h[L]), a
                                     stream keys/values come from (None: h), a traced bool that
                                     skips block j's attention (None: no), the new state

    j is a traced int32 scalar for the blocks the layer scan runs (forward's default), a Python
    int otherwise (forward(..., scan_layers=False), and j = L): compare it with jnp, not `if`."""

    def check(self, config: ModelConfig, batch: int, n: int) -> None: ...

    def start(self, h): ...

    def before_block(self, j: int, h, state): ...


class _Probe:
    """Collects the numerics diagnostic and the activation cache while the forward is traced.
    Stages are appended one at a time (the embedding, an unrolled block, the final norm) or as a
    run of blocks stacked by the layer scan (`extend`, from a child probe's `collect`)."""

    def __init__(self, precision: Precision, numerics: str, cache: bool):
        # numerics: "full" counts everything; "guard" (forward's default) only what is never
        # legitimate and costs next to nothing: norms whose x² overflowed, a non-finite output.
        self.precision, self.mode, self.caching = precision, numerics, cache
        self.numerics, self.full = numerics != "off", numerics == "full"
        fmt = precision.activations
        self.limit = fmt.max if fmt is not None else float(np.finfo(
            np.float64 if precision.compute_dtype == "float64" else np.float32).max)
        # per stage: [nonfinite, overflow, norm_overflow], each (b, n) or 0; or a _Run of stages
        self.stages: list = []
        self.layers: list = []  # per stage: {name: (b, n, …)}; or a _Run {name: (b, s, n, …)}

    def child(self) -> "_Probe":
        """An empty probe with the same settings, for the blocks inside one scan step."""
        return _Probe(self.precision, self.mode, self.caching)

    def collect(self, shape) -> tuple:
        """This (child) probe's stages, stacked on a leading axis: (counts (3, s, b, n) or None,
        cache {name: (s, b, …)} or None). shape: (b, n)."""
        counts = None if not self.numerics else jnp.stack([
            jnp.stack([jnp.broadcast_to(stage[i], shape) for stage in self.stages])
            for i in range(3)]).astype(jnp.int32)
        cache = None if not self.caching else {
            name: jnp.stack([layer[name] for layer in self.layers]) for name in self.layers[0]}
        return counts, cache

    def extend(self, counts, cache) -> None:
        """Append stages stacked on their leading axis (collect's output, runs folded together)."""
        if self.numerics:
            self.stages.append(_Run(jnp.moveaxis(counts, 1, 2)))  # (3, b, s, n)
        if self.caching:
            self.layers.append(_Run({name: jnp.moveaxis(x, 0, 1) for name, x in cache.items()}))

    def stage(self) -> None:
        if self.numerics:
            self.stages.append([0, 0, 0])
        if self.caching:
            self.layers.append({})

    def values(self, x, name: str | None = None) -> None:
        """Count x's non-finite and saturated values; x: (b, n, …)."""
        if self.full:
            axes = tuple(range(2, x.ndim))
            counts = self.stages[-1]
            counts[0] = counts[0] + jnp.sum(~jnp.isfinite(x), axis=axes, dtype=jnp.int32)
            counts[1] = counts[1] + jnp.sum(jnp.abs(x) >= self.limit, axis=axes, dtype=jnp.int32)
        if self.caching and name is not None:
            self.layers[-1][name] = x

    def output(self, x) -> None:
        """The model's output: counted even by the guard."""
        if self.numerics and not self.full:
            self.stages[-1][0] = self.stages[-1][0] + jnp.sum(
                ~jnp.isfinite(x), axis=tuple(range(2, x.ndim)), dtype=jnp.int32)
        self.values(x)

    def norm_input(self, mean_square) -> None:
        """A norm's mean square (b, n, [heads,] 1): not finite means its x² overflowed."""
        if self.numerics:
            axes = tuple(range(2, mean_square.ndim))
            self.stages[-1][2] = self.stages[-1][2] + jnp.sum(
                ~jnp.isfinite(mean_square), axis=axes, dtype=jnp.int32)

    def health(self, like) -> Health | None:
        if not self.numerics:
            return None
        zero = jnp.zeros(like.shape[:2], jnp.int32)  # (b, n)
        pieces = [s.value if isinstance(s, _Run) else  # (3, b, s, n)
                  jnp.stack([jnp.broadcast_to(c, zero.shape) for c in s])[:, :, None]
                  for s in self.stages]
        return Health(*jnp.concatenate(pieces, axis=2))  # each (b, L+2, n)

    def cache(self) -> dict | None:
        if not self.caching:
            return None
        per_layer = self.layers[1:-1]  # stage 0 is the embedding, the last the final norm
        if not per_layer:
            return {}
        pieces = [s.value if isinstance(s, _Run) else {k: x[:, None] for k, x in s.items()}
                  for s in per_layer]
        return {name: jnp.concatenate([piece[name] for piece in pieces], axis=1)  # (b, L, …)
                for name in pieces[0]}


class _Run(NamedTuple):
    """Stages of a run of blocks, stacked over layers (see _Probe.extend)."""

    value: object


# ---------------------------------------------------------------------------------------------
# Parameters


def _norm_params(config: ModelConfig, width: int) -> dict:
    if config.norm == "rmsnorm":
        return {"scale": jnp.ones((width,))}
    if config.norm == "layernorm":
        return {"scale": jnp.ones((width,)), "bias": jnp.zeros((width,))}
    return {}  # "none" and "theory" have nothing to learn


def init_params(config: ModelConfig, key: jax.Array) -> dict:
    """Random parameters for `config`: matrices N(0, init_std²) with init_std = 1/√fan_in by
    default (inputs of unit variance give q, k, v of unit variance), embeddings N(0, 1), norm scales
    1. Deterministic in `key`."""
    if not isinstance(config, ModelConfig):
        raise TypeError(f"init_params: config must be a ModelConfig, got {type(config).__name__}")
    c = config

    def normal(key, shape, fan_in):
        std = c.init_std if c.init_std is not None else fan_in ** -0.5
        return std * jax.random.normal(key, shape, jnp.float32)

    # Every tensor draws from its own key, so adding an option never reshuffles the others.
    k_embed, k_unembed, k_positions = jax.random.split(jax.random.fold_in(key, 0), 3)
    params: dict = {}
    if c.takes_tokens:
        params["embedding"] = normal(k_embed, (c.vocab_size, c.d_model), 1)  # (v, d)
        if not c.tied_embedding:
            params["unembedding"] = normal(k_unembed, (c.d_model, c.vocab_size), c.d_model)
    if c.positional == "learned":
        params["positions"] = normal(k_positions, (c.max_len, c.d_model), c.d_model)
    layers = []
    for index in range(c.n_layers):
        kq, kk, kv, ko, k_in, k_gate, k_out = jax.random.split(jax.random.fold_in(key, 1 + index), 7)
        layer = {
            "attn_norm": _norm_params(c, c.d_model),
            "wq": normal(kq, (c.d_model, c.n_heads, c.d_head), c.d_model),  # (d, heads, h)
            "wk": normal(kk, (c.d_model, c.n_kv_heads, c.d_head), c.d_model),  # (d, k, h)
        }
        if not c.identity_value_output:
            layer["wv"] = normal(kv, (c.d_model, c.n_kv_heads, c.d_head), c.d_model)
            layer["wo"] = normal(ko, (c.n_heads, c.d_head, c.d_model), c.n_heads * c.d_head)
        if c.qk_norm:
            layer["q_norm"] = {"scale": jnp.ones((c.d_head,))}
            layer["k_norm"] = {"scale": jnp.ones((c.d_head,))}
        if c.norm_placement == "sandwich":
            layer["post_attn_norm"] = _norm_params(c, c.d_model)
        if c.mlp != "none":
            layer["mlp_norm"] = _norm_params(c, c.d_model)
            layer["w_in"] = normal(k_in, (c.d_model, c.d_ff), c.d_model)  # (d, f)
            if c.mlp in GATED_MLPS:
                layer["w_gate"] = normal(k_gate, (c.d_model, c.d_ff), c.d_model)
            layer["w_out"] = normal(k_out, (c.d_ff, c.d_model), c.d_ff)  # (f, d)
            if c.norm_placement == "sandwich":
                layer["post_mlp_norm"] = _norm_params(c, c.d_model)
        layers.append(layer)
    params["layers"] = layers
    params["final_norm"] = _norm_params(c, c.d_model)
    return params


# ---------------------------------------------------------------------------------------------
# The pieces of a block. `probe` (a _Probe) records the numerics diagnostic and the cache.


def norm(x, p: dict, config: ModelConfig, num: Numerics, beta: float = 1.0, probe=None):
    """Normalise over the last axis: LayerNorm, RMSNorm, nothing, or the theory's x ↦ x/β."""
    if config.norm == "none":
        return x
    if config.norm == "theory":
        return num.act(x / beta)
    width = x.shape[-1]
    if config.norm == "layernorm":
        mean = num.elementwise(num.sum(x, keepdims=True) / width)
        x = num.elementwise(x - mean)
    mean_square = num.elementwise(num.sum(num.elementwise(x * x), keepdims=True) / width)
    if probe is not None:
        probe.norm_input(mean_square)
    inv_rms = num.elementwise(lax.rsqrt(mean_square + config.norm_eps))
    y = num.elementwise(x * inv_rms) * p["scale"]
    if config.norm == "layernorm":
        y = num.elementwise(y) + p["bias"]
    return num.act(y)


def head_norm(x, scale, config: ModelConfig, num: Numerics, probe=None):
    """RMSNorm over the head width (qk-norm), whatever the model's main norm."""
    mean_square = num.elementwise(num.sum(num.elementwise(x * x), keepdims=True) / x.shape[-1])
    if probe is not None:
        probe.norm_input(mean_square)
    return num.act(num.elementwise(x * lax.rsqrt(mean_square + config.norm_eps)) * scale)


def attention_branch(x, p: dict, layer: int, config: ModelConfig, num: Numerics,
                     return_weights: bool, dense_max_len: int, block_size: int, x_kv=None,
                     probe=None):
    """Multi-head (grouped-query) causal attention of the normalised stream x: (b, n, d).
    x_kv: the normalised stream keys and values come from (default x; an intervention may
    override it, see interventions.freeze(form="kv"))."""
    c = config
    b, n, _ = x.shape
    x_kv = x if x_kv is None else x_kv
    q = num.act(num.einsum("bnd,dqh->bnqh", x, p["wq"]))  # (b, n, heads, h)
    k = num.act(num.einsum("bnd,dkh->bnkh", x_kv, p["wk"]))  # (b, n, k, h)
    if c.identity_value_output:
        v = x_kv.reshape(b, n, c.n_kv_heads, c.d_head)  # W_V = I: heads are slices of x
    else:
        v = num.act(num.einsum("bnd,dkh->bnkh", x_kv, p["wv"]))
    if c.qk_norm:
        q = head_norm(q, p["q_norm"]["scale"], c, num, probe)
        k = head_norm(k, p["k_norm"]["scale"], c, num, probe)
    q, k = positional.rotate_qk(q, k, c, layer, num)
    if probe is not None:
        probe.values(q, "q")
        probe.values(k, "k")
        probe.values(v, "v")
    q = num.act(q * c.query_scale)
    q = q.reshape(b, n, c.n_kv_heads, c.group_size, c.d_head)  # (b, n, k, g, h)
    out, weights = attn.attention(
        q, k, v, causal=c.causal, window=c.sliding_window[layer],
        alibi_slopes=positional.score_bias_slopes(c),
        num=num, return_weights=return_weights, dense_max_len=dense_max_len, block=block_size)
    out = out.reshape(b, n, c.n_heads, c.d_head)  # (b, n, heads, h)
    if c.identity_value_output:
        out = out.reshape(b, n, c.d_model)  # W_O = I: concatenate the heads
    else:
        out = num.act(num.einsum("bnqh,qhd->bnd", out, p["wo"]))
    if weights is not None:
        weights = weights.reshape(b, c.n_heads, n, n)  # (b, heads, n, m)
    return out, weights


def mlp_branch(x, p: dict, config: ModelConfig, num: Numerics, probe=None):
    """ψ: a two-layer MLP, gated (SwiGLU / GeGLU) or not. x: (b, n, d)"""
    up = num.act(num.einsum("bnd,df->bnf", x, p["w_in"]))
    if config.mlp == "relu":
        hidden = jax.nn.relu(up)
    elif config.mlp == "gelu":
        hidden = jax.nn.gelu(up, approximate=False)
    elif config.mlp == "gelu_tanh":
        hidden = jax.nn.gelu(up, approximate=True)
    else:
        gate = num.act(num.einsum("bnd,df->bnf", x, p["w_gate"]))
        activation = jax.nn.silu if config.mlp == "swiglu" else (
            lambda g: jax.nn.gelu(g, approximate=True))
        hidden = num.elementwise(num.act(activation(gate))) * up
    hidden = num.act(hidden)
    if probe is not None:
        probe.values(hidden)
    return num.act(num.einsum("bnf,fd->bnd", hidden, p["w_out"]))


def block(h, p: dict, layer: int, config: ModelConfig, num: Numerics, return_weights: bool,
          dense_max_len: int, block_size: int, kv_source=None, skip_attention=None, probe=None):
    """One Transformer block: the residual stream h[layer] → h[layer + 1], both (b, n, d).

    Hooks for interventions (None: the plain block): kv_source, a stream (b, n, d) that keys and
    values are computed from instead of h; skip_attention, a traced bool: when true the whole
    attention branch (norm, attention, post-norm, residual add) is skipped and z = h."""
    c = config
    beta1, beta2 = c.theory_beta1[layer], c.theory_beta2[layer]
    kv_source = h if kv_source is None else kv_source
    record = (lambda x, name: probe.values(x, name)) if probe is not None else (lambda x, name: None)
    record(h, "resid_pre")
    if c.norm_placement == "post":
        record(h, "attn_in")
        out, weights = attention_branch(h, p, layer, c, num, return_weights, dense_max_len,
                                        block_size, x_kv=kv_source, probe=probe)
        record(out, "attn_out")
        z = norm(num.act(h + out), p["attn_norm"], c, num, beta1, probe)
        if skip_attention is not None:
            z = jnp.where(skip_attention, h, z)
        record(z, "resid_mid")
        if c.mlp == "none":
            record(z, "resid_post")
            return z, weights
        record(z, "mlp_in")
        out = mlp_branch(z, p, c, num, probe)
        record(out, "mlp_out")
        h = norm(num.act(z + out), p["mlp_norm"], c, num, beta2, probe)
        record(h, "resid_post")
        return h, weights
    x_kv = None if kv_source is h else norm(kv_source, p["attn_norm"], c, num, beta1, probe)
    x = norm(h, p["attn_norm"], c, num, beta1, probe)
    record(x, "attn_in")
    out, weights = attention_branch(x, p, layer, c, num, return_weights, dense_max_len,
                                    block_size, x_kv=x_kv, probe=probe)
    if c.norm_placement == "sandwich":
        out = norm(out, p["post_attn_norm"], c, num, probe=probe)
    record(out, "attn_out")
    z = num.act(h + out)
    if skip_attention is not None:
        z = jnp.where(skip_attention, h, z)
    record(z, "resid_mid")
    if c.mlp == "none":
        record(z, "resid_post")
        return z, weights
    x = norm(z, p["mlp_norm"], c, num, beta2, probe)
    record(x, "mlp_in")
    out = mlp_branch(x, p, c, num, probe)
    if c.norm_placement == "sandwich":
        out = norm(out, p["post_mlp_norm"], c, num, probe=probe)
    record(out, "mlp_out")
    h = num.act(z + out)
    record(h, "resid_post")
    return h, weights


def embed(params: dict, inputs, config: ModelConfig, num: Numerics):
    """Token ids (b, n) or vectors (b, n, d) → h[0] (b, n, d), with any absolute positions added."""
    c = config
    if c.takes_tokens:
        x = num.act(params["embedding"][inputs] * c.embed_scale)
    else:
        x = num.act(inputs)
    return positional.add_to_stream(x, params, c, num)


# ---------------------------------------------------------------------------------------------
# The forward pass


# ---------------------------------------------------------------------------------------------
# The layer stack: identical blocks run as one lax.scan (architecture.md, "The layer stack")


def layer_period(config: ModelConfig) -> int:
    """The shortest p such that block ℓ is built like block ℓ mod p: the same window, RoPE base
    and theory β's (what a block takes from its index, fixed when the program is traced). 1 for a
    uniform stack (SmolLM2), 6 for Gemma 3 (five local layers, then one global)."""
    c = config
    keys = [(c.sliding_window[i], c.rope_base_of(i), c.theory_beta1[i], c.theory_beta2[i])
            for i in range(c.n_layers)]
    return next(p for p in range(1, c.n_layers + 1)
                if all(keys[i] == keys[i % p] for i in range(c.n_layers)))


class StackedLayers(NamedTuple):
    """params["layers"] as the layer scan reads it: `blocks`, one per-layer dict whose leaves
    carry two leading axes (scan step, layer within the step's p = layer_period layers), and
    `rest`, the trailing n_layers mod p layers (a plain list, run unrolled after the scan)."""

    blocks: dict
    rest: list


def stack_layers(layers: list, config: ModelConfig) -> StackedLayers:
    """Stack a list of per-layer dicts (params["layers"]) for the layer scan; the user-facing
    pytree keeps its list, `forward` stacks it once per params (cached) or inside a trace."""
    p = layer_period(config)
    steps = len(layers) // p
    blocks = jax.tree_util.tree_map(
        lambda *leaves: jnp.stack(leaves).reshape(steps, p, *leaves[0].shape),
        *layers[:steps * p])  # each leaf (steps, p, …)
    return StackedLayers(blocks, list(layers[steps * p:]))


_stack_layers_jit = jax.jit(stack_layers, static_argnums=1)  # one program per model shape

MIN_SCAN_LAYERS = 4  # shallower stacks compile as fast unrolled (tiny, 2 layers: 0.8 s vs 1.3 s)


def scans(config: ModelConfig, scan_layers: bool) -> bool:
    """Whether the forward runs its blocks as a scan: asked for, at least two steps, and at least
    MIN_SCAN_LAYERS layers (below that the loop's own compile and run cost is not repaid)."""
    return (scan_layers and config.n_layers >= MIN_SCAN_LAYERS
            and config.n_layers // layer_period(config) >= 2)


_STACK_OUTSIDE_BYTES = 64 << 20  # smaller layers are copied inside every call (< 10 ms)
_STACKED: dict[tuple, tuple] = {}  # ids of params["layers"]'s leaves → (leaves, StackedLayers)


def stacked_params(params: dict, config: ModelConfig, scan_layers: bool = True) -> dict:
    """params with "layers" as the layer scan reads them (StackedLayers), for a jitted function
    you call many times with the same params (greedy decoding's step): stacked once here, not
    inside every call. Not needed anywhere else: forward stacks concrete params once per set of
    arrays, and inside a trace the forward stacks them itself, which XLA hoists out of a loop
    over the forward (a sweep's lax.map over k; tests/test_layer_scan.py). Works inside a trace;
    unchanged when the forward would not scan."""
    if not scans(config, scan_layers) or isinstance(params["layers"], StackedLayers):
        return params
    if _traced(params["layers"]):
        return {**params, "layers": stack_layers(params["layers"], config)}
    return _stacked_once(params, config, small_inside=False)


def _stacked_once(params: dict, config: ModelConfig, small_inside: bool = True) -> dict:
    """params with "layers" stacked for the scan, stacked once per (immutable) set of arrays: a
    copy of the layers (SmolLM2: 0.4 GB) inside every call would cost more than a short forward."""
    leaves = jax.tree_util.tree_leaves(params["layers"])
    if not all(isinstance(leaf, jax.Array) for leaf in leaves) or (
            small_inside and sum(leaf.nbytes for leaf in leaves) < _STACK_OUTSIDE_BYTES):
        return params  # stacked inside the forward's program: no second program to compile
    key = (config, *(id(leaf) for leaf in leaves))
    if key not in _STACKED:
        if len(_STACKED) >= 2:
            _STACKED.pop(next(iter(_STACKED)))
        _STACKED[key] = (leaves, _stack_layers_jit(params["layers"], config))
    return {**params, "layers": _STACKED[key][1]}


def _forward(params, inputs, config: ModelConfig, precision: Precision, return_attention: bool,
             logits: str, dense_max_len: int, block_size: int, intervention=None,
             numerics: str = "off", cache: bool = False, scan_layers: bool = True) -> Trace:
    num = Numerics(precision)
    probe = _Probe(precision, numerics, cache) if (numerics != "off" or cache) else None
    layers = params["layers"]
    if scans(config, scan_layers) and not isinstance(layers, StackedLayers):
        layers = stack_layers(layers, config)
    elif not scans(config, scan_layers) and isinstance(layers, StackedLayers):
        raise ValueError("_forward: stacked layers need scan_layers=True")
    params = jax.tree_util.tree_map(num.params, {**params, "layers": layers})
    layers = params["layers"]  # rounded
    h = embed(params, inputs, config, num)
    if probe is not None:
        probe.stage()
        probe.values(h)
    # An intervention (a Hook, e.g. squash_sim.interventions) sees the stream entering every block
    # j and h[L]: it returns the stream to use, a keys/values source and an attention-skip flag.
    state = None if intervention is None else intervention.start(h)
    hidden, weights_per_layer = [], []  # runs of layers: (s, b, n, d), (s, b, heads, n, n)

    def run(h, state, layer: int, j, p: dict, probe):
        """Block `layer` (static: its window, RoPE base, β's) as block j (an int, or traced in
        the scan) of the stack: intervention, then the block. → h, state, h entering, weights"""
        kv_source = skip = None
        if intervention is not None:
            h, kv_source, skip, state = intervention.before_block(j, h, state)
        entering = h
        if probe is not None:
            probe.stage()
        h, weights = block(h, p, layer, config, num, return_attention, dense_max_len, block_size,
                           kv_source, skip, probe)
        return h, state, entering, weights

    if isinstance(layers, StackedLayers):
        period = layer_period(config)
        steps = config.n_layers // period

        def step(carry, xs):
            h, state = carry
            index, block_params = xs
            child = None if probe is None else probe.child()
            entering, weights = [], []
            for i in range(period):  # the p layers of one step, unrolled in the body
                p = jax.tree_util.tree_map(lambda a, i=i: a[i], block_params)
                h, state, h_in, w = run(h, state, i, index * period + i, p, child)
                entering.append(h_in)
                weights.append(w)
            ys = (jnp.stack(entering), jnp.stack(weights) if return_attention else None,
                  None if child is None else child.collect(h.shape[:2]))
            return (h, state), ys

        (h, state), (entering, weights, collected) = lax.scan(
            step, (h, state), (jnp.arange(steps, dtype=jnp.int32), params["layers"].blocks))

        def fold(x, axis=0):  # (steps, …, p, …) → (…, steps·p, …): layers in order
            x = jnp.moveaxis(x, 0, axis)
            return x.reshape(*x.shape[:axis], steps * period, *x.shape[axis + 2:])

        hidden.append(fold(entering))
        if return_attention:
            weights_per_layer.append(fold(weights))
        if probe is not None:
            counts, cached = collected
            probe.extend(None if counts is None else fold(counts, 1),
                         None if cached is None else {k: fold(x) for k, x in cached.items()})
        rest = list(enumerate(layers.rest, start=steps * period))
    else:
        rest = list(enumerate(layers))
    for layer, p in rest:  # the unrolled reference, and the layers after the last scan step
        h, state, entering, weights = run(h, state, layer, layer, p, probe)
        hidden.append(entering[None])
        weights_per_layer.append(None if weights is None else weights[None])
    if intervention is not None:
        h, _, _, state = intervention.before_block(config.n_layers, h, state)
    hidden.append(h[None])
    if probe is not None:
        probe.stage()
    if config.norm_placement == "post":
        final = h  # each block already ends in a norm
    else:
        final = norm(h, params["final_norm"], config, num, config.theory_beta3, probe)
    out_logits = None
    if config.takes_tokens and logits != "none":
        read = final[:, -1:] if logits == "last" else final
        # Tied: contract with the (v, d) embedding directly. A transpose first gave jit (which
        # folds it into the matmul) and eager (which materialises it) different sums.
        out_logits = num.act(num.einsum("bnd,vd->bnv", read, params["embedding"])
                             if config.tied_embedding else
                             num.einsum("bnd,dv->bnv", read, params["unembedding"]))
    if probe is not None:
        probe.output(final)
        if out_logits is not None:
            probe.output(out_logits[:, -1:] if logits == "last" else out_logits)
    return Trace(
        hidden=jnp.moveaxis(jnp.concatenate(hidden), 0, 1),  # (b, L+1, n, d)
        final=final,
        logits=out_logits,
        attention=jnp.moveaxis(jnp.concatenate(weights_per_layer), 0, 1)
        if return_attention else None,  # (b, L, heads, n, n)
        health=None if probe is None else probe.health(final),
        cache=None if probe is None else probe.cache(),
    )


_forward_jit = jax.jit(_forward, static_argnames=(
    "config", "precision", "return_attention", "logits", "dense_max_len", "block_size",
    "numerics", "cache", "scan_layers"))


def traceable_forward(config: ModelConfig, precision: Precision | str = "fp32", *,
                      return_attention: bool = False, logits: str = "all",
                      numerics: bool = False, cache: bool = False, scan_layers: bool = True):
    """forward as a pure function (params, inputs (b, n[, d]), intervention=None) → Trace: batched
    inputs only, no checks on params and inputs. `forward` itself composes with jit, vmap and grad
    (prefer it); this is the lower-level form the experiments vmap over instances.
    Float64 policies need `jax.enable_x64(True)` around the call."""
    if not isinstance(config, ModelConfig):
        raise TypeError(f"traceable_forward: config must be a ModelConfig, got {type(config).__name__}")
    precision = get_precision(precision)
    if logits not in ("all", "last", "none"):
        raise ValueError(f"traceable_forward: logits must be 'all', 'last' or 'none', got {logits!r}")
    return functools.partial(_forward, config=config, precision=precision,
                             return_attention=bool(return_attention), logits=logits,
                             dense_max_len=attn.DENSE_MAX_LEN, block_size=attn.BLOCK,
                             numerics="full" if numerics else "off", cache=bool(cache),
                             scan_layers=bool(scan_layers))


def _traced(tree) -> bool:
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(tree))


def forward(params, inputs, config: ModelConfig, precision: Precision | str = "fp32", *,
            return_attention: bool = False, logits: str = "all",
            dense_max_len: int = attn.DENSE_MAX_LEN, attention_block: int = attn.BLOCK,
            intervention=None, numerics: bool = False, cache: bool = False,
            check_finite: bool = True, scan_layers: bool = True) -> Trace:
    """Run the model on token ids (n,) / (b, n) or input vectors (n, d) / (b, n, d). → Trace

    Jitted (compiled once per shape, config and precision), and a JAX citizen: call it inside your
    own `jax.jit`, `jax.vmap` (over params or inputs) or `jax.grad`, or on sharded inputs.
    Shapes, dtypes, the config and the options are validated before anything is traced. Checks of
    *values* run only when the values are concrete: token ids within the vocabulary, params and
    input vectors finite (`check_finite=False` skips the scan, e.g. for params verified at load;
    non-finite values then propagate), and the pass sound — a forward pass whose output is
    non-finite, or in which a norm's x² overflowed (rsqrt(inf) = 0 silently zeroes its output),
    raises FloatingPointError naming the first layer and position where it happened, unless
    `numerics=True`, which returns the Trace with its full diagnostic instead (Trace.health: also
    values saturated in the policy's format). On the fp32 path the guard's cost is within timing
    noise (0.8–1.0× of no checks); the full diagnostic costs 1.08–1.20× (tiny at 256 tokens,
    paper-fig10 at 2,048; benchmarks/bench_numerics.py), hence opt-in.
    Inside your own jit/vmap/grad these value checks cannot run: out-of-range ids are clamped by
    the gather and NaN propagates; ask for numerics=True and test trace.health, or use
    jax.experimental.checkify.

    `logits`: "all" (n, vocab), "last" (1, vocab: saves memory for big vocabularies) or "none".
    Sequences longer than `dense_max_len` take a blocked attention path with O(n) memory
    (attention.py) in blocks of `attention_block` queries/keys; `return_attention=True` always uses
    the dense path. `intervention`: a Hook (e.g. a squash_sim.interventions.Intervention) applied to
    the residual stream (checked against the config and the sequence before anything is traced).
    `cache=True`: Trace.cache holds every block's activations (ACTIVATION_NAMES; O(L·n·d) memory;
    attention weights only with return_attention=True, in Trace.attention).
    `scan_layers` (default True): the blocks run as one `lax.scan` over the layers stacked on a
    leading axis (over steps of `layer_period(config)` layers: Gemma 3 scans 3 steps of its
    5-local + 1-global pattern), so compile time stays nearly flat in depth; False runs them as a
    Python loop, the readable reference (the same bits: tests/test_layer_scan.py). params keep
    their list of per-layer dicts either way; the stacked copy is made once per params.
    """
    if not isinstance(config, ModelConfig):
        raise TypeError(f"forward: config must be a ModelConfig, got {type(config).__name__}")
    precision = get_precision(precision)
    for name, value in (("return_attention", return_attention), ("numerics", numerics),
                        ("cache", cache), ("check_finite", check_finite),
                        ("scan_layers", scan_layers)):
        if not isinstance(value, bool):
            raise TypeError(f"forward: {name} must be a bool, got {value!r}")
    if logits not in ("all", "last", "none"):
        raise ValueError(f"forward: logits must be 'all', 'last' or 'none', got {logits!r}")
    for name, value in (("dense_max_len", dense_max_len), ("attention_block", attention_block)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"forward: {name} must be a positive int, got {value!r}")
    traced = _traced((params, inputs))
    inputs, batched = check_inputs(inputs, config, check_values=check_finite)
    check_params(params, config)
    if intervention is not None:
        if not isinstance(intervention, Hook):
            raise TypeError(f"forward: intervention must be a squash_sim.model.Hook (with check, "
                            f"start and before_block), e.g. a squash_sim.interventions."
                            f"Intervention; got {type(intervention).__name__}")
        intervention.check(config, batch=inputs.shape[0], n=inputs.shape[1])
    if check_finite and not traced:
        with jax.ensure_compile_time_eval():
            _check_params_finite(params)
    # The guard (never-legitimate overflow: a norm's x² or a non-finite output) runs unless the
    # caller asked for the full diagnostic or opted out of value checks.
    mode = "full" if numerics else ("guard" if check_finite else "off")
    run = functools.partial(_forward_jit, config=config, precision=precision,
                            return_attention=return_attention, logits=logits,
                            dense_max_len=dense_max_len, block_size=attention_block, cache=cache,
                            scan_layers=scan_layers)
    if scans(config, scan_layers) and not traced:
        params = _stacked_once(params, config)
    if precision.compute_dtype == "float64":
        if traced and not jax.config.jax_enable_x64:
            raise ValueError("forward: precision 'fp64' inside your own jit/vmap/grad needs "
                             "float64 enabled around it: wrap it in jax.enable_x64(True)")
        with jax.enable_x64(True):
            params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
            if not config.takes_tokens:
                inputs = jnp.asarray(inputs, jnp.float64)
            trace = run(params, inputs, intervention=intervention, numerics=mode)
    else:
        params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), params)
        if not config.takes_tokens:
            inputs = jnp.asarray(np.asarray(inputs, np.float32) if isinstance(inputs, np.ndarray)
                                 else inputs, jnp.float32)
        trace = run(params, inputs, intervention=intervention, numerics=mode)
    if mode == "guard":
        guard, trace = trace.health, trace._replace(health=None)
        if not isinstance(guard.nonfinite, jax.core.Tracer) and bool(
                jnp.any(guard.nonfinite) | jnp.any(guard.norm_overflow)):
            with jax.enable_x64(precision.compute_dtype == "float64"):
                where = run(params, inputs, intervention=intervention, numerics="full")
            problem = Health(*(a[0] for a in where.health)).first_problem()
            raise FloatingPointError(
                f"forward: the forward pass overflowed under precision {precision} although "
                f"params and inputs are finite: first at {problem}. Scale the inputs down or use "
                f"a wider format; numerics=True returns the Trace with this diagnostic "
                f"(Trace.health) instead of raising, check_finite=False skips the checks")
    if not batched:
        trace = jax.tree_util.tree_map(lambda a: a[0], trace)
    return trace


def check_inputs(inputs, config: ModelConfig, *, check_values: bool = True):
    """Validate token ids or vectors for `config`; return them batched (b, n[, d]) and whether
    they were. Shapes and dtypes are always checked; values (ids in range, vectors finite) only
    when concrete and `check_values`. Raises TypeError/ValueError naming `inputs`."""
    if not isinstance(config, ModelConfig):
        raise TypeError(f"check_inputs: config must be a ModelConfig, got {type(config).__name__}")
    concrete = not isinstance(inputs, jax.core.Tracer)
    if isinstance(inputs, (jax.Array, np.ndarray)) or not concrete:
        arr = inputs
    else:
        if isinstance(inputs, (str, bytes, dict, set)) or inputs is None:
            raise TypeError(f"forward: inputs must be an array of token ids or vectors, got "
                            f"{type(inputs).__name__}")
        try:
            arr = np.asarray(inputs)
        except (ValueError, TypeError):
            raise ValueError("forward: inputs must be a rectangular array (token ids (n,) or "
                             "(b, n), vectors (n, d) or (b, n, d)); got a ragged nested list "
                             "whose rows have different lengths") from None
    dtype = arr.dtype
    if config.takes_tokens:
        if not jnp.issubdtype(dtype, jnp.integer) or dtype == np.bool_:
            raise TypeError(f"forward: inputs must be integer token ids for a model with "
                            f"vocab_size={config.vocab_size}, got dtype {dtype}")
        if arr.ndim not in (1, 2):
            raise ValueError(f"forward: inputs (token ids) must have shape (n,) or (b, n), got "
                             f"{arr.shape}")
        batched = arr.ndim == 2
        expected = "(n,) or (b, n)"
    else:
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(f"forward: inputs must be float vectors for a model without a "
                            f"vocabulary, got dtype {dtype}")
        if arr.ndim not in (2, 3) or arr.shape[-1] != config.d_model:
            raise ValueError(f"forward: inputs (vectors) must have shape (n, {config.d_model}) "
                             f"or (b, n, {config.d_model}), got {arr.shape}")
        batched = arr.ndim == 3
        expected = f"(n, {config.d_model})"
    n = arr.shape[-1] if config.takes_tokens else arr.shape[-2]
    if n < 1 or arr.size == 0:
        raise ValueError(f"forward: inputs must hold at least one position {expected}, got "
                         f"shape {arr.shape}")
    if config.positional == "learned" and n > config.max_len:
        raise ValueError(f"forward: inputs: sequence length {n} exceeds max_len={config.max_len} "
                         "of the learned positions")
    if config.takes_tokens:
        if concrete and check_values:
            with jax.ensure_compile_time_eval():  # concrete even inside someone's jit
                low, high = int(jnp.min(arr)), int(jnp.max(arr))
            if low < 0 or high >= config.vocab_size:
                raise ValueError(f"forward: inputs: token ids must lie in [0, "
                                 f"{config.vocab_size}), got range [{low}, {high}]")
        arr = jnp.asarray(arr, jnp.int32)
    elif concrete:
        with jax.ensure_compile_time_eval():
            finite = not check_values or bool(jnp.all(jnp.isfinite(arr)))
        if not finite:
            raise ValueError("forward: inputs (vectors) contain NaN or inf")
        # Kept in their dtype here; forward converts them to the compute dtype (a float64 input
        # is rounded to float32 once, explicitly, unless the precision is "fp64").
        arr = np.asarray(arr) if dtype == np.float64 else jnp.asarray(arr, jnp.float32)
    return (arr if batched else arr[None]), batched


@functools.lru_cache(maxsize=64)
def expected_param_shapes(config: ModelConfig) -> dict:
    """{"['layers'][0]['wq']": shape, …}: every parameter `config` needs, by its pytree path."""
    expected = jax.eval_shape(lambda: init_params(config, jax.random.key(0)))
    return {jax.tree_util.keystr(path): tuple(leaf.shape)
            for path, leaf in jax.tree_util.tree_leaves_with_path(expected)}


def check_params(params, config: ModelConfig) -> None:
    """Raise ValueError naming the first parameter whose presence or shape does not fit config.
    (Shapes and dtypes only; forward also checks that concrete params are finite.)"""
    expected_paths = expected_param_shapes(config)
    try:
        given = jax.tree_util.tree_leaves_with_path(params)
    except Exception as err:  # noqa: BLE001
        raise TypeError(f"forward: params must be a pytree of arrays: {err}") from None
    given_paths = {}
    for path, leaf in given:
        if not hasattr(leaf, "shape") or not jnp.issubdtype(getattr(leaf, "dtype", None),
                                                            jnp.floating):
            raise TypeError(f"forward: params{jax.tree_util.keystr(path)} must be a float array, "
                            f"got {type(leaf).__name__}")
        given_paths[jax.tree_util.keystr(path)] = tuple(leaf.shape)
    for path, shape in expected_paths.items():
        if path not in given_paths:
            raise ValueError(f"forward: params{path} is missing (config needs shape {shape})")
        if given_paths[path] != tuple(shape):
            raise ValueError(f"forward: params{path} has shape {given_paths[path]}, config needs "
                             f"{tuple(shape)}")
    extra = sorted(set(given_paths) - set(expected_paths))
    if extra:
        raise ValueError(f"forward: params{extra[0]} is not used by this config")


@jax.jit
def _all_finite(leaves):
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in leaves]))


# jax.Arrays are immutable, so a params pytree already found finite need not be scanned again
# (Gemma's 270 M weights: one scan per forward call would cost more than a short forward).
_FINITE: dict[tuple, tuple] = {}


def _check_params_finite(params) -> None:
    leaves = jax.tree_util.tree_leaves(params)
    key = tuple(id(leaf) for leaf in leaves)
    if key in _FINITE:
        return
    def finite(leaf) -> bool:  # NumPy leaves in NumPy: a float64 1e300 is finite, not inf
        return bool(np.all(np.isfinite(leaf)) if isinstance(leaf, np.ndarray)
                    else jnp.all(jnp.isfinite(leaf)))

    on_device = [leaf for leaf in leaves if not isinstance(leaf, np.ndarray)]
    if not ((not on_device or bool(_all_finite(on_device)))
            and all(finite(leaf) for leaf in leaves if isinstance(leaf, np.ndarray))):
        for path, leaf in jax.tree_util.tree_leaves_with_path(params):
            if not finite(leaf):
                raise ValueError(f"forward: params{jax.tree_util.keystr(path)} contains NaN or "
                                 f"inf (pass check_finite=False to run anyway)")
    if all(isinstance(leaf, jax.Array) for leaf in leaves):
        if len(_FINITE) >= 8:
            _FINITE.pop(next(iter(_FINITE)))
        _FINITE[key] = tuple(leaves)  # kept alive, so the ids cannot be reused

