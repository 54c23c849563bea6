"""The one decoder-only Transformer: init_params, forward, Trace.

Read top to bottom. One block (pre-LN, theory.md §1; "post" and "sandwich" placements are variants):

    z = h + attention(norm₁(h))          attention over keys j ≤ i (causal) within the window
    h' = z + mlp(norm₂(z))               the residual stream entering the next block

Parameters are a plain pytree (dicts and a list of per-layer dicts); the config is static. Dimension
letters follow attention.py: b batch, n position, d model width, k kv heads, g query heads per kv
head, h head width, f MLP width, v vocabulary.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from squash_sim import attention as attn
from squash_sim import positional
from squash_sim.config import GATED_MLPS, ModelConfig
from squash_sim.precision import Numerics, Precision
from squash_sim.precision import get as get_precision


class Trace(NamedTuple):
    """What a forward pass exposes. Unbatched shapes shown; batched inputs add a leading b.

    hidden     (L+1, n, d)   h[0] … h[L]: the residual stream entering each block; h[L] leaves
                             the last block, before the final norm
    final      (n, d)        after the final norm: y_i of the theory (row i = last-token output of
                             the prefix of length i+1)
    logits     (n, vocab)    unembedded final, when the model has a vocabulary (else None)
    attention  (L, heads, n, n)  attention weights, when return_attention=True (else None)
    """

    hidden: jax.Array
    final: jax.Array
    logits: jax.Array | None = None
    attention: jax.Array | None = None


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
# The pieces of a block


def norm(x, p: dict, config: ModelConfig, num: Numerics, beta: float = 1.0):
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
    inv_rms = num.elementwise(lax.rsqrt(mean_square + config.norm_eps))
    y = num.elementwise(x * inv_rms) * p["scale"]
    if config.norm == "layernorm":
        y = num.elementwise(y) + p["bias"]
    return num.act(y)


def head_norm(x, scale, config: ModelConfig, num: Numerics):
    """RMSNorm over the head width (qk-norm), whatever the model's main norm."""
    mean_square = num.elementwise(num.sum(num.elementwise(x * x), keepdims=True) / x.shape[-1])
    return num.act(num.elementwise(x * lax.rsqrt(mean_square + config.norm_eps)) * scale)


def attention_branch(x, p: dict, layer: int, config: ModelConfig, num: Numerics,
                     return_weights: bool, dense_max_len: int, block_size: int, x_kv=None):
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
        q = head_norm(q, p["q_norm"]["scale"], c, num)
        k = head_norm(k, p["k_norm"]["scale"], c, num)
    if c.positional == "rope":
        positions = np.arange(n)  # concrete: RoPE tables become constants
        q = num.act(positional.rope(q, positions, c.rope_base_of(layer)))
        k = num.act(positional.rope(k, positions, c.rope_base_of(layer)))
    q = num.act(q * c.query_scale)
    q = q.reshape(b, n, c.n_kv_heads, c.group_size, c.d_head)  # (b, n, k, g, h)
    out, weights = attn.attention(
        q, k, v, causal=c.causal, window=c.sliding_window[layer],
        alibi_slopes=c.alibi_slopes_or_default() if c.positional == "alibi" else None,
        num=num, return_weights=return_weights, dense_max_len=dense_max_len, block=block_size)
    out = out.reshape(b, n, c.n_heads, c.d_head)  # (b, n, heads, h)
    if c.identity_value_output:
        out = out.reshape(b, n, c.d_model)  # W_O = I: concatenate the heads
    else:
        out = num.act(num.einsum("bnqh,qhd->bnd", out, p["wo"]))
    if weights is not None:
        weights = weights.reshape(b, c.n_heads, n, n)  # (b, heads, n, m)
    return out, weights


def mlp_branch(x, p: dict, config: ModelConfig, num: Numerics):
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
    return num.act(num.einsum("bnf,fd->bnd", hidden, p["w_out"]))


def block(h, p: dict, layer: int, config: ModelConfig, num: Numerics, return_weights: bool,
          dense_max_len: int, block_size: int, kv_source=None, skip_attention=None):
    """One Transformer block: the residual stream h[layer] → h[layer + 1], both (b, n, d).

    Hooks for interventions (None: the plain block): kv_source, a stream (b, n, d) that keys and
    values are computed from instead of h; skip_attention, a traced bool: when true the whole
    attention branch (norm, attention, post-norm, residual add) is skipped and z = h."""
    c = config
    beta1, beta2 = c.theory_beta1[layer], c.theory_beta2[layer]
    kv_source = h if kv_source is None else kv_source
    if c.norm_placement == "post":
        out, weights = attention_branch(h, p, layer, c, num, return_weights, dense_max_len,
                                        block_size, x_kv=kv_source)
        z = norm(num.act(h + out), p["attn_norm"], c, num, beta1)
        if skip_attention is not None:
            z = jnp.where(skip_attention, h, z)
        if c.mlp == "none":
            return z, weights
        return norm(num.act(z + mlp_branch(z, p, c, num)), p["mlp_norm"], c, num, beta2), weights
    x_kv = None if kv_source is h else norm(kv_source, p["attn_norm"], c, num, beta1)
    out, weights = attention_branch(norm(h, p["attn_norm"], c, num, beta1), p, layer, c, num,
                                    return_weights, dense_max_len, block_size, x_kv=x_kv)
    if c.norm_placement == "sandwich":
        out = norm(out, p["post_attn_norm"], c, num)
    z = num.act(h + out)
    if skip_attention is not None:
        z = jnp.where(skip_attention, h, z)
    if c.mlp == "none":
        return z, weights
    out = mlp_branch(norm(z, p["mlp_norm"], c, num, beta2), p, c, num)
    if c.norm_placement == "sandwich":
        out = norm(out, p["post_mlp_norm"], c, num)
    return num.act(z + out), weights


def embed(params: dict, inputs, config: ModelConfig, num: Numerics):
    """Token ids (b, n) or vectors (b, n, d) → h[0] (b, n, d), with any absolute positions added."""
    c = config
    if c.takes_tokens:
        x = num.act(params["embedding"][inputs] * c.embed_scale)
    else:
        x = num.act(inputs)
    n = x.shape[1]
    if c.positional == "sinusoidal":
        x = num.act(x + positional.sinusoidal(jnp.arange(n), c.d_model, x.dtype))
    elif c.positional == "learned":
        x = num.act(x + params["positions"][:n])
    return x


# ---------------------------------------------------------------------------------------------
# The forward pass


def _forward(params, inputs, config: ModelConfig, precision: Precision, return_attention: bool,
             logits: str, dense_max_len: int, block_size: int, intervention=None) -> Trace:
    num = Numerics(precision)
    params = jax.tree_util.tree_map(num.params, params)
    h = embed(params, inputs, config, num)
    # An intervention (squash_sim.interventions) sees the stream entering every block j and h[L]:
    # it returns the stream to use, a keys/values source and an attention-skip flag (None: plain).
    state = None if intervention is None else intervention.start(h)
    hidden, weights_per_layer = [], []
    for layer, p in enumerate(params["layers"]):
        kv_source = skip = None
        if intervention is not None:
            h, kv_source, skip, state = intervention.before_block(layer, h, state)
        hidden.append(h)
        h, weights = block(h, p, layer, config, num, return_attention, dense_max_len, block_size,
                           kv_source, skip)
        weights_per_layer.append(weights)
    if intervention is not None:
        h, _, _, state = intervention.before_block(len(params["layers"]), h, state)
    hidden.append(h)
    if config.norm_placement == "post":
        final = h  # each block already ends in a norm
    else:
        final = norm(h, params["final_norm"], config, num, config.theory_beta3)
    out_logits = None
    if config.takes_tokens and logits != "none":
        unembedding = (params["embedding"].T if config.tied_embedding
                       else params["unembedding"])  # (d, v)
        read = final[:, -1:] if logits == "last" else final
        out_logits = num.act(num.einsum("bnd,dv->bnv", read, unembedding))
    return Trace(
        hidden=jnp.stack(hidden, axis=1),  # (b, L+1, n, d)
        final=final,
        logits=out_logits,
        attention=jnp.stack(weights_per_layer, axis=1) if return_attention else None,
    )


_forward_jit = jax.jit(_forward, static_argnums=(2, 3, 4, 5, 6, 7))


def traceable_forward(config: ModelConfig, precision: Precision | str = "fp32", *,
                      return_attention: bool = False, logits: str = "all"):
    """forward as a pure function (params, inputs (b, n[, d]), intervention=None) → Trace, for use
    inside your own jit / vmap / grad (e.g. vmapped over seeds of params, or over the layer of an
    intervention). Config and precision are checked here;
    params and inputs are not (they may be tracers): check them with check_params beforehand.
    Float64 policies need `jax.enable_x64(True)` around the call."""
    if not isinstance(config, ModelConfig):
        raise TypeError(f"traceable_forward: config must be a ModelConfig, got {type(config).__name__}")
    precision = get_precision(precision)
    if logits not in ("all", "last", "none"):
        raise ValueError(f"traceable_forward: logits must be 'all', 'last' or 'none', got {logits!r}")
    return functools.partial(_forward, config=config, precision=precision,
                             return_attention=bool(return_attention), logits=logits,
                             dense_max_len=attn.DENSE_MAX_LEN, block_size=attn.BLOCK)


def forward(params, inputs, config: ModelConfig, precision: Precision | str = "fp32", *,
            return_attention: bool = False, logits: str = "all",
            dense_max_len: int = attn.DENSE_MAX_LEN, attention_block: int = attn.BLOCK,
            intervention=None) -> Trace:
    """Run the model on token ids (n,) / (b, n) or input vectors (n, d) / (b, n, d). → Trace

    Jitted (compiled once per shape, config and precision). Inputs are validated before anything
    is traced. `logits`: "all" (n, vocab), "last" (1, vocab: saves memory for big vocabularies) or
    "none". Sequences longer than `dense_max_len` take a blocked attention path with O(n) memory
    (attention.py) in blocks of `attention_block` queries/keys; `return_attention=True` always uses
    the dense path. `intervention`: a squash_sim.interventions.Intervention applied to the residual
    stream (checked against the config and the sequence before anything is traced).
    """
    if not isinstance(config, ModelConfig):
        raise TypeError(f"forward: config must be a ModelConfig, got {type(config).__name__}")
    precision = get_precision(precision)
    if not isinstance(return_attention, bool):
        raise TypeError(f"forward: return_attention must be a bool, got {return_attention!r}")
    if logits not in ("all", "last", "none"):
        raise ValueError(f"forward: logits must be 'all', 'last' or 'none', got {logits!r}")
    for name, value in (("dense_max_len", dense_max_len), ("attention_block", attention_block)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"forward: {name} must be a positive int, got {value!r}")
    inputs, batched = _check_inputs(inputs, config)
    check_params(params, config)
    if intervention is not None:
        from squash_sim.interventions import Intervention

        if not isinstance(intervention, Intervention):
            raise TypeError(f"forward: intervention must be a squash_sim.interventions."
                            f"Intervention, got {type(intervention).__name__}")
        intervention.check(config, batch=inputs.shape[0], n=inputs.shape[1])
    if precision.compute_dtype == "float64":
        with jax.enable_x64(True):
            params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
            if not config.takes_tokens:
                inputs = jnp.asarray(inputs, jnp.float64)
            trace = _forward_jit(params, inputs, config, precision, return_attention, logits,
                                 dense_max_len, attention_block, intervention)
    else:
        params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), params)
        if not config.takes_tokens:
            inputs = jnp.asarray(np.asarray(inputs, np.float32) if isinstance(inputs, np.ndarray)
                                 else inputs, jnp.float32)
        trace = _forward_jit(params, inputs, config, precision, return_attention, logits,
                             dense_max_len, attention_block, intervention)
    if not batched:
        trace = Trace(*(None if a is None else a[0] for a in trace))
    return trace


def _check_inputs(inputs, config: ModelConfig):
    """Validate token ids or vectors; return them batched (b, n[, d]) and whether they were."""
    if isinstance(inputs, jax.core.Tracer):
        raise TypeError("forward: inputs must be concrete (forward is already jitted; call it "
                        "outside your own jit, or use squash_sim.model.traceable_forward inside it)")
    arr = np.asarray(inputs) if not isinstance(inputs, jax.Array) else inputs
    dtype = arr.dtype
    if config.takes_tokens:
        if not jnp.issubdtype(dtype, jnp.integer):
            raise TypeError(f"forward: inputs must be integer token ids for a model with "
                            f"vocab_size={config.vocab_size}, got dtype {dtype}")
        if arr.ndim not in (1, 2):
            raise ValueError(f"forward: token ids must have shape (n,) or (b, n), got {arr.shape}")
        batched = arr.ndim == 2
        expected = "(n,) or (b, n)"
    else:
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(f"forward: inputs must be float vectors for a model without a "
                            f"vocabulary, got dtype {dtype}")
        if arr.ndim not in (2, 3) or arr.shape[-1] != config.d_model:
            raise ValueError(f"forward: input vectors must have shape (n, {config.d_model}) or "
                             f"(b, n, {config.d_model}), got {arr.shape}")
        batched = arr.ndim == 3
        expected = f"(n, {config.d_model})"
    n = arr.shape[-1] if config.takes_tokens else arr.shape[-2]
    if n < 1 or arr.size == 0:
        raise ValueError(f"forward: inputs must hold at least one position {expected}, got "
                         f"shape {arr.shape}")
    if config.positional == "learned" and n > config.max_len:
        raise ValueError(f"forward: sequence length {n} exceeds max_len={config.max_len} of the "
                         "learned positions")
    if config.takes_tokens:
        low, high = int(np.min(arr)), int(np.max(arr))
        if low < 0 or high >= config.vocab_size:
            raise ValueError(f"forward: token ids must lie in [0, {config.vocab_size}), got range "
                             f"[{low}, {high}]")
        arr = jnp.asarray(arr, jnp.int32)
    else:
        if not bool(np.all(np.isfinite(np.asarray(arr)))):
            raise ValueError("forward: input vectors contain NaN or inf")
        # Kept in their dtype here; forward converts them to the compute dtype (a float64 input
        # is rounded to float32 once, explicitly, unless the precision is "fp64").
        arr = np.asarray(arr) if dtype == np.float64 else jnp.asarray(arr, jnp.float32)
    return (arr if batched else arr[None]), batched


@functools.lru_cache(maxsize=64)
def _expected_param_shapes(config: ModelConfig) -> dict:
    expected = jax.eval_shape(lambda: init_params(config, jax.random.key(0)))
    return {jax.tree_util.keystr(path): tuple(leaf.shape)
            for path, leaf in jax.tree_util.tree_leaves_with_path(expected)}


def check_params(params, config: ModelConfig) -> None:
    """Raise ValueError naming the first parameter whose presence or shape does not fit config."""
    expected_paths = _expected_param_shapes(config)
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
