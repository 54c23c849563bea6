"""Writing results: every file appears whole or not at all (written to a temporary name, then
renamed), so an interrupted run never leaves a partial CSV, JSON or figure behind. Files get the
permissions any new file gets (0666 less the umask), not the temporary file's private 0600."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

DPI = 260  # twice the old 130: sharp when projected or zoomed to 2x


def _path(path, caller: str) -> Path:
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise TypeError(f"{caller}: path must be a file path (str or Path), got {path!r:.60}")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{caller}: path {str(path)!r} is a folder; give a file name")
    return path


def _write_bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    """The process's umask (reading it means setting it; put straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_csv(path: Path, rows: list[dict]) -> Path:
    path = _path(path, "write_csv")
    if not isinstance(rows, (list, tuple)) or not all(isinstance(row, dict) for row in rows):
        raise TypeError(f"write_csv: rows must be a list of dicts, got {type(rows).__name__}")
    buffer = io.StringIO()
    fields = list(dict.fromkeys(key for row in rows for key in row))  # every key, first-seen order
    writer = csv.DictWriter(buffer, fieldnames=fields, restval="")
    writer.writeheader()
    writer.writerows(rows)
    return _write_bytes(path, buffer.getvalue().encode())


def write_json(path: Path, data) -> Path:
    text = json.dumps(data, indent=2, default=str) + "\n"
    return _write_bytes(_path(path, "write_json"), text.encode())


def write_figure(path: Path, figure) -> Path:
    path = _path(path, "write_figure")
    if not hasattr(figure, "savefig"):
        raise TypeError(f"write_figure: figure must be a matplotlib Figure, got "
                        f"{type(figure).__name__}")
    buffer = io.BytesIO()
    # SVG/PDF are vector; dpi sets the PNG's pixels.
    figure.savefig(buffer, format=Path(path).suffix.lstrip(".") or "png", dpi=DPI,
                   bbox_inches="tight")
    return _write_bytes(path, buffer.getvalue())


def write_text(path: Path, text: str) -> Path:
    if not isinstance(text, str):
        raise TypeError(f"write_text: text must be a str, got {type(text).__name__}")
    return _write_bytes(_path(path, "write_text"), text.encode())
