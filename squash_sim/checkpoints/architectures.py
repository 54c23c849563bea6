"""The architecture table: what each supported model family is in squash_sim's terms.

One entry per architecture, shared by every file format (gguf.py, safetensors_dir.py). A reader
hands over hyperparameters under neutral names (GGUF's key suffixes: "block_count",
"embedding_length", …) and tensors under GGUF's names ("blk.3.attn_q.weight"), float32 in the
[out, in] layout that GGUF and PyTorch share; the entry turns them into a ModelConfig and
squash_sim's param pytree. What a format does differently (llama.cpp's permuted q/k rows, Hugging
Face's Gemma norms stored as w instead of 1 + w) is fixed by that format's reader, not here.

    llama    Llama 2/3, SmolLM, TinyLlama, Mistral-style dense models: pre-norm RMSNorm, SwiGLU,
             RoPE on every layer (no scaling), optional untied unembedding
    gemma3   Gemma 3 (text): sandwich RMSNorm, q/k-norm, GeGLU (tanh-GELU), √d embedding scale,
             sliding-window layers with their own RoPE base, query scale query_pre_attn_scalar^-½
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np

from squash_sim import checks
from squash_sim.config import ModelConfig

# Hugging Face tensor names of the GGUF names both families share (per layer: "blk.{i}." ↔
# "model.layers.{i}."). ffn_norm and the post norms differ per family: see `hf_names`.
_HF_GLOBAL = {"token_embd.weight": "model.embed_tokens.weight",
              "output_norm.weight": "model.norm.weight", "output.weight": "lm_head.weight"}
_HF_LAYER = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj",
             "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
             "attn_output": "self_attn.o_proj", "attn_q_norm": "self_attn.q_norm",
             "attn_k_norm": "self_attn.k_norm", "ffn_gate": "mlp.gate_proj",
             "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}


@dataclasses.dataclass(frozen=True)
class Architecture:
    name: str  # GGUF general.architecture
    hf_classes: tuple[str, ...]  # config.json "architectures" entries it reads
    config: Callable  # (get, vocab, tied, windows, name) → ModelConfig
    layer_tensors: tuple[str, ...]  # GGUF tensor names per layer, without "blk.{i}." / ".weight"
    hf_layer_names: dict  # extra GGUF → HF per-layer names
    norm_tensors: tuple[str, ...]  # which of them are norm scales (1 + w in GGUF for Gemma)
    gguf_permuted_qk: bool  # llama.cpp's converter interleaved the RoPE halves of q and k rows

    def hf_name(self, gguf_name: str) -> str:
        if gguf_name in _HF_GLOBAL:
            return _HF_GLOBAL[gguf_name]
        _, layer, part, _ = gguf_name.split(".")
        return f"model.layers.{layer}.{self.hf_layer_names.get(part) or _HF_LAYER[part]}.weight"

    def gguf_name(self, hf_name: str) -> str | None:
        """The GGUF name of a Hugging Face tensor name (None: not one this family uses)."""
        for gguf_name, name in _HF_GLOBAL.items():
            if name == hf_name:
                return gguf_name
        parts = hf_name.split(".")
        if len(parts) < 5 or parts[:2] != ["model", "layers"] or not parts[2].isdigit():
            return None
        inner = ".".join(parts[3:-1])
        names = {**_HF_LAYER, **self.hf_layer_names}
        for part in self.layer_tensors:
            if names[part] == inner:
                return f"blk.{int(parts[2])}.{part}.weight"
        return None

    def tensors(self, config: ModelConfig):
        """(GGUF name, param path, [out, in] → squash_sim layout) for every tensor of `config`."""
        d, q, k, h = config.d_model, config.n_heads, config.n_kv_heads, config.d_head
        arrange = {"attn_q": lambda w: w.T.reshape(d, q, h),  # (d, heads, h)
                   "attn_k": lambda w: w.T.reshape(d, k, h), "attn_v": lambda w: w.T.reshape(d, k, h),
                   "attn_output": lambda w: w.T.reshape(q, h, d),  # (heads, h, d)
                   "ffn_up": lambda w: w.T, "ffn_gate": lambda w: w.T,  # (d, f)
                   "ffn_down": lambda w: w.T}  # (f, d)
        where = {"attn_q": "wq", "attn_k": "wk", "attn_v": "wv", "attn_output": "wo",
                 "ffn_up": "w_in", "ffn_gate": "w_gate", "ffn_down": "w_out",
                 "attn_norm": ("attn_norm", "scale"), "ffn_norm": ("mlp_norm", "scale"),
                 "post_attention_norm": ("post_attn_norm", "scale"),
                 "post_ffw_norm": ("post_mlp_norm", "scale"),
                 "attn_q_norm": ("q_norm", "scale"), "attn_k_norm": ("k_norm", "scale")}
        same = lambda w: w  # noqa: E731
        yield "token_embd.weight", ("embedding",), same  # (vocab, d) already
        yield "output_norm.weight", ("final_norm", "scale"), same
        if not config.tied_embedding:
            yield "output.weight", ("unembedding",), lambda w: w.T  # (d, vocab)
        for i in range(config.n_layers):
            for part in self.layer_tensors:
                path = where[part] if isinstance(where[part], tuple) else (where[part],)
                yield f"blk.{i}.{part}.weight", ("layers", i, *path), arrange.get(part, same)


# The one schema of the hyperparameters both formats hand over (neutral names): exact types (an
# int is an int: 32.5 or 1.9 is refused, never truncated; a bool is not a number) and ranges.
MAX_LAYERS = 4096
MAX_WIDTH = 1 << 20  # d_model, d_ff, heads, head width, window: far above any model of these families
MAX_VOCAB = 1 << 24
_MISSING = object()


def _show(value) -> str:
    return f"{type(value).__name__} {value!r:.40}"


def integer(value, key: str, low: int = 1, high: int = MAX_WIDTH) -> int:
    """A file's integer field in low..high (checks.integer's rule: NumPy integers too, bools
    refused), or a ValueError naming the key: a field of the wrong kind is a damaged file."""
    allowed = f"{key!r} must be an integer in {low}..{high}, got "
    try:
        return checks.integer("", key, value, low, high)
    except TypeError:
        raise ValueError(allowed + _show(value)) from None
    except ValueError:
        raise ValueError(allowed + f"{value}") from None


def real(value, key: str, low: float = 0.0, high: float = math.inf) -> float:
    """A file's finite number in (low, high] (checks.number's rule: ints allowed, 10000 is a fine
    RoPE base), or a ValueError naming the key."""
    allowed = f"{key!r} must be a finite number in ({low:g}, {high:g}], got "
    try:
        as_float = checks.number("", key, value)
    except TypeError:
        raise ValueError(allowed + _show(value)) from None
    except ValueError:  # not finite
        as_float = math.nan
    if not low < as_float <= high:
        raise ValueError(allowed + f"{value!r:.40}")
    return as_float


def _int(get, key, default=_MISSING, low=1, high=MAX_WIDTH) -> int:
    return integer(get(key) if default is _MISSING else get(key, default), key, low, high)


def _real(get, key, default=_MISSING, low=0.0, high=math.inf) -> float:
    return real(get(key) if default is _MISSING else get(key, default), key, low, high)


def _llama_config(get, vocab, tied, windows, name) -> ModelConfig:
    heads, d_model = _int(get, "attention.head_count"), _int(get, "embedding_length")
    if d_model % heads:
        raise ValueError(f"'embedding_length' {d_model} is not a multiple of "
                         f"'attention.head_count' {heads}")
    d_head = _int(get, "attention.key_length", d_model // heads)
    return ModelConfig(
        vocab_size=vocab, d_model=d_model,
        n_layers=_int(get, "block_count", high=MAX_LAYERS), n_heads=heads,
        n_kv_heads=_int(get, "attention.head_count_kv", heads), d_head=d_head,
        d_ff=_int(get, "feed_forward_length"), positional="rope",
        rope_base=_real(get, "rope.freq_base", 10_000.0, low=1.0), norm="rmsnorm",
        norm_placement="pre", norm_eps=_real(get, "attention.layer_norm_rms_epsilon", high=1.0),
        mlp="swiglu", sliding_window=windows, tied_embedding=tied, name=name)


# Gemma 3 facts the GGUF does not state (the Hugging Face config does, and wins when present).
GEMMA3_SLIDING_WINDOW_PATTERN = 6  # layers 5, 11, 17 (0-based) are global
GEMMA3_LOCAL_ROPE_BASE = 10_000.0  # rope_local_base_freq
GEMMA3_QUERY_PRE_ATTN_SCALAR = 256


def gemma3_windows(n_layers: int, window: int) -> tuple:
    return tuple(None if (layer + 1) % GEMMA3_SLIDING_WINDOW_PATTERN == 0 else window
                 for layer in range(n_layers))


def _gemma3_config(get, vocab, tied, windows, name) -> ModelConfig:
    d_model, heads = _int(get, "embedding_length"), _int(get, "attention.head_count")
    d_head = _int(get, "attention.key_length")
    if _int(get, "attention.value_length", d_head) != d_head:
        raise ValueError("key and value head widths differ; Gemma 3 has them equal")
    return ModelConfig(
        vocab_size=vocab, d_model=d_model,
        n_layers=_int(get, "block_count", high=MAX_LAYERS), n_heads=heads,
        n_kv_heads=_int(get, "attention.head_count_kv"), d_head=d_head,
        d_ff=_int(get, "feed_forward_length"), positional="rope",
        rope_base=_real(get, "rope.freq_base", low=1.0),
        rope_base_local=_real(get, "rope.local_freq_base", GEMMA3_LOCAL_ROPE_BASE, low=1.0),
        norm="rmsnorm", norm_placement="sandwich",
        norm_eps=_real(get, "attention.layer_norm_rms_epsilon", high=1.0), qk_norm=True,
        mlp="geglu", sliding_window=windows, embed_scale=math.sqrt(d_model),
        query_scale=_real(get, "query_pre_attn_scalar", GEMMA3_QUERY_PRE_ATTN_SCALAR) ** -0.5,
        tied_embedding=tied, name=name)


_LLAMA_LAYER = ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate",
                "ffn_up", "ffn_down")
ARCHITECTURES = {
    "llama": Architecture(
        "llama", ("LlamaForCausalLM",), _llama_config, _LLAMA_LAYER,
        hf_layer_names={"ffn_norm": "post_attention_layernorm"},
        norm_tensors=("attn_norm", "ffn_norm"), gguf_permuted_qk=True),
    "gemma3": Architecture(
        "gemma3", ("Gemma3ForCausalLM",), _gemma3_config,
        _LLAMA_LAYER + ("post_attention_norm", "post_ffw_norm", "attn_q_norm", "attn_k_norm"),
        hf_layer_names={"post_attention_norm": "post_attention_layernorm",
                        "ffn_norm": "pre_feedforward_layernorm",
                        "post_ffw_norm": "post_feedforward_layernorm"},
        norm_tensors=("attn_norm", "ffn_norm", "post_attention_norm", "post_ffw_norm",
                      "attn_q_norm", "attn_k_norm"), gguf_permuted_qk=False),
}


def get(name: str, source) -> Architecture:
    """The table entry for `name`, or a ValueError naming `source` (the file) and what is supported."""
    if name not in ARCHITECTURES:
        raise ValueError(f"{source} holds a {name!r} model; supported architectures: "
                         f"{sorted(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def empty_params(config: ModelConfig) -> dict:
    return {"layers": [{} for _ in range(config.n_layers)], "final_norm": {}}


def put(params: dict, where: tuple, value) -> None:
    node = params
    for key in where[:-1]:
        node = node.setdefault(key, {}) if isinstance(node, dict) else node[key]
    node[where[-1]] = value


def key(where: tuple) -> str:
    """A param path as a flat name ("layers.3.wq"): the cache's file names."""
    return ".".join(str(part) for part in where)


# Largest |w| a sound checkpoint of these families holds, measured: matrices and embeddings ≤ 9.3
# (SmolLM2-135M) and ≤ 1.6 (Gemma 3 270M); norm scales ≤ 1.4 (SmolLM2) and ≤ 1,657 (Gemma's
# post-MLP norms, stored as 1 + w). A flipped exponent bit in a quantisation block's fp16 scale
# gives 10⁴–10⁸; in a float32 norm weight up to 10³⁸. Bounds ~100× above what was measured.
PLAUSIBLE_MAX_ABS = {"matrix": 1e3, "norm": 1e5}


def check_values(value: np.ndarray, name: str, source) -> None:
    """Finite and of plausible magnitude, or a ValueError naming the tensor and the file."""
    if not np.isfinite(value).all():
        raise ValueError(f"{source}: tensor {name!r} holds non-finite values (corrupted file?)")
    bound = PLAUSIBLE_MAX_ABS["norm" if "norm" in name else "matrix"]
    largest = float(np.abs(value).max()) if value.size else 0.0
    if largest > bound:
        raise ValueError(f"{source}: tensor {name!r} holds |w| up to {largest:.3g}, beyond the "
                         f"{bound:g} that sound checkpoints of these families stay under "
                         f"(damaged tensor data?)")


def expected_shapes(config: ModelConfig) -> dict:
    """{"['layers'][0]['wq']": shape, ...} of the params `config` needs (shapes only, no arrays)."""
    import jax

    from squash_sim.model import init_params

    shapes = jax.eval_shape(lambda: init_params(config, jax.random.key(0)))
    return {jax.tree_util.keystr(path): tuple(leaf.shape)
            for path, leaf in jax.tree_util.tree_leaves_with_path(shapes)}


def raw_shape(name: str, config: ModelConfig) -> tuple[int, ...]:
    """The [out, in] shape a file must hold tensor `name` in for `config` (checked before any
    reshape: a q_proj of the wrong shape but the right size used to be hidden by one)."""
    d, f, h = config.d_model, config.d_ff, config.d_head
    q, k = config.n_heads * h, config.n_kv_heads * h
    part = name.split(".")[-2] if name.startswith("blk.") else name.removesuffix(".weight")
    return {"token_embd": (config.vocab_size, d), "output": (config.vocab_size, d),
            "output_norm": (d,), "attn_q": (q, d), "attn_k": (k, d), "attn_v": (k, d),
            "attn_output": (d, q), "ffn_up": (f, d), "ffn_gate": (f, d), "ffn_down": (d, f),
            "attn_q_norm": (h,), "attn_k_norm": (h,)}.get(part, (d,))  # the other norms: (d,)


def check_present(arch: Architecture, config: ModelConfig, names, source) -> None:
    """Every tensor `config` needs is among the file's `names`, checked before anything is
    allocated or traced (a config claiming 30,000 layers over a one-layer file used to build
    shapes for every layer first: 222 s before its error)."""
    names = set(names)
    layers = {int(n.split(".")[1]) for n in names
              if n.startswith("blk.") and n.split(".")[1].isdigit()}
    held = max(layers) + 1 if layers else 0
    if config.n_layers != held:
        raise ValueError(f"{source}: the config says {config.n_layers} layers "
                         f"('block_count' / num_hidden_layers) but the file holds tensors for "
                         f"{held}")
    for name, _, _ in arch.tensors(config):
        if name not in names:
            raise ValueError(f"{source}: tensor {name!r} is missing (a {arch.name} model needs "
                             f"it)")


def build(arch: Architecture, config: ModelConfig, tensor: Callable, source,
          expected: dict | None = None) -> dict[str, np.ndarray]:
    """{flat key: float32 array in squash_sim's layout} from `tensor(gguf_name)` ([out, in] float32,
    None if the file lacks it), checking presence, the file's shape (before any reshape),
    finiteness and magnitude of each. `expected`: the config's param shapes (default:
    expected_shapes(config))."""
    expected = expected_shapes(config) if expected is None else expected
    arrays = {}
    for name, where, arrange in arch.tensors(config):
        raw = tensor(name)
        if raw is None:
            raise ValueError(f"{source}: tensor {name!r} is missing (a {arch.name} model needs it)")
        if tuple(np.shape(raw)) != raw_shape(name, config):
            raise ValueError(f"{source}: tensor {name!r} has shape {list(np.shape(raw))}; the "
                             f"config needs {list(raw_shape(name, config))} ([out, in])")
        try:
            value = np.ascontiguousarray(arrange(np.asarray(raw, np.float32)))
        except ValueError as error:
            raise ValueError(f"{source}: tensor {name!r} has shape {list(np.shape(raw))}, which does "
                             f"not fit {key(where)} of the config ({error})") from error
        shape = expected["".join(f"[{part!r}]" for part in where)]
        if value.shape != shape:
            raise ValueError(f"{source}: tensor {name!r} gives shape {value.shape} for {key(where)}, "
                             f"expected {shape}")
        check_values(value, name, source)
        arrays[key(where)] = value
    return arrays


def params_from_arrays(arch: Architecture, config: ModelConfig, arrays: dict) -> dict:
    params = empty_params(config)
    for _, where, _ in arch.tensors(config):
        put(params, where, arrays[key(where)])
    return params
