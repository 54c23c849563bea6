"""Positional encodings: none, sinusoidal (added), learned (added), RoPE (rotates q, k), ALiBi (bias).

The one room for positional knowledge. An encoding acts at exactly one of three places, and each
place has one entry point here, used by model.py, attention.py and experiments/attention_collapse.py:

    add_to_stream   an absolute term added to the residual stream (sinusoidal, learned)
    rotate_qk       queries and keys rotated by their positions (RoPE)
    score bias      a bias added to the attention scores (ALiBi): score_bias_slopes names the
                    slopes, attention.py adds alibi_bias to its scores

Positions start at 0. Each function depends only on the positions it is given, never on the
sequence length, which is what makes a one-pass prefix sweep equal to separate runs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

ADDED = ("sinusoidal", "learned")  # enter the residual stream
ROTATED = ("rope",)  # rotate q and k
BIASED = ("alibi",)  # bias the scores


def sinusoidal(positions, d_model: int, dtype=jnp.float32):
    """Vaswani et al.: PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(same). → (n, d)"""
    i = jnp.arange(d_model // 2, dtype=dtype)
    angles = positions[:, None].astype(dtype) / (10_000.0 ** (2.0 * i / d_model))  # (n, d/2)
    table = jnp.stack([jnp.sin(angles), jnp.cos(angles)], axis=-1)  # (n, d/2, 2)
    return table.reshape(positions.shape[0], d_model)


def rope(x, positions, base: float):
    """Rotate pairs (x[..., i], x[..., i + d/2]) by angle p·base^(−2i/d) (the half-split layout of
    GPT-NeoX and Gemma). x: (b, n, heads, d) with n matching positions."""
    d = x.shape[-1]
    # With concrete positions (the model's) the tables are computed here, once, and enter the
    # program as constants: left in it, XLA fused sin and cos into the rotation and evaluated them
    # again for every head (Gemma, 2,048 tokens: q and k took 14 ms a layer, 3 ms with constants).
    # Same operations either way, so the values are the same as under jit or with traced positions.
    with jax.ensure_compile_time_eval():
        inv_freq = base ** (-jnp.arange(0, d // 2, dtype=x.dtype) * 2.0 / d)  # (d/2,)
        angles = positions[:, None].astype(x.dtype) * inv_freq  # (n, d/2)
        sin = jnp.sin(angles)[None, :, None, :]  # (1, n, 1, d/2)
        cos = jnp.cos(angles)[None, :, None, :]
    first, second = x[..., : d // 2], x[..., d // 2:]
    return jnp.concatenate([first * cos - second * sin, second * cos + first * sin], axis=-1)


def alibi_bias(query_positions, key_positions, slopes, causal: bool, dtype=jnp.float32):
    """Press et al.: bias −m_h·(i − j) for key j ≤ query i (−m_h·|i − j| without a causal mask).
    → (heads, n_queries, n_keys)"""
    distance = query_positions[:, None] - key_positions[None, :]  # (n, m)
    if not causal:
        distance = jnp.abs(distance)
    slopes = jnp.asarray(slopes, dtype)[:, None, None]
    return -slopes * distance.astype(dtype)[None]


# ---------------------------------------------------------------------------------------------
# The seam: where each encoding acts


def stream_term(encoding: str, positions, d_model: int, dtype=jnp.float32, learned=None):
    """The absolute term an encoding adds at `positions` (n,): (n, d), or None for encodings that
    add nothing to the stream. learned: the (max_len, d) table of the "learned" encoding."""
    if encoding == "sinusoidal":
        return sinusoidal(positions, d_model, dtype)
    if encoding == "learned":
        return learned[positions]
    return None


def add_to_stream(x, params: dict, config, num):
    """h[0] = x + PE for absolute encodings (x: (b, n, d)); x unchanged otherwise."""
    if config.positional not in ADDED:
        return x
    n = x.shape[1]
    if config.positional == "learned":
        return num.act(x + params["positions"][:n])
    # Concrete positions: the table is computed once, eagerly, and enters the program as a
    # constant, so jit and eager add the same bits (rope below does the same).
    with jax.ensure_compile_time_eval():
        table = stream_term("sinusoidal", jnp.arange(n), config.d_model, x.dtype)
    return num.act(x + table)


def rotate(encoding: str, x, positions, base: float):
    """x (b, n, heads, h) rotated by RoPE at `positions` (n,); unchanged for other encodings."""
    return rope(x, positions, base) if encoding in ROTATED else x


def rotate_qk(q, k, config, layer: int, num):
    """Queries (b, n, heads, h) and keys (b, n, kv, h) of block `layer`, rotated where the
    config's encoding rotates them (RoPE, with that layer's base)."""
    if config.positional not in ROTATED:
        return q, k
    positions = np.arange(q.shape[1])  # concrete: RoPE tables become constants
    base = config.rope_base_of(layer)
    return num.act(rotate(config.positional, q, positions, base)), num.act(
        rotate(config.positional, k, positions, base))


def score_bias_slopes(config):
    """ALiBi's per-head slopes when the config's encoding biases the scores, else None; the bias
    itself, alibi_bias, is added by attention.py to every score block."""
    return config.alibi_slopes_or_default() if config.positional in BIASED else None
