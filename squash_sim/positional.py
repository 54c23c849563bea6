"""Positional encodings: none, sinusoidal (added), learned (added), RoPE (rotates q, k), ALiBi (bias).

Positions start at 0. Each function depends only on the positions it is given, never on the
sequence length, which is what makes a one-pass prefix sweep equal to separate runs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


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
