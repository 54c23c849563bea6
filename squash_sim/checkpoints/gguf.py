"""Gemma 3 from a GGUF file: config, parameters and tokenizer, read without executing any code.

    config, params, tokenizer = load("gemma-3-270m-q4_k_m.gguf")   # float32, cached

The `gguf` package reads the file (metadata and tensor bytes only; GGUF has no code in it) and
`gguf.quants.dequantize` turns the Q4_K/Q5_0/Q6_K/Q8_0 blocks into float32 arrays in [out, in]
layout, which we transpose into squash_sim's (in, …, out) einsum layout. Dequantizing the 262,144 ×
640 embedding takes seconds, so the float32 result is cached as one .npy per tensor (read back
with allow_pickle=False) in `cache_dir()`: $SQUASH_SIM_CACHE, else $XDG_CACHE_HOME/squash_sim, else
~/.cache/squash_sim.

What the GGUF does not say about Gemma 3 is a fact of the architecture, fixed here (see
_gemma3_config): five sliding-window layers (window 512, RoPE base 10⁴) then one global layer
(RoPE base 10⁶, the file's rope.freq_base), query scale 256^-½ (query_pre_attn_scalar = 256), no
logit soft-capping, GeGLU with tanh-GELU, √d_model embedding scale, tied unembedding.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from squash_sim.config import ModelConfig
from squash_sim.tokenizer import Tokenizer

ARCHITECTURE = "gemma3"
SLIDING_WINDOW_PATTERN = 6  # layers 5, 11, 17 (0-based) are global; the GGUF does not say this
LOCAL_ROPE_BASE = 10_000.0  # rope_local_base_freq of Gemma 3; not in the GGUF
QUERY_PRE_ATTN_SCALAR = 256  # Gemma 3: queries scaled by 256^-½; not in the GGUF
_CACHE_VERSION = 4  # bump when the cache layout changes


def cache_dir() -> Path:
    if os.environ.get("SQUASH_SIM_CACHE"):
        return Path(os.environ["SQUASH_SIM_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "squash_sim"


def _reader(path: Path):
    """A gguf.GGUFReader, or a ValueError naming the file and what is wrong with it."""
    import gguf

    if not path.is_file():
        raise FileNotFoundError(f"GGUF file {path} does not exist")
    with path.open("rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise ValueError(f"{path} is not a GGUF file (its first bytes are {magic!r}, not b'GGUF')")
    try:
        reader = gguf.GGUFReader(path)
    except Exception as error:  # noqa: BLE001  (gguf raises many kinds on a damaged file)
        raise ValueError(f"{path} is truncated or corrupted: the gguf reader failed with "
                         f"{type(error).__name__}: {error}") from error
    return reader


def _field(reader, key: str, path: Path):
    field = reader.fields.get(key)
    if field is None:
        raise ValueError(f"{path}: the metadata key {key!r} is missing")
    return field.contents()


def _gemma3_config(reader, path: Path) -> ModelConfig:
    architecture = _field(reader, "general.architecture", path)
    if architecture != ARCHITECTURE:
        raise ValueError(f"{path} holds a {architecture!r} model; this loader reads "
                         f"{ARCHITECTURE!r} (Gemma 3) only")
    get = lambda key: _field(reader, f"{ARCHITECTURE}.{key}", path)  # noqa: E731
    n_layers, d_model = int(get("block_count")), int(get("embedding_length"))
    d_head = int(get("attention.key_length"))
    if int(get("attention.value_length")) != d_head:
        raise ValueError(f"{path}: key and value head widths differ; Gemma 3 has them equal")
    window = int(get("attention.sliding_window"))
    windows = tuple(None if (layer + 1) % SLIDING_WINDOW_PATTERN == 0 else window
                    for layer in range(n_layers))
    vocab = len(reader.fields["tokenizer.ggml.tokens"].data)
    return ModelConfig(
        vocab_size=vocab, d_model=d_model, n_layers=n_layers,
        n_heads=int(get("attention.head_count")), n_kv_heads=int(get("attention.head_count_kv")),
        d_head=d_head, d_ff=int(get("feed_forward_length")), positional="rope",
        rope_base=float(get("rope.freq_base")), rope_base_local=LOCAL_ROPE_BASE,
        norm="rmsnorm", norm_placement="sandwich",
        norm_eps=float(get("attention.layer_norm_rms_epsilon")),
        qk_norm=True, mlp="geglu", sliding_window=windows, embed_scale=math.sqrt(d_model),
        query_scale=QUERY_PRE_ATTN_SCALAR ** -0.5, tied_embedding=True, name="gemma3-270m")


# GGUF tensor name → (where it goes in params, how the [out, in] array is laid out for us).
def _layout(config: ModelConfig):
    d, q, k, h = config.d_model, config.n_heads, config.n_kv_heads, config.d_head
    yield "token_embd.weight", ("embedding",), lambda w: w  # (vocab, d) already
    yield "output_norm.weight", ("final_norm", "scale"), lambda w: w
    for i in range(config.n_layers):
        b = f"blk.{i}."
        # Norm weights are stored as 1 + w (llama.cpp adds the 1): used as stored.
        yield b + "attn_norm.weight", ("layers", i, "attn_norm", "scale"), lambda w: w
        yield b + "post_attention_norm.weight", ("layers", i, "post_attn_norm", "scale"), lambda w: w
        yield b + "ffn_norm.weight", ("layers", i, "mlp_norm", "scale"), lambda w: w
        yield b + "post_ffw_norm.weight", ("layers", i, "post_mlp_norm", "scale"), lambda w: w
        yield b + "attn_q_norm.weight", ("layers", i, "q_norm", "scale"), lambda w: w
        yield b + "attn_k_norm.weight", ("layers", i, "k_norm", "scale"), lambda w: w
        yield b + "attn_q.weight", ("layers", i, "wq"), lambda w: w.T.reshape(d, q, h)  # (d, heads, h)
        yield b + "attn_k.weight", ("layers", i, "wk"), lambda w: w.T.reshape(d, k, h)
        yield b + "attn_v.weight", ("layers", i, "wv"), lambda w: w.T.reshape(d, k, h)
        yield b + "attn_output.weight", ("layers", i, "wo"), lambda w: w.T.reshape(q, h, d)
        yield b + "ffn_up.weight", ("layers", i, "w_in"), lambda w: w.T  # (d, f)
        yield b + "ffn_gate.weight", ("layers", i, "w_gate"), lambda w: w.T  # (d, f)
        yield b + "ffn_down.weight", ("layers", i, "w_out"), lambda w: w.T  # (f, d)


def _empty_params(config: ModelConfig) -> dict:
    return {"layers": [{name: {} for name in ("attn_norm", "post_attn_norm", "mlp_norm",
                                                "post_mlp_norm", "q_norm", "k_norm")}
                       for _ in range(config.n_layers)], "final_norm": {}}


def _put(params: dict, where: tuple, value) -> None:
    node = params
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value


def _dequantize(reader, config: ModelConfig, path: Path) -> dict[str, np.ndarray]:
    import gguf

    from squash_sim.model import expected_param_shapes

    tensors = {t.name: t for t in reader.tensors}
    expected = expected_param_shapes(config)  # {"['layers'][0]['wq']": shape, ...}
    arrays = {}
    for name, where, arrange in _layout(config):
        if name not in tensors:
            raise ValueError(f"{path}: tensor {name!r} is missing (is this a Gemma 3 file?)")
        tensor = tensors[name]
        try:
            raw = gguf.quants.dequantize(tensor.data, tensor.tensor_type)  # [out, in]
            value = np.ascontiguousarray(arrange(np.asarray(raw, np.float32)))
        except ValueError as error:
            raise ValueError(f"{path}: tensor {name!r} has shape {tensor.shape.tolist()}, which "
                             f"does not fit {where} of the config ({error})") from error
        key, tree_path = _key(where), "".join(f"[{part!r}]" for part in where)
        if value.shape != expected[tree_path]:
            raise ValueError(f"{path}: tensor {name!r} gives shape {value.shape} for {key}, "
                             f"expected {expected[tree_path]}")
        if not np.isfinite(value).all():
            raise ValueError(f"{path}: tensor {name!r} holds non-finite values (corrupted file?)")
        arrays[key] = value
    return arrays


def _key(where: tuple) -> str:
    return ".".join(str(part) for part in where)


def _params_from_arrays(config: ModelConfig, arrays: dict[str, np.ndarray]) -> dict:
    params = _empty_params(config)
    for _, where, _ in _layout(config):
        _put(params, where, arrays[_key(where)])
    return params


def _fingerprint(path: Path) -> dict:
    stat = path.stat()
    return {"file": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "version": _CACHE_VERSION}


class Checkpoint(NamedTuple):
    config: ModelConfig
    params: dict  # float32 NumPy arrays (memory-mapped from the cache)
    tokenizer: Tokenizer


def load(path, *, cache: bool = True) -> Checkpoint:
    """(config, params, tokenizer) of the Gemma 3 model in the GGUF file at `path`.

    With cache=True the dequantized arrays and the tokenizer (tokenizers' JSON) are read from /
    written to cache_dir(), keyed by the file's path, size and modification time: parsing the
    file's 262,144-token vocabulary alone takes 10–20 s, the cached load well under a second."""
    path = Path(path)
    folder = cache_dir() / f"gguf-{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]}"
    manifest = folder / "manifest.json"
    if cache and manifest.is_file() and path.is_file():
        cached = _read_cache(folder, path)
        if cached is not None:
            return cached
    reader = _reader(path)
    config = _gemma3_config(reader, path)
    tokenizer, special = _tokenizer(reader, path)
    arrays = _dequantize(reader, config, path)
    if cache:
        _write_cache(folder, arrays, tokenizer, {
            "fingerprint": _fingerprint(path), "config": dataclasses.asdict(config),
            "special": special, "tensors": sorted(arrays)})
    return Checkpoint(config, _params_from_arrays(config, arrays), tokenizer)


def _tokenizer(reader, path: Path) -> tuple[Tokenizer, dict]:
    model = _field(reader, "tokenizer.ggml.model", path)
    if model != "llama":
        raise ValueError(f"{path}: tokenizer model {model!r}; expected 'llama' (SentencePiece)")
    special = {name: int(_field(reader, f"tokenizer.ggml.{key}", path)) for name, key in
               (("bos_id", "bos_token_id"), ("eos_id", "eos_token_id"),
                ("unk_id", "unknown_token_id"))}
    tokens = _field(reader, "tokenizer.ggml.tokens", path)
    types = [int(t) for t in _field(reader, "tokenizer.ggml.token_type", path)]
    return Tokenizer.from_vocabulary(tokens, types, **special), special


def _read_cache(folder: Path, path: Path):
    """(config, params) from the cache when it was made from this very file, else None."""
    try:
        saved = json.loads((folder / "manifest.json").read_text())
        if saved.get("fingerprint") != _fingerprint(path):
            return None  # skip parsing the file's metadata (seconds) when the cache fits
        config = ModelConfig(**{k: tuple(v) if isinstance(v, list) else v
                                for k, v in saved["config"].items()})
        arrays = {key: np.load(folder / f"{key}.npy", mmap_mode="r", allow_pickle=False)
                  for key in saved["tensors"]}
        special = saved["special"]
        tokenizer = Tokenizer.load(folder / "tokenizer.json", bos_id=special["bos_id"],
                                   eos_id=special["eos_id"])
        return Checkpoint(config, _params_from_arrays(config, arrays), tokenizer)
    except Exception:  # noqa: BLE001  (any damage: rebuild from the GGUF)
        return None  # a damaged cache is rebuilt, never trusted


def _write_cache(folder: Path, arrays: dict, tokenizer: Tokenizer, manifest: dict) -> None:
    """Write into a temporary folder, then rename: a cache is whole or absent."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        for key, value in arrays.items():
            np.save(tmp / f"{key}.npy", value, allow_pickle=False)
        tokenizer.save(tmp / "tokenizer.json")
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
