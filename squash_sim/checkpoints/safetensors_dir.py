"""A model from a Hugging Face directory: config.json + *.safetensors (+ tokenizer.json if present).

    config, params, tokenizer = load("path/to/SmolLM2-135M")   # float32; tokenizer may be None

Read with the `safetensors` library (a JSON header and raw arrays: no pickle, nothing executed);
*.bin / *.pt checkpoints (pickles) are refused. config.json's "architectures" entry picks the row
of the architecture table (architectures.py); its hyperparameters are renamed to the table's
neutral names, its tensor names to GGUF's. Two conventions differ from GGUF: the rows of q and k
are already in the half-split RoPE layout squash_sim uses (no permutation), and Gemma's norm
weights are stored as w and applied as 1 + w (GGUF stores 1 + w), so 1 is added here.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np

from squash_sim.checkpoints import architectures
from squash_sim.checkpoints.gguf import Checkpoint
from squash_sim.tokenizer import Tokenizer

# config.json key → the table's neutral (GGUF) name
_HYPER = {"num_hidden_layers": "block_count", "hidden_size": "embedding_length",
          "intermediate_size": "feed_forward_length", "num_attention_heads": "attention.head_count",
          "num_key_value_heads": "attention.head_count_kv", "head_dim": "attention.key_length",
          "rms_norm_eps": "attention.layer_norm_rms_epsilon",
          "query_pre_attn_scalar": "query_pre_attn_scalar"}
_MISSING = object()


MAX_JSON_BYTES = 64 << 20  # config.json is a few kB; tokenizer.json up to ~35 MB (Gemma)
DTYPES = ("F32", "F16", "BF16")  # weights are floats: int8/bool tensors are not these models'


def _regular(path: Path, what: str) -> int:
    """The size of `path` when it is a regular file, else a ValueError naming it: a FIFO or a
    device is never opened (opening a FIFO blocks until someone writes)."""
    try:
        info = os.stat(path)
    except OSError as error:
        raise ValueError(f"{path}: {what} cannot be read ({error.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{path}: {what} is not a regular file (a FIFO, device or folder is "
                         f"never opened)")
    return info.st_size


def read_json(path: Path, what: str, max_bytes: int = MAX_JSON_BYTES):
    """A JSON file of bounded size and nesting, or a ValueError naming it."""
    size = _regular(path, what)
    if size > max_bytes:
        raise ValueError(f"{path}: {what} is {size:,} bytes; at most {max_bytes:,} are read")
    try:
        return json.loads(path.read_bytes())
    except RecursionError:
        raise ValueError(f"{path}: {what} is nested too deeply to be a model's JSON") from None
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: {what} is not readable JSON ({error})") from None


def _read_config(folder: Path) -> dict:
    config = read_json(folder / "config.json", "config.json", 1 << 20)
    if not isinstance(config, dict):
        raise ValueError(f"{folder / 'config.json'} is not a JSON object")
    return config


def _of_type(config: dict, key: str, kinds, file: Path, allowed: str):
    """config[key] when absent (None) or of one of `kinds`, else a ValueError naming the file
    and the key."""
    value = config.get(key)
    if value is not None and (isinstance(value, bool) and bool not in kinds
                              or not isinstance(value, kinds)):
        raise ValueError(f"{file}: {key!r} must be {allowed}, got "
                         f"{type(value).__name__} {value!r:.40}")
    return value


def _architecture(config: dict, folder: Path) -> architectures.Architecture:
    classes = _of_type(config, "architectures", list, folder / "config.json",
                       "a list of class names") or []
    if not all(isinstance(c, str) for c in classes):
        raise ValueError(f"{folder / 'config.json'}: 'architectures' must be a list of class "
                         f"names (strings), got {classes!r:.60}")
    for arch in architectures.ARCHITECTURES.values():
        if any(c in arch.hf_classes for c in classes):
            return arch
    supported = sorted(c for a in architectures.ARCHITECTURES.values() for c in a.hf_classes)
    raise ValueError(f"{folder / 'config.json'} describes {classes or 'no architecture'}; "
                     f"supported: {supported}")


def _unsupported(config: dict, folder: Path, arch) -> None:
    """Options of these families that squash_sim's model does not implement: refuse, not ignore."""
    problems = []
    for key in ("attention_bias", "mlp_bias", "use_bidirectional_attention",
                "tie_word_embeddings", "use_sliding_window"):
        _of_type(config, key, (bool,), folder / "config.json", "true or false")
    for key in ("hidden_act", "hidden_activation"):
        _of_type(config, key, (str,), folder / "config.json", "an activation name")
    _of_type(config, "rope_parameters", (dict,), folder / "config.json", "an object")
    if config.get("attention_bias") or config.get("mlp_bias"):
        problems.append("attention/MLP biases")
    for key in ("rope_scaling", "attn_logit_softcapping", "final_logit_softcapping"):
        if config.get(key):
            problems.append(f"{key}={config[key]!r}")
    rope = config.get("rope_parameters") or {}
    for part in (rope.values() if arch.name == "gemma3" else [rope]):
        if isinstance(part, dict) and part.get("rope_type", "default") != "default":
            problems.append(f"rope_type={part['rope_type']!r}")
    if config.get("use_bidirectional_attention"):
        problems.append("bidirectional attention")
    act = config.get("hidden_act") or config.get("hidden_activation")
    wanted = {"llama": "silu", "gemma3": "gelu_pytorch_tanh"}[arch.name]
    if act is not None and act != wanted:
        problems.append(f"activation {act!r} (squash_sim's {arch.name} uses {wanted!r})")
    if problems:
        raise ValueError(f"{folder / 'config.json'}: not supported: {', '.join(problems)}")


def _rope_bases(config: dict, arch) -> dict:
    rope = config.get("rope_parameters") or {}
    if arch.name == "gemma3":
        parts = [rope.get("full_attention") or {}, rope.get("sliding_attention") or {}]
        if not all(isinstance(p, dict) for p in parts):
            raise ValueError("'rope_parameters' must map full_attention and sliding_attention "
                             "to objects")
        full = parts[0].get("rope_theta", config.get("rope_theta"))
        local = parts[1].get("rope_theta", config.get("rope_local_base_freq"))
        return {"rope.freq_base": full, "rope.local_freq_base": local}
    return {"rope.freq_base": rope.get("rope_theta", config.get("rope_theta"))}


_LAYER_TYPES = ("sliding_attention", "full_attention")


def _windows(config: dict, arch, n_layers: int):
    if arch.name != "gemma3":
        if config.get("sliding_window") is not None and config.get("use_sliding_window", True):
            return architectures.integer(config["sliding_window"], "sliding_window")
        return None
    window = architectures.integer(config.get("sliding_window"), "sliding_window")
    types = config.get("layer_types")
    if types is None:
        return architectures.gemma3_windows(n_layers, window)
    if (not isinstance(types, list) or len(types) != n_layers
            or not all(isinstance(t, str) and t in _LAYER_TYPES for t in types)):
        raise ValueError(f"'layer_types' must be a list of {n_layers} entries (one per layer), "
                         f"each one of {_LAYER_TYPES}")
    return tuple(window if t == "sliding_attention" else None for t in types)


def _tensors(folder: Path) -> dict:
    from safetensors import safe_open

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        pickles = sorted(p.name for pattern in ("*.bin", "*.pt", "*.pth") for p in folder.glob(pattern))
        hint = f" ({', '.join(pickles[:3])}: pickles, which squash_sim never loads)" if pickles else ""
        raise ValueError(f"{folder} has no *.safetensors file{hint}")
    where = {}
    for file in files:
        _regular(file, "a weights file")
        try:
            with safe_open(str(file), framework="numpy") as f:
                for name in f.keys():  # noqa: SIM118  (safe_open has no __iter__)
                    if name in where:  # the later shard used to win, silently
                        raise ValueError(f"{file}: tensor {name!r} is also in {where[name].name}; "
                                         f"each tensor must be in exactly one shard")
                    dtype = f.get_slice(name).get_dtype()
                    if dtype not in DTYPES:
                        raise ValueError(f"{file}: tensor {name!r} is {dtype}; weights must be "
                                         f"one of {', '.join(DTYPES)}")
                    where[name] = file
        except ValueError:
            raise
        except Exception as error:  # noqa: BLE001  (safetensors raises its own kinds)
            raise ValueError(f"{file} is not a readable safetensors file: {error}") from None
    return where


def _array(file: Path, name: str) -> np.ndarray:
    """One tensor as float32. NumPy has no bfloat16, the dtype most checkpoints are shipped in:
    those bytes are widened by hand (a bfloat16 is the top half of a float32), at the offsets the
    library reports for the tensor in the file's JSON header."""
    from safetensors import safe_open

    with safe_open(str(file), framework="numpy") as f:
        if f.get_slice(name).get_dtype() != "BF16":
            return np.asarray(f.get_tensor(name), np.float32)
    with file.open("rb") as raw:
        header_size = int.from_bytes(raw.read(8), "little")
        entry = json.loads(raw.read(header_size))[name]
        begin, end = entry["data_offsets"]
        raw.seek(8 + header_size + begin)
        halves = np.frombuffer(raw.read(end - begin), "<u2")
    return (halves.astype(np.uint32) << 16).view(np.float32).reshape(entry["shape"])


def load(folder) -> Checkpoint:
    """(config, params, tokenizer) of the Hugging Face checkpoint in `folder`."""
    from squash_sim import checks

    folder = checks.path("safetensors_dir.load", "folder", folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is not a directory (config.json + *.safetensors)")
    hf = _read_config(folder)
    arch = _architecture(hf, folder)
    _unsupported(hf, folder, arch)
    neutral = {_HYPER[k]: v for k, v in hf.items() if k in _HYPER and v is not None}
    neutral.update({k: v for k, v in _rope_bases(hf, arch).items() if v is not None})

    def get(key, default=_MISSING):
        if key in neutral:
            return neutral[key]
        if default is _MISSING:
            raise ValueError(f"{folder / 'config.json'}: the key for {key!r} is missing")
        return default

    files = _tensors(folder)
    tied = hf.get("tie_word_embeddings", True) is not False and "lm_head.weight" not in files
    try:
        n_layers = architectures.integer(get("block_count"), "block_count", 1,
                                         architectures.MAX_LAYERS)
        config = arch.config(get, architectures.integer(hf.get("vocab_size"), "vocab_size", 1,
                                                        architectures.MAX_VOCAB),
                             tied, _windows(hf, arch, n_layers), folder.name)
    except (KeyError, TypeError, ValueError) as error:
        message = str(error)
        for hf_key, neutral_key in _HYPER.items():  # name the key as config.json spells it
            message = message.replace(repr(neutral_key), repr(hf_key))
        raise ValueError(f"{folder / 'config.json'}: {message}") from None
    architectures.check_present(  # before any shape is built or tensor read
        arch, config, {arch.gguf_name(n) for n in files} - {None}, folder)

    def tensor(name):
        file = files.get(arch.hf_name(name))
        if file is None:
            return None
        w = _array(file, arch.hf_name(name))  # [out, in] float32
        is_norm = name == "output_norm.weight" or name.split(".")[-2] in arch.norm_tensors
        if arch.name == "gemma3" and is_norm:
            w = w + np.float32(1.0)  # Gemma applies x·(1 + w); squash_sim's RMSNorm applies x·w
        return w

    arrays = architectures.build(arch, config, tensor, folder)
    tokenizer = None
    if (folder / "tokenizer.json").is_file():
        tokenizer = _tokenizer(folder, hf)
    return Checkpoint(config, architectures.params_from_arrays(arch, config, arrays), tokenizer)


def _tokenizer(folder: Path, hf: dict) -> Tokenizer:
    """tokenizer.json as written (plain JSON); BOS as tokenizer_config.json's add_bos_token."""
    settings = {}
    if (folder / "tokenizer_config.json").exists():
        settings = read_json(folder / "tokenizer_config.json", "tokenizer_config.json")
        if not isinstance(settings, dict):
            raise ValueError(f"{folder / 'tokenizer_config.json'} is not a JSON object")
        _of_type(settings, "add_bos_token", (bool,), folder / "tokenizer_config.json",
                 "true or false")
    size = _regular(folder / "tokenizer.json", "tokenizer.json")
    if size > MAX_JSON_BYTES:
        raise ValueError(f"{folder / 'tokenizer.json'} is {size:,} bytes; at most "
                         f"{MAX_JSON_BYTES:,} are read")
    bos, eos = hf.get("bos_token_id"), hf.get("eos_token_id")
    eos = eos[0] if isinstance(eos, list) and eos else eos
    for key, value in (("bos_token_id", bos), ("eos_token_id", eos)):
        if value is not None:
            try:
                architectures.integer(value, key, 0, architectures.MAX_VOCAB)
            except ValueError as error:
                raise ValueError(f"{folder / 'config.json'}: {error}") from None
    add_bos = bool(settings.get("add_bos_token", False)) and bos is not None
    try:
        return Tokenizer.load(folder / "tokenizer.json", bos_id=bos if bos is not None else -1,
                              eos_id=eos if eos is not None else -1, add_bos=add_bos)
    except Exception as error:  # noqa: BLE001  (the tokenizers library raises its own kinds)
        raise ValueError(f"{folder / 'tokenizer.json'} is not a tokenizer the tokenizers "
                         f"library reads: {str(error)[:200]}") from None
