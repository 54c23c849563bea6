"""A resumable main job: each report section stored with the inputs that produced it.

    out/.sections/KEY.json   {"inputs", "section", "files": {path: sha256}, "seconds"}
    out/.staging/KEY/        where a section being computed writes; moved into out/ when whole

A section is reused when its inputs (arguments with their defaults, size, figure formats,
package version, a fingerprint of the code) are the ones recorded and every file it wrote is
still there with the recorded hash. Progress (tqdm) shows the elapsed time and an estimate for the
remaining sections from what they took last time, corrected by how this run compares."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import json
import os
import shutil
import sys
import time
from pathlib import Path

from squash_sim import results
from squash_sim.report import Section

PACKAGE = Path(__file__).resolve().parent
# Files that only render or wire: editing them never changes a section's numbers. runs.py is
# fingerprinted per section (function_fingerprint), so editing one section reruns only it.
_NOT_FINGERPRINTED = {"report.py", "resume.py", "cli.py", "runs.py"}


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """sha256 of the code that computes sections (squash_sim and proofs_check sources)."""
    digest = hashlib.sha256()
    roots = [PACKAGE, PACKAGE.parent / "proofs_check"]
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            if root == PACKAGE and path.name in _NOT_FINGERPRINTED and path.parent == PACKAGE:
                continue
            digest.update(path.relative_to(root.parent).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def function_fingerprint(function) -> str:
    """sha256 of a section function's source and of the module-level functions it names."""
    module = inspect.getmodule(function)
    source = inspect.getsource(function)
    helpers = sorted(name for name, value in vars(module).items()
                     if inspect.isfunction(value) and value is not function
                     and value.__module__ == module.__name__ and f"{name}(" in source)
    digest = hashlib.sha256(source.encode())
    for name in helpers:
        digest.update(inspect.getsource(vars(module)[name]).encode())
    return digest.hexdigest()[:16]


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class SectionStore:
    def __init__(self, out: Path):
        self.out = Path(out)
        self.records = self.out / ".sections"

    def inputs(self, key: str, function, kwargs: dict, *, size: str, formats) -> dict:
        """Everything a section's content depends on, as JSON-comparable data."""
        from squash_sim import __version__

        bound = inspect.signature(function).bind_partial(**kwargs)
        bound.apply_defaults()
        arguments = {k: v for k, v in bound.arguments.items()
                     if k not in ("out", "progress", "formats")}
        return json.loads(json.dumps({
            "section": key, "function": function.__name__, "arguments": arguments, "size": size,
            "formats": list(formats), "version": __version__,
            "code": f"{code_fingerprint()}-{function_fingerprint(function)}"},
            default=str))

    def _record(self, key: str) -> dict | None:
        try:
            return json.loads((self.records / f"{key}.json").read_text())
        except (OSError, ValueError):
            return None

    def load(self, key: str, inputs: dict) -> Section | None:
        """The stored section when its inputs match and its files are intact, else None."""
        record = self._record(key)
        if record is None or record.get("inputs") != inputs:
            return None
        for name, digest in record["files"].items():
            path = self.out / name
            if not path.is_file() or _sha256(path) != digest:
                return None
        section = Section.from_json(record["section"], self.out)
        section.reused = True
        return section

    def expected_seconds(self, key: str, default: float) -> float:
        record = self._record(key)
        return float(record["seconds"]) if record and "seconds" in record else float(default)

    def staging(self, key: str) -> Path:
        folder = self.out / ".staging" / key
        shutil.rmtree(folder, ignore_errors=True)  # left by a killed run
        folder.mkdir(parents=True)
        return folder

    def commit(self, key: str, section: Section, staging: Path, inputs: dict) -> Section:
        """Move a finished section's files from staging into out, drop files the previous run
        of this section wrote and this one did not, and record it. → the section, paths in out"""
        files = sorted(p.relative_to(staging) for p in staging.rglob("*") if p.is_file())
        hashes = {p.as_posix(): _sha256(staging / p) for p in files}
        previous = self._record(key)
        for name in (previous or {}).get("files", {}):
            if name not in hashes:
                (self.out / name).unlink(missing_ok=True)
        for name in files:
            target = self.out / name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / name, target)
        moved = lambda paths: [self.out / Path(p).relative_to(staging) for p in paths]  # noqa: E731
        section.figures, section.data = moved(section.figures), moved(section.data)
        for verdict in section.verdicts:  # counterexample paths were written under staging
            if verdict.counterexample and verdict.counterexample.startswith(str(staging)):
                verdict.counterexample = Path(verdict.counterexample).relative_to(
                    staging).as_posix()
        results.write_json(self.records / f"{key}.json", {
            "inputs": inputs, "section": section.to_json(self.out), "files": hashes,
            "seconds": section.seconds})
        shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(OSError):
            staging.parent.rmdir()  # only when no other section is staged
        return section

    @contextlib.contextmanager
    def progress(self, todo: list[tuple[str, float]], interrupted=lambda: False):
        bar = _Progress(todo, interrupted)
        try:
            yield bar
        finally:
            bar.close()


def _clock(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class _Progress:
    """A tqdm bar over the estimated seconds of the sections to compute. tqdm because it writes
    plain lines when stderr is not a terminal (CI logs, pipes) and costs one small dependency."""

    def __init__(self, todo: list[tuple[str, float]], interrupted=lambda: False):
        from tqdm import tqdm

        self.interrupted = interrupted  # a Ctrl-C that landed where Python dropped it (cli.py)
        self.estimates = dict(todo)
        self.actual: dict[str, float] = {}
        self.current: str | None = None
        self.description = "report"
        self.begin = self.step_begin = time.perf_counter()
        self.bar = tqdm(total=max(1, round(sum(self.estimates.values()))), file=sys.stderr,
                        bar_format="{desc} |{bar:24}|", disable=not todo,
                        mininterval=0.5)
        self._refresh()

    def remaining(self) -> float:
        """Seconds left: the pending estimates, scaled by how fast the finished sections ran
        against theirs. The scale is shrunk towards 1 by the work still to come (a prior worth
        the pending estimate): the first, short sections carry JAX's start-up and first
        compilations, and scaling the whole run by them made a 3:51 estimate jump to 18:56."""
        done = [k for k in self.actual]
        pending = [k for k in self.estimates if k not in self.actual and k != self.current]
        prior = sum(self.estimates[k] for k in pending)
        expected_done = sum(self.estimates[k] for k in done)
        scale = (sum(self.actual.values()) + prior) / (expected_done + prior) if (
            expected_done + prior) > 0 else 1.0
        left = scale * sum(self.estimates[k] for k in pending)
        if self.current is not None:
            left += max(0.0, scale * self.estimates[self.current]
                        - (time.perf_counter() - self.step_begin))
        return left

    def _refresh(self) -> None:
        self.bar.set_description_str(f"{self.description} — {_clock(time.perf_counter() - self.begin)}"
                                     f" elapsed, ≈ {_clock(self.remaining())} left", refresh=True)

    def note(self, message: str) -> None:
        """A progress line from inside a section (experiments call this); where a dropped Ctrl-C
        is raised again."""
        if self.interrupted():
            raise KeyboardInterrupt
        self.bar.write(f"[{_clock(time.perf_counter() - self.begin)}] {message}", file=sys.stderr)
        self._refresh()

    def start(self, key: str, description: str) -> None:
        self.current, self.step_begin = key, time.perf_counter()
        self.description = f"report: {description}"
        self.note(f"report: {description}")

    def done(self, key: str) -> None:
        self.actual[key] = time.perf_counter() - self.step_begin
        self.current = None
        self.bar.update(round(self.estimates[key]))
        self._refresh()

    def close(self) -> None:
        self.bar.close()
