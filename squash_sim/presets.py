"""Named model configs: `get(name)` and `names()`."""

from __future__ import annotations

import math

from squash_sim.config import ModelConfig

# Gemma 3: five local layers (window 512, RoPE base 10⁴) then one global (RoPE base 10⁶), ×3.
_GEMMA3_WINDOWS = tuple(None if (layer + 1) % 6 == 0 else 512 for layer in range(18))

_PRESETS = {
    # theory.md, Figure 10: one untrained decoder layer, d = 64, one head, vector inputs, no norm,
    # no MLP. Swap the positional encoding with .replace(positional=...).
    "paper-fig10": ModelConfig(d_model=64, n_layers=1, n_heads=1, positional="none", norm="none",
                               mlp="none", name="paper-fig10"),
    # The model of the over-squashing theorem (B.5): theory norms x/β, W_V = W_O = I, NoPE, ReLU MLP.
    "paper-theory": ModelConfig(d_model=16, n_layers=2, n_heads=1, positional="none",
                                norm="theory", mlp="relu", d_ff=32, identity_value_output=True,
                                name="paper-theory"),
    # A small modern model: 2 layers, d 64, 4 heads, RoPE, RMSNorm, tokens 0..255.
    "tiny": ModelConfig(vocab_size=256, d_model=64, n_layers=2, n_heads=4, positional="rope",
                        norm="rmsnorm", mlp="gelu", name="tiny"),
    # Gemma 3 270M, shape only (weights come from its GGUF checkpoint).
    "gemma3-270m": ModelConfig(
        vocab_size=262_144, d_model=640, n_layers=18, n_heads=4, n_kv_heads=1, d_head=256,
        d_ff=2048, positional="rope", rope_base=1_000_000.0, rope_base_local=10_000.0,
        norm="rmsnorm", norm_placement="sandwich", qk_norm=True, mlp="geglu",
        sliding_window=_GEMMA3_WINDOWS, embed_scale=math.sqrt(640), query_scale=256 ** -0.5,
        tied_embedding=True, name="gemma3-270m"),
}


def names() -> list[str]:
    return list(_PRESETS)


def get(name: str) -> ModelConfig:
    if not isinstance(name, str):
        raise TypeError(f"preset name must be a str, got {type(name).__name__}")
    if name not in _PRESETS:
        raise ValueError(f"unknown preset {name!r}; available: {names()}")
    return _PRESETS[name]
