"""A float64 NumPy forward pass written separately from squash_sim.model (the test oracle).

Deliberately a different style: explicit loops over layers, heads and query positions, a row-wise
softmax over the visible keys only, no einsum strings shared with the model. It reads the config
and the parameter pytree (shared vocabulary), nothing else from the package.
"""

from __future__ import annotations

import math

import numpy as np


def _norm(x, p, config, beta=1.0):
    if config.norm == "none":
        return x
    if config.norm == "theory":
        return x / beta
    if config.norm == "layernorm":
        mu = x.mean(axis=-1, keepdims=True)
        var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
        return (x - mu) / np.sqrt(var + config.norm_eps) * p["scale"] + p["bias"]
    rms = np.sqrt((x**2).mean(axis=-1, keepdims=True) + config.norm_eps)
    return x / rms * p["scale"]


def _rms(x, scale, eps):
    return x / np.sqrt((x**2).mean(axis=-1, keepdims=True) + eps) * scale


def _rotate(x, pos, base):
    """RoPE on one vector x (d,) at position pos, pairing i with i + d/2."""
    d = x.shape[-1]
    out = np.empty_like(x)
    for i in range(d // 2):
        theta = pos * base ** (-2.0 * i / d)
        c, s = math.cos(theta), math.sin(theta)
        out[i] = x[i] * c - x[i + d // 2] * s
        out[i + d // 2] = x[i + d // 2] * c + x[i] * s
    return out


def _gelu(x):
    from scipy.special import erf

    return 0.5 * x * (1 + erf(x / math.sqrt(2)))


def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def _mlp(x, p, config):
    up = x @ p["w_in"]
    if config.mlp == "relu":
        hidden = np.maximum(up, 0)
    elif config.mlp == "gelu":
        hidden = _gelu(up)
    elif config.mlp == "gelu_tanh":
        hidden = _gelu_tanh(up)
    elif config.mlp == "swiglu":
        gate = x @ p["w_gate"]
        hidden = gate / (1 + np.exp(-gate)) * up
    else:  # geglu
        hidden = _gelu_tanh(x @ p["w_gate"]) * up
    return hidden @ p["w_out"]


def _attention(x, p, layer, config):
    c = config
    n = x.shape[0]
    wq = p["wq"].reshape(c.d_model, c.n_heads * c.d_head)
    wk = p["wk"].reshape(c.d_model, c.n_kv_heads * c.d_head)
    q_all = (x @ wq).reshape(n, c.n_heads, c.d_head)
    k_all = (x @ wk).reshape(n, c.n_kv_heads, c.d_head)
    if c.identity_value_output:
        v_all = x.reshape(n, c.n_kv_heads, c.d_head)
    else:
        v_all = (x @ p["wv"].reshape(c.d_model, -1)).reshape(n, c.n_kv_heads, c.d_head)
    window = c.sliding_window[layer]
    base = c.rope_base_local if (window is not None and c.rope_base_local) else c.rope_base
    if c.positional == "alibi":
        slopes = c.alibi_slopes or [2 ** (-8 * (h + 1) / c.n_heads) for h in range(c.n_heads)]
    heads_out = np.zeros((n, c.n_heads, c.d_head))
    weights = np.zeros((c.n_heads, n, n))
    for head in range(c.n_heads):
        kv = head // (c.n_heads // c.n_kv_heads)
        q = q_all[:, head].copy()
        k = k_all[:, kv].copy()
        if c.qk_norm:
            q = _rms(q, p["q_norm"]["scale"], c.norm_eps)
            k = _rms(k, p["k_norm"]["scale"], c.norm_eps)
        if c.positional == "rope":
            q = np.stack([_rotate(q[i], i, base) for i in range(n)])
            k = np.stack([_rotate(k[j], j, base) for j in range(n)])
        for i in range(n):
            keys = [j for j in range(n)
                    if (j <= i or not c.causal) and (window is None or abs(i - j) < window)]
            scores = np.array([q[i] @ k[j] * c.query_scale for j in keys])
            if c.positional == "alibi":
                scores -= slopes[head] * np.array([abs(i - j) for j in keys])
            e = np.exp(scores - scores.max())
            a = e / e.sum()
            weights[head, i, keys] = a
            heads_out[i, head] = a @ v_all[keys, kv]
    if c.identity_value_output:
        return heads_out.reshape(n, c.d_model), weights
    return heads_out.reshape(n, -1) @ p["wo"].reshape(-1, c.d_model), weights


def reference_forward(params, inputs, config):
    """→ dict(hidden (L+1, n, d), final (n, d), logits (n, V) or None, attention (L, H, n, n))"""
    c = config
    params = _to64(params)
    if c.takes_tokens:
        x = params["embedding"][np.asarray(inputs)] * c.embed_scale
    else:
        x = np.asarray(inputs, np.float64)
    n = x.shape[0]
    if c.positional == "sinusoidal":
        pe = np.zeros((n, c.d_model))
        for pos in range(n):
            for i in range(c.d_model // 2):
                angle = pos / 10_000 ** (2 * i / c.d_model)
                pe[pos, 2 * i], pe[pos, 2 * i + 1] = math.sin(angle), math.cos(angle)
        x = x + pe
    elif c.positional == "learned":
        x = x + params["positions"][:n]
    hidden, attention = [x], []
    for layer, p in enumerate(params["layers"]):
        b1, b2 = c.theory_beta1[layer], c.theory_beta2[layer]
        if c.norm_placement == "post":
            out, w = _attention(x, p, layer, c)
            x = _norm(x + out, p["attn_norm"], c, b1)
            if c.mlp != "none":
                x = _norm(x + _mlp(x, p, c), p["mlp_norm"], c, b2)
        else:
            out, w = _attention(_norm(x, p["attn_norm"], c, b1), p, layer, c)
            if c.norm_placement == "sandwich":
                out = _norm(out, p["post_attn_norm"], c)
            x = x + out
            if c.mlp != "none":
                out = _mlp(_norm(x, p["mlp_norm"], c, b2), p, c)
                if c.norm_placement == "sandwich":
                    out = _norm(out, p["post_mlp_norm"], c)
                x = x + out
        hidden.append(x)
        attention.append(w)
    final = x if c.norm_placement == "post" else _norm(x, params["final_norm"], c, c.theory_beta3)
    logits = None
    if c.takes_tokens:
        unembed = params["embedding"].T if c.tied_embedding else params["unembedding"]
        logits = final @ unembed
    return {"hidden": np.stack(hidden), "final": final, "logits": logits,
            "attention": np.stack(attention)}


def _to64(tree):
    if isinstance(tree, dict):
        return {k: _to64(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_to64(v) for v in tree]
    return np.asarray(tree, np.float64)
