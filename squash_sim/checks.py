"""Argument checks shared by the public entry points: each raises TypeError (wrong kind of value)
or ValueError (right kind, outside what is allowed) with a message that names the caller, the
argument and what is allowed — before anything is traced or computed (DEVELOPERS.md)."""

from __future__ import annotations

import hashlib
import numbers
import os
from pathlib import Path

import numpy as np

from squash_sim.config import ModelConfig

SEED_MAX = 2**63 - 1  # JAX keys take int64 seeds; NumPy takes any int >= 0


def _show(value) -> str:
    """A value as an error quotes it: at most 60 characters, and an int of thousands of digits
    (whose repr Python refuses) by its size."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**60:
        return f"an int of {len(str(abs(value) // 10**60)) + 60} digits" if abs(
            value) < 10**4000 else "an int of more than 4,000 digits"
    return f"{value!r:.60}"


def config(caller: str, name: str, value, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, ModelConfig):
        allowed = "a ModelConfig (e.g. presets.get('tiny'))" + (" or None" if optional else "")
        raise TypeError(f"{caller}: {name} must be {allowed}, got {type(value).__name__}")


def integer(caller: str, name: str, value, minimum: int = 1, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{caller}: {name} must be an int, got {type(value).__name__} "
                        f"{_show(value)}")
    if value < minimum or (maximum is not None and value > maximum):
        allowed = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        raise ValueError(f"{caller}: {name} must be {allowed}, got {_show(value)}")
    return int(value)


def seed(caller: str, value, name: str = "seed") -> int:
    return integer(caller, name, value, 0, SEED_MAX)


def integers(caller: str, name: str, values, minimum: int = 1,
             maximum: int | None = None) -> list[int]:
    """A non-empty collection of ints in range (a list, tuple, range or 1-D int array)."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{caller}: {name} must be a list of ints, got {type(values).__name__} "
                        f"{values!r:.60}")
    values = list(np.asarray(values).ravel()) if isinstance(values, np.ndarray) else list(values)
    if not values:
        raise ValueError(f"{caller}: {name} must hold at least one int, got none")
    return [integer(caller, f"every entry of {name}", v, minimum, maximum) for v in values]


def number(caller: str, name: str, value, *, positive: bool = False,
           nonnegative: bool = False) -> float:
    """A finite real number (NumPy scalars too; bools refused), > 0 or >= 0 when asked."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{caller}: {name} must be a number, got {type(value).__name__} "
                        f"{_show(value)}")
    try:
        as_float = float(value)
    except OverflowError:  # an int with hundreds of digits
        as_float = float("inf")
    sign = " and > 0" if positive else " and >= 0" if nonnegative else ""
    if not np.isfinite(as_float) or (positive and as_float <= 0) or (nonnegative and as_float < 0):
        raise ValueError(f"{caller}: {name} must be finite{sign}, got {_show(value)}")
    return as_float


def choice(caller: str, name: str, value, allowed) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{caller}: {name} must be a str, one of {tuple(allowed)}; got "
                        f"{value!r:.60}")
    if value not in allowed:
        raise ValueError(f"{caller}: {name} must be one of {tuple(allowed)}, got {value!r}")
    return value


def flag(caller: str, name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{caller}: {name} must be a bool, got {value!r:.60}")
    return bool(value)


def loaded_model(caller: str, name: str, value) -> None:
    """A real model from squash_sim.models (LoadedModel: .params, .config, .encode, .forward)."""
    missing = [a for a in ("params", "config", "encode", "forward") if not hasattr(value, a)]
    if missing:
        raise TypeError(f"{caller}: {name} must be a loaded model (squash_sim.models, e.g. "
                        f"gemma3_270m()), got {type(value).__name__}")


def shorten(text: str) -> str:
    """A path or value as a one-line error quotes it: at most 60 characters."""
    return repr(text) if len(text) <= 60 else repr(text[:57]) + f"… ({len(text):,} characters)"


def path(caller: str, name: str, value) -> Path:
    """A str or Path the system can name (no NUL byte, under PATH_MAX, each component under
    NAME_MAX), checked before anything is opened; quoted shortened in the message."""
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{caller}: {name} must be a path (str or Path), got "
                        f"{type(value).__name__}")
    text = os.fspath(value)
    if not isinstance(text, str):
        raise TypeError(f"{caller}: {name} must be a str path, got {type(text).__name__}")
    shown = shorten(text)
    if "\0" in text:
        raise ValueError(f"{caller}: {name} {shown} contains a NUL byte")
    try:
        encoded = [len(os.fsencode(part)) for part in Path(text).parts]
        total = len(os.fsencode(text))
    except UnicodeError:
        raise ValueError(f"{caller}: {name} {shown} cannot be encoded as a file name") from None
    if total >= 4096 or any(size > 255 for size in encoded):
        raise ValueError(f"{caller}: {name} {shown} is longer than the system allows (4,095 "
                         f"bytes in all, 255 per file or folder name)")
    return Path(text)


def sha256(path: Path) -> str:
    """The hex sha256 of a file's bytes, read in 4 MiB pieces: the one hash behind every integrity
    check (a GGUF against its package's RECORD, the GGUF cache's arrays, the report's records)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()
