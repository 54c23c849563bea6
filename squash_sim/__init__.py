"""squash_sim: a decoder-only Transformer in JAX for checking "Transformers need glasses!".

    from squash_sim import ModelConfig, init_params, forward, presets
    config = presets.get("tiny")
    params = init_params(config, jax.random.key(0))
    trace = forward(params, tokens, config, precision="bf16")
"""

from squash_sim import (  # noqa: I001
    _xla_flags,  # noqa: F401  (first: before JAX starts its backend)
    floats,
    presets,
)
from squash_sim.config import ModelConfig
from squash_sim.floats import (
    BF16,
    FP4_E2M1FN,
    FP6_E2M3FN,
    FP6_E3M2FN,
    FP8_E4M3FN,
    FP8_E4M3FNUZ,
    FP8_E5M2,
    FP8_E5M2FNUZ,
    FP16,
    FP32,
    FP64,
    TF32,
    FloatFormat,
    round_to,
    spacing,
)
from squash_sim.model import Trace, forward, init_params
from squash_sim.precision import Precision

__version__ = "0.1.0"

__all__ = [
    "BF16", "FP4_E2M1FN", "FP6_E2M3FN", "FP6_E3M2FN", "FP8_E4M3FN", "FP8_E4M3FNUZ", "FP8_E5M2",
    "FP8_E5M2FNUZ", "FP16", "FP32", "FP64", "TF32", "FloatFormat", "ModelConfig", "Precision",
    "Trace", "floats", "forward", "init_params", "presets", "round_to", "spacing",
]
