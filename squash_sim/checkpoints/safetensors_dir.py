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


def _read_config(folder: Path) -> dict:
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"{folder / 'config.json'} is not readable JSON: {error}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{folder / 'config.json'} is not a JSON object")
    return config


def _architecture(config: dict, folder: Path) -> architectures.Architecture:
    classes = config.get("architectures") or []
    for arch in architectures.ARCHITECTURES.values():
        if any(c in arch.hf_classes for c in classes):
            return arch
    supported = sorted(c for a in architectures.ARCHITECTURES.values() for c in a.hf_classes)
    raise ValueError(f"{folder / 'config.json'} describes {classes or 'no architecture'}; "
                     f"supported: {supported}")


def _unsupported(config: dict, folder: Path, arch) -> None:
    """Options of these families that squash_sim's model does not implement: refuse, not ignore."""
    problems = []
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
        full = (rope.get("full_attention") or {}).get("rope_theta", config.get("rope_theta"))
        local = (rope.get("sliding_attention") or {}).get("rope_theta",
                                                          config.get("rope_local_base_freq"))
        return {"rope.freq_base": full, "rope.local_freq_base": local}
    return {"rope.freq_base": rope.get("rope_theta", config.get("rope_theta"))}


def _windows(config: dict, arch, n_layers: int):
    if arch.name != "gemma3":
        if config.get("sliding_window") and config.get("use_sliding_window", True):
            return int(config["sliding_window"])
        return None
    window = int(config["sliding_window"])
    types = config.get("layer_types")
    if types is None:
        return architectures.gemma3_windows(n_layers, window)
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
        try:
            with safe_open(str(file), framework="numpy") as f:
                for name in f.keys():  # noqa: SIM118  (safe_open has no __iter__)
                    where[name] = file
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
    folder = Path(folder)
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
    tied = bool(hf.get("tie_word_embeddings", True)) and "lm_head.weight" not in files
    try:
        config = arch.config(get, int(hf["vocab_size"]), tied,
                             _windows(hf, arch, int(get("block_count"))), folder.name)
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{folder / 'config.json'}: {error}") from error

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
    if (folder / "tokenizer_config.json").is_file():
        settings = json.loads((folder / "tokenizer_config.json").read_text())
    bos, eos = hf.get("bos_token_id"), hf.get("eos_token_id")
    eos = eos[0] if isinstance(eos, list) else eos
    add_bos = bool(settings.get("add_bos_token", False)) and bos is not None
    return Tokenizer.load(folder / "tokenizer.json", bos_id=bos if bos is not None else -1,
                          eos_id=eos if eos is not None else -1, add_bos=add_bos)
