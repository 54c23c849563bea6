"""A model from a GGUF file (any architecture in architectures.py): config, parameters and
tokenizer, read without executing any code.

    config, params, tokenizer = load("SmolLM2-135M-Instruct.Q4_1.gguf")   # float32, cached

Order of work, cheapest check first: the path is a file, the header's magic, version and counts
are sane, every metadata length and every tensor's data range fits in the file (a pure-Python walk
over the header, well under a second even for Gemma's 262,144-token vocabulary), then — when the
caller knows it — the file's sha256 (a package's RECORD entry), and only then the `gguf` package
parses the metadata and `gguf.quants.dequantize` turns the quantised blocks (Q4_K, Q4_1, Q6_K,
Q8_0, …: whatever the gguf library dequantises) into float32 [out, in] arrays. Each array is then
checked for finiteness and plausible magnitude (architectures.check_values) before it is used.

Dequantizing takes seconds, so the float32 result is cached as one .npy per tensor (read back
memory-mapped with allow_pickle=False) in `cache_dir()`: $SQUASH_SIM_CACHE, else
$XDG_CACHE_HOME/squash_sim, else ~/.cache/squash_sim. A cache is used only when it was made from
this very file (path, size, modification time), its manifest's digest matches (config and hashes
included), every array has the sha256 written with it, the shape the config needs and passes the
checks of a fresh load (finite, plausible magnitude); otherwise it is rebuilt, with a message
saying why. A file is hashed once: a load that found it matching stamps its identity (device,
inode, size, mtime, ctime; verified.json), and later loads hash only what no longer has it.

llama.cpp's converter permutes the q and k rows of Llama-family models (RoPE on interleaved
pairs); squash_sim rotates the two halves of each head (as Hugging Face does), so those rows are
put back (the inverse of convert_hf_to_gguf.py's permute). Gemma files are not permuted.

What the GGUF does not say about Gemma 3 is a fact of the architecture, fixed in
architectures.py: five sliding-window layers (window 512, RoPE base 10⁴) then one global layer
(RoPE base 10⁶, the file's rope.freq_base), query scale 256^-½, GeGLU with tanh-GELU, √d_model
embedding scale, tied unembedding. Gemma's norm weights are stored as 1 + w and used as stored.
"""

from __future__ import annotations

import base64
import concurrent.futures
import dataclasses
import hashlib
import json
import mmap
import os
import shutil
import stat
import struct
import tempfile
import time
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np

from squash_sim import checks
from squash_sim.checkpoints import architectures
from squash_sim.config import ModelConfig
from squash_sim.tokenizer import Tokenizer

_CACHE_VERSION = 6  # bump when the cache layout changes (6: content hashes and a manifest digest)
_MAX_COUNT = 1 << 20  # tensors or metadata keys in a sane header (real files: a few hundred)
_MISSING = object()


def cache_dir() -> Path:
    if os.environ.get("SQUASH_SIM_CACHE"):
        return Path(os.environ["SQUASH_SIM_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "squash_sim"


def _check_path(path) -> Path:
    """The path as a Path, or an error naming what is wrong with it (not nameable, a directory,
    missing, not a regular file)."""
    path = checks.path("gguf.load", "path", path)
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.gguf"))[:5]
        hint = f" (it holds {', '.join(inside)})" if inside else ""
        raise IsADirectoryError(f"GGUF path {path} is a directory, not a GGUF file{hint}; "
                                "for a Hugging Face directory (config.json + *.safetensors) use "
                                "squash_sim.models.load")
    try:
        mode = os.stat(path).st_mode
    except OSError:
        raise FileNotFoundError(f"GGUF file {path} does not exist") from None
    if not stat.S_ISREG(mode):  # a FIFO would block the open forever; a device is no file
        raise ValueError(f"GGUF path {path} is not a regular file (a FIFO, device or socket is "
                         f"never opened)")
    return path


# --- the cheap header walk -------------------------------------------------------------------

_SCALARS = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}  # GGUFValueType
_STRING, _ARRAY = 8, 9


def scan_header(path: Path) -> None:
    """Walk the header (magic, version, counts, every key/value length, every tensor's type, shape
    and data range) in pure Python and raise a ValueError naming the file at the first thing that
    cannot be right. Costs well under a second; the gguf reader's parse takes seconds, and on some
    damaged headers (a string length of 10¹⁸) tens of seconds before it fails."""
    import gguf

    size = path.stat().st_size
    with path.open("rb") as f:
        magic = f.read(4)
        if magic != b"GGUF":
            raise ValueError(f"{path} is not a GGUF file (its first bytes are {magic!r}, not b'GGUF')")
        if size < 24:
            raise ValueError(f"{path} is truncated: {size} bytes, shorter than a GGUF header")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            _walk(path, data, size, gguf)


def _walk(path, data, size, gguf) -> None:
    def bad(what):
        return ValueError(f"{path} is truncated or corrupted: {what}")

    version, tensors, kvs = struct.unpack_from("<IQQ", data, 4)
    if version not in (2, 3):
        raise bad(f"GGUF version {version}; this reader handles versions 2 and 3")
    if tensors > _MAX_COUNT or kvs > _MAX_COUNT:
        raise bad(f"the header claims {tensors} tensors and {kvs} metadata keys")
    offset = 24

    def take(n):
        nonlocal offset
        if n < 0 or offset + n > size:
            raise bad(f"a header field at byte {offset} runs past the end of the file ({size} bytes)")
        start, offset = offset, offset + n
        return start

    def u64():
        return struct.unpack_from("<Q", data, take(8))[0]

    def string():
        return bytes(data[take(u64()):offset])

    alignment = 32
    for _ in range(kvs):
        name = string()
        kind = struct.unpack_from("<I", data, take(4))[0]
        if kind == _ARRAY:
            item, count = struct.unpack_from("<IQ", data, take(12))
            if item == _STRING:
                for _ in range(count):
                    take(u64())
            elif item in _SCALARS:
                take(_SCALARS[item] * count)
            else:
                raise bad(f"metadata key {name[:60]!r} is an array of unknown type {item}")
        elif kind == _STRING:
            take(u64())
        elif kind in _SCALARS:
            start = take(_SCALARS[kind])
            if name == b"general.alignment" and kind == 4:
                alignment = struct.unpack_from("<I", data, start)[0]
        else:
            raise bad(f"metadata key {name[:60]!r} has unknown type {kind}")
    infos = []
    for _ in range(tensors):
        name = string()
        dims = struct.unpack_from("<I", data, take(4))[0]
        if dims > 8:
            raise bad(f"tensor {name[:60]!r} claims {dims} dimensions")
        shape = struct.unpack_from(f"<{dims}Q", data, take(8 * dims))
        kind, start = struct.unpack_from("<IQ", data, take(12))
        infos.append((name, shape, kind, start))
    if alignment < 1 or alignment & (alignment - 1):
        raise bad(f"general.alignment is {alignment}, not a power of two")
    base = -(-offset // alignment) * alignment
    names = [name for name, *_ in infos]
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise bad(f"tensor {twice.decode(errors='replace')!r} is listed twice")
    ranges = []
    for name, shape, kind, start in infos:
        try:
            block, type_size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(kind)]
        except (ValueError, KeyError):
            raise bad(f"tensor {name.decode(errors='replace')!r} has unknown type {kind}") from None
        elements = int(np.prod(shape, dtype=object))
        if elements % block:
            raise bad(f"tensor {name.decode(errors='replace')!r} of shape {list(shape)} is not a "
                      f"whole number of {block}-element blocks")
        end = base + start + elements // block * type_size
        if end > size:
            raise bad(f"tensor {name.decode(errors='replace')!r} ends at byte {end}, past the end "
                      f"of the file ({size} bytes)")
        ranges.append((base + start, end, name))
    ranges.sort()
    for (_, end, first), (begin, _, second) in zip(ranges, ranges[1:], strict=False):
        if begin < end:  # two tensors reading the same bytes: one of them is not what it says
            raise bad(f"tensors {first.decode(errors='replace')!r} and "
                      f"{second.decode(errors='replace')!r} share data bytes (from byte {begin})")


def verify_sha256(path: Path, expected: str) -> None:
    """`expected`: hex, or the urlsafe-base64 form pip writes in RECORD ("sha256=…" allowed)."""
    expected = expected.removeprefix("sha256=")
    raw = bytes.fromhex(checks.sha256(path))
    if expected not in (raw.hex(), base64.urlsafe_b64encode(raw).rstrip(b"=").decode()):
        raise ValueError(f"{path}: sha256 does not match the one its package recorded at install "
                         f"time (the file was changed or damaged; reinstall the package)")


# --- parsing ---------------------------------------------------------------------------------


def _reader(path: Path, sha256: str | None = None):
    """A gguf.GGUFReader after the cheap checks (header walk, then the sha256 if given: a fraction
    of a second for 100 MB, where the parse takes seconds), or a ValueError naming the file.
    path: checked by _check_path."""
    import gguf

    scan_header(path)
    if sha256 is not None:
        verify_sha256(path, sha256)
    try:
        reader = gguf.GGUFReader(path)
    except Exception as error:  # noqa: BLE001  (gguf raises many kinds on a damaged file)
        raise ValueError(f"{path} is truncated or corrupted: the gguf reader failed with "
                         f"{type(error).__name__}: {error}") from error
    return reader


def _field(reader, key: str, path: Path, default=_MISSING):
    field = reader.fields.get(key)
    if field is None:
        if default is _MISSING:
            raise ValueError(f"{path}: the metadata key {key!r} is missing")
        return default
    return field.contents()


def _config(reader, path: Path, name: str) -> tuple[architectures.Architecture, ModelConfig]:
    architecture = _field(reader, "general.architecture", path)
    if not isinstance(architecture, str):
        raise ValueError(f"{path}: 'general.architecture' must be a string, got "
                         f"{type(architecture).__name__}")
    arch = architectures.get(architecture, path)
    get = lambda key, default=_MISSING: _field(reader, f"{arch.name}.{key}", path, default)  # noqa: E731
    try:
        n_layers = architectures.integer(get("block_count"), f"{arch.name}.block_count", 1,
                                         architectures.MAX_LAYERS)
        window = get("attention.sliding_window", None)
        if arch.name == "gemma3":
            windows = architectures.gemma3_windows(n_layers, architectures.integer(
                window, f"{arch.name}.attention.sliding_window"))
        else:
            windows = None if window is None else architectures.integer(
                window, f"{arch.name}.attention.sliding_window")
        tokens = _field(reader, "tokenizer.ggml.tokens", path)
        if not isinstance(tokens, list) or not 1 <= len(tokens) <= architectures.MAX_VOCAB:
            raise ValueError("'tokenizer.ggml.tokens' must be a list of 1.."
                             f"{architectures.MAX_VOCAB} tokens")
        tied = "output.weight" not in {t.name for t in reader.tensors}
        config = arch.config(get, len(tokens), tied, windows, name)
    except (TypeError, ValueError) as error:
        message = str(error)
        if not message.startswith(str(path)):
            message = f"{path}: {message}"
        raise ValueError(message) from None
    architectures.check_present(arch, config, {t.name for t in reader.tensors}, path)
    return arch, config


def unpermute_qk(w: np.ndarray, heads: int) -> np.ndarray:
    """Undo llama.cpp's permute of q/k rows [out, in]: per head, rows (pair, 2) → (2, pair)."""
    half = w.shape[0] // heads // 2
    return w.reshape(heads, half, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _dequantize(reader, arch, config: ModelConfig, path: Path) -> dict[str, np.ndarray]:
    import gguf

    from squash_sim.model import expected_param_shapes

    tensors = {t.name: t for t in reader.tensors}
    expected = expected_param_shapes(config)  # {"['layers'][0]['wq']": shape, ...}

    def tensor(name):
        if name not in tensors:
            return None
        t = tensors[name]
        kind = gguf.GGMLQuantizationType(t.tensor_type)
        if kind.name.startswith("I"):  # I8/I16/I32/I64: integers, not weights to widen
            raise ValueError(f"{path}: tensor {name!r} is of type {kind.name}; weights must be "
                             f"floats (F32, F16, BF16) or a quantised float type (Q4_K, Q8_0, …)")
        shape = tuple(int(n) for n in reversed(t.shape))  # GGUF lists dimensions inner first
        if shape != architectures.raw_shape(name, config):  # before dequantizing or reshaping
            raise ValueError(f"{path}: tensor {name!r} has shape {list(shape)}; the config "
                             f"needs {list(architectures.raw_shape(name, config))} ([out, in])")
        w = np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), np.float32)  # [out, in]
        if arch.gguf_permuted_qk and (".attn_q." in name or ".attn_k." in name):
            heads = config.n_heads if ".attn_q." in name else config.n_kv_heads
            if w.ndim != 2 or w.shape[0] % (2 * heads):
                raise ValueError(f"{path}: tensor {name!r} has shape {list(w.shape)}, not "
                                 f"{heads} heads of even width")
            w = unpermute_qk(w, heads)
        return w

    return architectures.build(arch, config, tensor, path, expected)


def _tokenizer(reader, path: Path) -> tuple[Tokenizer, dict]:
    model = _field(reader, "tokenizer.ggml.model", path)
    tokens = _field(reader, "tokenizer.ggml.tokens", path)
    types = _field(reader, "tokenizer.ggml.token_type", path)
    if not isinstance(types, list) or len(types) != len(tokens) or not all(
            isinstance(t, int) and not isinstance(t, bool) for t in types):
        raise ValueError(f"{path}: 'tokenizer.ggml.token_type' must be a list of integers, one "
                         f"per token")

    def token_id(key: str, default=_MISSING) -> int:
        value = _field(reader, key, path, default)
        try:
            return architectures.integer(value, key, 0, architectures.MAX_VOCAB)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None

    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        raise ValueError(f"{path}: 'tokenizer.ggml.tokens' must be a list of strings")
    special = {"bos_id": token_id("tokenizer.ggml.bos_token_id"),
               "eos_id": token_id("tokenizer.ggml.eos_token_id")}
    def flag(key: str, default: bool) -> bool:
        value = _field(reader, key, path, default)
        if not isinstance(value, (bool, np.bool_)):  # a string "no" is not False
            raise ValueError(f"{path}: {key!r} must be a bool, got {type(value).__name__} "
                             f"{value!r:.40}")
        return bool(value)

    try:
        if model == "llama":  # SentencePiece-style; llama.cpp adds BOS unless the file says not
            special["add_bos"] = flag("tokenizer.ggml.add_bos_token", True)
            unk = token_id("tokenizer.ggml.unknown_token_id")
            tokenizer = Tokenizer.from_vocabulary(tokens, types, bos_id=special["bos_id"],
                                                  eos_id=special["eos_id"], unk_id=unk)
            tokenizer.add_bos = special["add_bos"]
        elif model == "gpt2":  # byte-level BPE with the file's merges
            special["add_bos"] = flag("tokenizer.ggml.add_bos_token", False)
            merges = _field(reader, "tokenizer.ggml.merges", path)
            pre = _field(reader, "tokenizer.ggml.pre", path, "gpt2")
            if not isinstance(merges, list) or not all(isinstance(m, str) for m in merges):
                raise ValueError(f"{path}: 'tokenizer.ggml.merges' must be a list of strings")
            if not isinstance(pre, str):
                raise ValueError(f"{path}: 'tokenizer.ggml.pre' must be a string")
            tokenizer = Tokenizer.from_byte_level(tokens, merges, types, pre=pre, **special)
        else:
            raise ValueError(f"{path}: tokenizer model {model!r:.60}; supported: 'llama' "
                             "(SentencePiece BPE) and 'gpt2' (byte-level BPE)")
    except ValueError as error:
        if str(error).startswith(str(path)):
            raise
        raise ValueError(f"{path}: {error}") from None
    except Exception as error:  # noqa: BLE001  (the tokenizers library raises its own kinds)
        raise ValueError(f"{path}: the tokenizer in the file cannot be built: "
                         f"{type(error).__name__}: {str(error)[:200]}") from None
    return tokenizer, special


class Checkpoint(NamedTuple):
    config: ModelConfig
    params: dict  # float32 NumPy arrays (memory-mapped from the cache)
    tokenizer: Tokenizer


def load(path, *, cache: bool = True, sha256: str | None = None, name: str | None = None
         ) -> Checkpoint:
    """(config, params, tokenizer) of the model in the GGUF file at `path`.

    sha256: the digest the file must have (hex or pip's RECORD form), checked before parsing when
    the cache cannot be used. name: the config's name (default: the file's stem). With cache=True
    the dequantized arrays and the tokenizer (tokenizers' JSON) are read from / written to
    cache_dir(), keyed by the file's path, size and modification time: parsing Gemma's
    262,144-token vocabulary alone takes 10–20 s, the cached load well under a second."""
    checks.flag("gguf.load", "cache", cache)
    for argument, value in (("sha256", sha256), ("name", name)):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"gguf.load: {argument} must be a str or None, got "
                            f"{type(value).__name__}")
    path = _check_path(path)  # once: _reader trusts it
    name = name or path.stem
    folder = cache_dir() / (f"gguf-v{_CACHE_VERSION}-"  # versions side by side, never rebuilt in turn
                            f"{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]}")
    if cache and (folder / "manifest.json").is_file():
        cached = _read_cache(folder, path)
        if isinstance(cached, Checkpoint):
            return cached._replace(config=dataclasses.replace(cached.config, name=name))
        if cached:  # a reason: say it, then rebuild
            warnings.warn(f"squash_sim: the cache {folder} of {path.name} {cached}; rebuilding it "
                          f"from the GGUF", stacklevel=2)
    reader = _reader(path, sha256)
    arch, config = _config(reader, path, name)
    arrays = _dequantize(reader, arch, config, path)
    tokenizer, special = _tokenizer(reader, path)
    if cache:
        _write_cache(folder, arrays, tokenizer, {
            "fingerprint": _fingerprint(path), "architecture": arch.name,
            "config": dataclasses.asdict(config), "special": special, "tensors": sorted(arrays)})
    return Checkpoint(config, architectures.params_from_arrays(arch, config, arrays), tokenizer)


def _fingerprint(path: Path) -> dict:
    stat = path.stat()
    return {"file": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "version": _CACHE_VERSION}


def _read_cache(folder: Path, path: Path):
    """The Checkpoint when the cache was made from this very file and every array has the config's
    shape and finite values; else None (made from another file or version: silently stale) or a
    string saying what is wrong with it (damage: worth a message)."""
    try:
        if not stat.S_ISREG(os.stat(folder / "manifest.json").st_mode):
            return "has a manifest that is not a regular file"
        saved = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError, RecursionError):
        return "has an unreadable manifest"
    if not isinstance(saved, dict) or saved.get("fingerprint") != _fingerprint(path):
        return None  # skip parsing the file's metadata (seconds) when the cache fits
    if saved.get("digest") != _manifest_digest(saved):
        return "is damaged: its manifest was edited (its digest does not match its content)"
    try:
        arch = architectures.get(saved["architecture"], folder)
        config = ModelConfig(**{k: tuple(v) if isinstance(v, list) else v
                                for k, v in saved["config"].items()})
        architectures.check_present(arch, config, {
            name for name, where, _ in arch.tensors(config)
            if architectures.key(where) in saved["hashes"]}, folder)
        expected = architectures.expected_shapes(config)
        keys = [architectures.key(where) for _, where, _ in arch.tensors(config)]
        hashes, identities = _hashes(folder, {f"{k}.npy": k for k in keys}
                                     | {"tokenizer.json": "tokenizer.json"}, saved)
        arrays = {}
        for _, where, _ in arch.tensors(config):
            key = architectures.key(where)
            file = folder / f"{key}.npy"
            array = np.load(file, mmap_mode="r", allow_pickle=False)
            shape = expected["".join(f"[{part!r}]" for part in where)]
            if array.shape != shape or array.dtype != np.float32:
                return f"holds {key} as {array.dtype} {array.shape}, the config needs float32 {shape}"
            if hashes[f"{key}.npy"] != saved["hashes"][key]:
                # Not the bytes that passed the fresh load's checks when the cache was written
                # (those checks are implied by a matching hash): say what is wrong with them.
                if not np.isfinite(array).all():
                    return f"holds non-finite values in {key}"
                try:  # a cached 1e30 used to be used
                    architectures.check_values(array, key, folder)
                except ValueError as error:
                    return f"holds {key} values a fresh load refuses ({error})"
                return f"holds {key} changed since it was written (its sha256 does not match)"
            arrays[key] = array
        if hashes["tokenizer.json"] != saved["hashes"]["tokenizer.json"]:
            return "holds a tokenizer.json changed since it was written"
        special = saved["special"]
        tokenizer = Tokenizer.load(folder / "tokenizer.json", bos_id=special["bos_id"],
                                   eos_id=special["eos_id"], add_bos=special["add_bos"])
    except Exception as error:  # noqa: BLE001  (any damage: rebuild from the GGUF)
        return f"is damaged ({type(error).__name__}: {error})"
    _stamp(folder, saved, identities)
    return Checkpoint(config, architectures.params_from_arrays(arch, config, arrays), tokenizer)


_SETTLED_NS = 2 * 10**9  # a file last changed this long before it was looked at (racy-git rule)
_STAMP = "verified.json"  # {"manifest": digest, "files": {name: identity}}: hashed and matched


def _identity(file: Path) -> list:
    """What changes whenever a file's bytes are written: device, inode, size, mtime and ctime (no
    call sets ctime back)."""
    info = os.stat(file)
    return [info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns]


def _stamped(folder: Path, saved: dict) -> dict:
    """{file name: identity} of the files an earlier load of this manifest hashed and found
    matching; {} when there is no stamp or it is damaged (then everything is hashed)."""
    try:
        stamp = json.loads((folder / _STAMP).read_text())
        files = stamp["files"] if stamp["manifest"] == saved["digest"] else {}
    except Exception:  # noqa: BLE001  (absent, unreadable, not the layout above)
        return {}
    return files if isinstance(files, dict) else {}


def _hashes(folder: Path, files: dict, saved: dict) -> tuple[dict, dict]:
    """files: {file name: its key in the manifest's hashes}. → ({file name: sha256}, {file name:
    identity} of the files hashed now). A file stamped with the identity it has now has not been
    written since it was hashed to the manifest's digest: it is not read again, so a cached load
    hashes each file once, not on every load."""
    stamped = _stamped(folder, saved)
    identities = {name: _identity(folder / name) for name in files}  # before hashing
    hashes = {name: saved["hashes"][key] for name, key in files.items()
              if stamped.get(name) == identities[name]}
    todo = [name for name in files if name not in hashes]
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:  # sha256
        hashes |= dict(zip(todo, pool.map(  # releases the GIL: the cores share the hashing
            lambda name: checks.sha256(folder / name), todo), strict=True))
    return hashes, {name: identities[name] for name in todo}


def _stamp(folder: Path, saved: dict, identities: dict) -> None:
    """After a cached load whose every hash matched: stamp the files hashed now that had settled
    (last changed _SETTLED_NS before they were looked at, so any later write gives them another
    identity). Best effort: a cache that cannot be written is hashed on every load."""
    settled = {name: identity for name, identity in identities.items()
               if time.time_ns() - identity[4] > _SETTLED_NS}
    if not settled:
        return
    tmp = folder / f".{_STAMP}.{os.getpid()}"
    try:
        tmp.write_text(json.dumps({"manifest": saved["digest"],
                                   "files": _stamped(folder, saved) | settled}))
        os.replace(tmp, folder / _STAMP)
    except OSError:
        tmp.unlink(missing_ok=True)


def _manifest_digest(manifest: dict) -> str:
    """sha256 of the manifest without its digest: the config, fingerprint and array hashes are
    all covered (an edited rope_base under an intact fingerprint used to be used)."""
    body = {k: v for k, v in manifest.items() if k != "digest"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _write_cache(folder: Path, arrays: dict, tokenizer: Tokenizer, manifest: dict) -> None:
    """Write into a temporary folder, then rename: a cache is whole or absent."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        for key, value in arrays.items():
            np.save(tmp / f"{key}.npy", value, allow_pickle=False)
        tokenizer.save(tmp / "tokenizer.json")
        manifest = dict(manifest, hashes={
            **{key: checks.sha256(tmp / f"{key}.npy") for key in arrays},
            "tokenizer.json": checks.sha256(tmp / "tokenizer.json")})
        manifest["digest"] = _manifest_digest(manifest)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
