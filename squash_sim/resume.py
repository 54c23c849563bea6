"""A resumable main job: each report section stored with the inputs that produced it, the report
written as a transaction (an interrupted or concurrent run never leaves a half state).

    out/.lock                held (flock) by the one run writing out/: pid, host, start time
    out/.sections/KEY.json   {"format", "inputs", "section", "files": {path: sha256}, "seconds",
                              "load_factor" (the machine's, when they were taken; older records
                              have none), "digest": sha256 of the rest}
    out/.staging/RUN/KEY/    private to one run: where a section being computed writes; moved
                             into out/ when whole

A section is reused only when its record passes the schema (exact types, every promised file a
relative path inside out/, its digest intact), its inputs (arguments with their defaults, size,
figure formats, package version, a fingerprint of the code) are the ones recorded and every file
it promises is a regular file with the recorded sha256. Anything else (a missing, damaged, edited
or foreign record; a deleted or changed file) recomputes the section and says why.

Progress (tqdm) shows the elapsed time and an estimate for the remaining sections from what they
took last time at the load they saw, scaled to today's load (runs.expected_seconds), corrected by
how this run compares."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import hashlib
import inspect
import json
import math
import os
import re
import shutil
import socket
import stat
import sys
import tempfile
import time
from pathlib import Path

from squash_sim import checks, results
from squash_sim.report import VERDICTS, Section, Verdict, verdict_word

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


RECORD_FORMAT = 2  # version of the record layout below; older records are recomputed
_HEX64 = re.compile(r"[0-9a-f]{64}")
# A row's fields are the Verdict dataclass's own: one definition, so a field added there (e.g.
# `latex`) is part of the schema at once.
_VERDICT_FIELDS = {field.name for field in dataclasses.fields(Verdict)}
_SECTION_FIELDS = {"key", "title", "reference", "summary", "table", "figures", "data",
                   "seconds", "verdicts"}


def _digest(record: dict) -> str:
    """sha256 of a record without its "digest" (canonical JSON: sorted keys, NaN spelled NaN)."""
    body = {k: v for k, v in record.items() if k != "digest"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, allow_nan=True,
                                     separators=(",", ":")).encode()).hexdigest()


class ReportBusy(ValueError):
    """Another run holds the lock on the report folder (the CLI prints it as one line, exit 2)."""


@contextlib.contextmanager
def locked(out: Path):
    """An exclusive lock on the report folder for the duration of a run: out/.lock, held with
    flock and naming its holder (pid, host, start time). A second run into the same folder stops
    at once with ReportBusy naming the holder (it does not wait: a report can take hours). The
    kernel drops the lock when its holder dies, even by SIGKILL, so a lock file left by a dead
    run is stale and simply taken over."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / ".lock"
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 512).decode(errors="replace").strip() or "a run starting up"
            os.close(fd)
            raise ReportBusy(f"{out} is being written by another report ({holder}); wait for "
                             f"it to finish or give another --out") from None
        try:  # the holder we waited on may have removed the file as it let go: take a fresh one
            fresh = os.fstat(fd).st_ino == os.stat(path, follow_symlinks=False).st_ino
        except FileNotFoundError:
            fresh = False
        if fresh:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, (f"pid {os.getpid()} on {socket.gethostname()}, started "
                      f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}\n").encode())
        yield path
    finally:
        path.unlink(missing_ok=True)  # before letting go, so a waiter never takes a dead file
        os.close(fd)


def _relative_file(name, what: str) -> str | None:
    """The problem with a promised file name, or None: relative, inside out, no dot folder."""
    if not isinstance(name, str) or not name:
        return f"{what} is not a file name"
    parts = Path(name).parts
    if Path(name).is_absolute() or ".." in parts or parts[0] in (".sections", ".staging",
                                                                    ".lock") or "\0" in name:
        return f"{what} {name!r:.80} is not a path inside the report folder"
    return None


def _number(value) -> bool:
    return type(value) in (int, float)


def record_problem(record, key: str) -> str | None:
    """Why a stored record cannot be trusted (schema, digest), or None. Exact types: a number
    where a number belongs, finite where the record's own bookkeeping needs it."""
    if not isinstance(record, dict):
        return f"is a JSON {type(record).__name__}, not an object"
    if set(record) - {"load_factor"} != {"format", "inputs", "section", "files", "seconds",
                                         "digest"}:  # load_factor: written since it was added
        return f"has keys {sorted(record)}, not those of a section record"
    if record["format"] != RECORD_FORMAT:
        return f"has format {record['format']!r:.40}, this version writes {RECORD_FORMAT}"
    if not isinstance(record["digest"], str) or record["digest"] != _digest(record):
        return "was edited or damaged (its digest does not match its content)"
    seconds = record["seconds"]
    if not _number(seconds) or not math.isfinite(seconds) or seconds < 0:
        return f"has seconds {seconds!r:.40}, not a finite number >= 0"
    factor = record.get("load_factor", 1.0)
    if not _number(factor) or not math.isfinite(factor) or factor < 1:
        return f"has load_factor {factor!r:.40}, not a finite number >= 1"
    if not isinstance(record["inputs"], dict):
        return "has inputs that are not an object"
    files = record["files"]
    if not isinstance(files, dict):
        return "has files that are not an object"
    for name, digest in files.items():
        problem = _relative_file(name, "file")
        if problem:
            return problem
        if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
            return f"has no sha256 for {name!r:.80}"
    section = record["section"]
    if not isinstance(section, dict) or set(section) != _SECTION_FIELDS:
        return "has a section that is not one (wrong fields)"
    if section["key"] != key:
        return f"belongs to section {section['key']!r:.40}, not {key!r}"
    if not all(isinstance(section[k], str) for k in ("title", "reference")):
        return "has a title or reference that is not text"
    if not isinstance(section["summary"], list) or not all(
            isinstance(line, str) for line in section["summary"]):
        return "has a summary that is not a list of text"
    if not _number(section["seconds"]) or not math.isfinite(section["seconds"]):
        return "has section seconds that are not a finite number"
    table = section["table"]
    if not isinstance(table, list) or not all(
            isinstance(row, dict) and all(value is None or type(value) in (str, int, float, bool)
                                          for value in row.values()) for row in table):
        return "has a table that is not a list of rows of numbers and text"
    for field in ("figures", "data"):
        names = section[field]
        if not isinstance(names, list) or any(name not in files for name in names
                                              if isinstance(name, str)) or not all(
                isinstance(name, str) for name in names):
            return f"lists {field} it has no hash for"
    verdicts = section["verdicts"]
    if not isinstance(verdicts, list):
        return "has verdicts that are not a list"
    for verdict in verdicts:
        if not isinstance(verdict, dict) or set(verdict) != _VERDICT_FIELDS or not all(
                isinstance(v, str) for k, v in verdict.items() if k != "counterexample"):
            return "has a verdict row that is not one"
        if verdict["counterexample"] is not None and verdict["counterexample"] not in files:
            return "links a counterexample it has no hash for"
        if verdict_word(verdict["verdict"]) not in VERDICTS:
            return f"has an unknown verdict {verdict['verdict']!r:.60}"
    return None


class SectionStore:
    def __init__(self, out: Path):
        self.out = Path(out)
        self.records = self.out / ".sections"
        self.run_staging: Path | None = None

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

    def _record(self, key: str) -> tuple[dict | None, str]:
        """(the record when it passes the schema, else None; why not, "" when there is none)."""
        path = self.records / f"{key}.json"
        try:
            info = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            return None, ""
        except OSError as err:
            return None, f"its record cannot be read ({err.strerror})"
        if not stat.S_ISREG(info.st_mode):
            return None, "its record is not a regular file"
        if info.st_size > 64 << 20:
            return None, f"its record is {info.st_size:,} bytes, more than any section writes"
        try:
            record = json.loads(path.read_bytes())
        except (OSError, ValueError, RecursionError) as err:
            return None, f"its record is not valid JSON ({type(err).__name__})"
        problem = record_problem(record, key)
        if problem:
            return None, f"its record {problem}"
        return record, ""

    def load(self, key: str, inputs: dict) -> tuple[Section | None, str]:
        """(the stored section when its record is sound, its inputs match and its files are
        intact, else None; why it is recomputed: "" for a section never computed here)."""
        record, why = self._record(key)
        if record is None:
            return None, why
        if record["inputs"] != inputs:
            return None, "its inputs changed"
        for name, digest in sorted(record["files"].items()):
            path = self.out / name
            try:
                if not stat.S_ISREG(os.stat(path, follow_symlinks=False).st_mode):
                    return None, f"{name} is no longer a regular file"
                if checks.sha256(path) != digest:
                    return None, f"{name} changed since it was written"
            except OSError:
                return None, f"{name} is missing"
        section = Section.from_json(record["section"], self.out)
        section.reused = True
        return section, ""

    def recorded_seconds(self, key: str) -> tuple[float, float] | None:
        """(seconds, the machine's load factor when they were taken) of the section's last run
        here (a record without a factor: 1), or None when it has no sound record."""
        record, _ = self._record(key)
        return (float(record["seconds"]), float(record.get("load_factor", 1.0))) if record else None

    def begin(self) -> Path:
        """This run's private staging folder. Called under the lock: anything else staged is
        what a killed run left, and goes."""
        for folder in (self.out / ".staging", self.records):  # our bookkeeping: a file or a
            if folder.is_symlink() or folder.exists() and not folder.is_dir():  # link in its
                folder.unlink()  # place is damage, never followed
        shutil.rmtree(self.out / ".staging", ignore_errors=True)
        (self.out / ".staging").mkdir(parents=True, exist_ok=True)
        self.run_staging = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-",
                                                 dir=self.out / ".staging"))
        return self.run_staging

    def end(self) -> None:
        """Remove this run's staging folder (and .staging when nothing else is in it)."""
        if self.run_staging is not None:
            shutil.rmtree(self.run_staging, ignore_errors=True)
            with contextlib.suppress(OSError):
                self.run_staging.parent.rmdir()
            self.run_staging = None

    def staging(self, key: str) -> Path:
        folder = (self.run_staging or self.begin()) / key
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        return folder

    def commit(self, key: str, section: Section, staging: Path, inputs: dict,
               load_factor: float = 1.0) -> Section:
        """Move a finished section's files from staging into out, drop files the previous run
        of this section wrote and this one did not, and record it (with the machine's load
        factor the run saw, for the next run's estimate). → the section as read back from its
        record (so a fresh section and a reused one render the same bytes)"""
        files = sorted(p.relative_to(staging) for p in staging.rglob("*") if p.is_file())
        hashes = {p.as_posix(): checks.sha256(staging / p) for p in files}
        previous, _ = self._record(key)
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
        # Through JSON once, as a reused section is read: NumPy scalars become what the record
        # holds (default=str), so the fresh and the resumed report are the same bytes.
        record = json.loads(json.dumps({
            "format": RECORD_FORMAT, "inputs": inputs, "section": section.to_json(self.out),
            "files": hashes, "seconds": section.seconds, "load_factor": load_factor},
            default=str))
        record["digest"] = _digest(record)
        problem = record_problem(record, key)
        if problem:  # a section function wrote something its record cannot promise: a bug
            raise RuntimeError(f"section {key}: its record {problem}")
        target = self.records / f"{key}.json"
        if target.is_dir() and not target.is_symlink():  # a damaged store: a folder in its place
            shutil.rmtree(target)
        results.write_json(target, record)
        shutil.rmtree(staging, ignore_errors=True)
        return Section.from_json(record["section"], self.out)

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
