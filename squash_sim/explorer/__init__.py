"""The collapse explorer: a static site (index.html, its data, vendored uPlot) that opens from
file:// with no network and no Python, for teaching precision-induced collapse.

Everything the page shows is precomputed here by squash_sim's own forward pass on the Figure 10
model ("paper-fig10": one untrained layer, d = 64, one head, vector inputs), one pass per
setting: float format × policy × accumulation model × positional encoding × seed. Per setting the
page reads

  * the distances ‖y_n − y*_{n+1}‖₁ for n = 1..N (analysis.collapse.measure) and which pairs are
    bit-identical, with the format's spacing above 1 (the paper's horizontal line);
  * per sweep length N on a log grid: the sweep's collapse by the project's one definition
    (analysis.collapse.judge, read through CollapseResult.collapse: lasting collapse n*, first
    identical pair, share of identical pairs, numerical status) and a verdict sentence;
    the last row of attention (the query at the N-th one); the running softmax sum and the
    running weights·values sum (one coordinate) of that query, in the policy's own accumulator
    (accumulate.accumulated_sum / accumulated_einsum, the functions the forward uses) beside the
    float64 sums of the same terms, and where each stopped growing (analysis.mechanism.first_stall).

The page computes nothing the data does not hold: it picks the setting's record and draws it.
Sweep lengths below N are prefixes of the one pass (bit for bit a shorter run under "-pure"
policies, within float32 rounding for storage-only ones: precision.py).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.resources
import itertools
import json
import math
import pathlib
import shutil
import time

import jax
import jax.numpy as jnp
import numpy as np

from squash_sim import attention as attn
from squash_sim import floats, positional, presets
from squash_sim.accumulate import accumulated_einsum, accumulated_sum
from squash_sim.analysis import collapse
from squash_sim.analysis import mechanism as mechanism_lib
from squash_sim.model import forward, init_params
from squash_sim.precision import Numerics, Precision
from squash_sim.precision import get as get_precision

PROMPT_LEN = 8
# Accumulation models of the "every op rounded" policy: label → how the policy string ends.
ACCUMULATIONS = {
    "sequential": "",  # every sum added one term at a time in the format
    "pairwise": "+pairwise",  # a binary tree in the format
    "blocked K=32 → fp32": "+block32",  # partial sums of 32 terms in the format, added in fp32
    "fp32 accumulator": None,  # every sum sequential in fp32, storage rounding unchanged
}
STORAGE_ACCUMULATION = "fp32 (XLA)"  # what a storage-only policy sums in
POLICIES = {"storage": "storage only", "pure": "every op rounded"}


@dataclasses.dataclass(frozen=True)
class Grid:
    formats: tuple[str, ...]
    positionals: tuple[str, ...]
    seeds: tuple[int, ...]
    max_len: int
    accumulations: tuple[str, ...] = tuple(ACCUMULATIONS)

    def __post_init__(self):
        for name in self.formats:
            floats.get(name)  # an unknown format fails here, before any work
        for name in self.accumulations:
            if name not in ACCUMULATIONS:
                raise ValueError(f"explorer: accumulation must be among {list(ACCUMULATIONS)}, "
                                 f"got {name!r}")
        if not isinstance(self.max_len, int) or self.max_len < 4:
            raise ValueError(f"explorer: max_len must be an int ≥ 4, got {self.max_len!r}")

    @property
    def lengths(self) -> tuple[int, ...]:
        """The sweep lengths N the page offers (log scale): 16, 32, … and max_len."""
        grid = [2 ** k for k in range(4, int(math.log2(self.max_len)) + 1) if 2 ** k < self.max_len]
        return tuple(grid + [self.max_len])

    def settings(self) -> list[tuple[str, str, str, str, int]]:
        """(format, policy, accumulation, positional, seed) for every run."""
        combos = [("storage", STORAGE_ACCUMULATION)] + [("pure", a) for a in self.accumulations]
        return [(f, p, a, pe, s) for f, (p, a), pe, s in
                itertools.product(self.formats, combos, self.positionals, self.seeds)]


# The default grid precomputes in a few minutes on 2 cores; --full extends it (pairwise sums,
# more formats, encodings and seeds, a sweep to 2,048).
DEFAULT = Grid(formats=("bf16", "fp16", "fp8_e4m3fn", "fp8_e5m2", "e5m3", "e8m3"),
               positionals=("none", "rope"), seeds=(0, 1), max_len=1024,
               accumulations=("sequential", "blocked K=32 → fp32", "fp32 accumulator"))
FULL = Grid(formats=("bf16", "fp16", "fp8_e4m3fn", "fp8_e5m2", "e4m2", "e4m5", "e5m5", "e8m2",
                     "e8m5", "e8m10"),
            positionals=("none", "rope", "alibi"), seeds=(0, 1, 2), max_len=2048)


def key(fmt: str, policy: str, accumulation: str, pe: str, seed: int) -> str:
    """The record's name in the data: the page builds the same string from its controls."""
    return f"{fmt}|{policy}|{accumulation}|{pe}|{seed}"


def precision_of(fmt: str, policy: str, accumulation: str) -> Precision:
    """The precision policy a setting runs."""
    if policy == "storage":
        return get_precision(fmt)
    pure = get_precision(f"{fmt}-pure")
    if ACCUMULATIONS[accumulation] is None:
        return mechanism_lib.with_fp32(pure)
    return get_precision(f"{fmt}-pure{ACCUMULATIONS[accumulation]}")


def _sig(values, digits: int = 5) -> list:
    """Floats for JSON with `digits` significant digits (None for non-finite)."""
    return [float(f"{v:.{digits}g}") if math.isfinite(v) else None for v in map(float, values)]


def _log_indices(count: int, points: int = 160, keep=()) -> np.ndarray:
    """Indices 0..count-1 on a log scale (all of them when few), plus `keep`."""
    chosen = np.unique(np.round(np.geomspace(1, count, min(points, count))).astype(int) - 1)
    return np.unique(np.concatenate([chosen, [count - 1], np.asarray(keep, int)]))


def _running_sums(trace, config, precision: Precision, query_rows) -> dict:
    """For each query row R in query_rows: the softmax terms exp(s − max) of row R and the
    weights·values products of one output coordinate, and their running sums over keys 0..R in
    the policy's accumulators (the functions and formats the forward uses) and in float64."""
    num = Numerics(precision)
    n = trace.final.shape[0]
    positions = jnp.arange(n)
    q = num.act(trace.cache["q"][0] * config.query_scale)  # (n, heads, h), as attention_branch
    q = q.reshape(1, n, config.n_kv_heads, config.group_size, config.d_head)
    k = trace.cache["k"][0][None]  # (1, n, kv, h)
    scores = attn._scores(q, k, positions, positions, positional.score_bias_slopes(config),
                          config.causal, num)[0, 0, 0]  # (n, n), head 0
    valid = attn.visible(positions, positions, config.causal, config.sliding_window[0])
    terms = np.asarray(num.softmax_terms(scores, valid))  # (n, n)
    weights = np.asarray(trace.attention[0, 0])  # (n, n) as the forward stored them
    values = np.asarray(trace.cache["v"][0][:, 0])  # (n, h) head 0's values
    last = int(query_rows[-1])
    coordinate = int(np.argmax(np.abs(weights[last] @ values)))  # the output's largest coordinate
    # One matrix for every (query, m): row (R, m) holds row R's first m terms, zeros after (exact
    # zeros leave a rounded sum unchanged in every accumulation model).
    blocks_t, blocks_w = [], []
    for row in query_rows:
        mask = np.tri(row + 1, n, dtype=bool)  # (R + 1, n): m = 1..R+1 terms
        blocks_t.append(np.where(mask, terms[row], 0.0))
        blocks_w.append(np.where(mask, weights[row], 0.0))
    t = jnp.asarray(np.concatenate(blocks_t), jnp.float32)  # (Σ(R+1), n)
    w = jnp.asarray(np.concatenate(blocks_w), jnp.float32)
    v = jnp.asarray(values[:, coordinate], jnp.float32)  # (n,)
    soft, wv, products = map(np.asarray, sums(t, w, v, precision))
    out, start = {}, 0
    for row in query_rows:
        size = row + 1
        exact_t = np.cumsum(terms[row][:size].astype(np.float64))
        exact_w = np.cumsum(products[start + size - 1][:size].astype(np.float64))
        out[int(row)] = {"softmax": (soft[start:start + size], exact_t),
                         "wv": (wv[start:start + size], exact_w),
                         "attention": weights[row][:size], "coordinate": coordinate}
        start += size
    return out


def sum_formats(precision: Precision) -> dict:
    """The accumulator format of the softmax sum and of weights·values (fp32 where the policy
    leaves the sum to XLA's float32)."""
    return {"softmax": precision.sum_format("softmax") or floats.FP32,
            "wv": precision.sum_format("matmul") or floats.FP32}


def sums(t, w, v, precision: Precision):
    """Running sums (rows of t: softmax terms; of w·v: weights·values) in the policy's
    accumulators, and the rounded products w·v. t, w: (M, n); v: (n,). → three arrays."""
    formats = sum_formats(precision)
    return _sums(t, w, v, formats["softmax"], precision.softmax_sum, formats["wv"],
                 precision.matmul_sum)


@functools.partial(jax.jit, static_argnums=(3, 4, 5, 6))
def _sums(t, w, v, soft_fmt, soft_how, wv_fmt, wv_how):
    # compiled once per accumulator, not per policy: every storage-only policy shares one
    soft = accumulated_sum(t, 1, soft_fmt, soft_how)
    wv = accumulated_einsum("mj,j->m", w, v, wv_fmt, wv_how)
    products = accumulated_einsum("mj,j->mj", w, v, wv_fmt)  # each term as it is added
    return soft, wv, products


def page_fields(found: collapse.Collapse) -> dict:
    """The page's read-out of a sweep, every number taken from the one definition (judge)."""
    status = found.status if found.status != "sound" else (
        "collapse" if found.n_star is not None else "no collapse")
    return {"status": status, "lasting": found.n_star, "first_identical": found.first_identical,
            "identical_share": found.share, "max_len": found.max_n, "reason": found.reason}


def verdict(fmt: str, policy: str, accumulation: str, found: collapse.Collapse,
            softmax_stall: int | None, wv_stall: int | None) -> str:
    """One sentence: what the sweep shows (by analysis.collapse.judge) and where each sum stopped
    growing."""
    how = POLICIES[policy] + ("" if policy == "storage" else f", {accumulation} sums")
    if found.status != "sound":
        head = f"{found.status}: the format cannot hold the model's values, so no collapse is read"
    elif found.n_star is not None:
        head = f"identical from n = {found.n_star} to the end of the sweep (n = {found.max_n})"
    elif found.first_identical is not None:
        head = (f"no lasting collapse up to n = {found.max_n} ({found.reason}), but "
                f"{100 * found.share:.2g}% of pairs identical (the first at n = "
                f"{found.first_identical})")
    else:
        head = f"every pair distinct up to n = {found.max_n}"
    stalls = []
    for name, stall in (("the softmax sum", softmax_stall), ("the weights·values sum", wv_stall)):
        stalls.append(f"{name} stopped growing at key {stall}" if stall is not None
                      else f"{name} kept growing")
    return f"{fmt}, {how}: {head}; {stalls[0]}, {stalls[1]}."


def measure(fmt: str, policy: str, accumulation: str, pe: str, seed: int, max_len: int,
            lengths) -> dict:
    """The record of one setting (module docstring)."""
    config = presets.get("paper-fig10").replace(positional=pe)
    precision = precision_of(fmt, policy, accumulation)
    sequence, rows = collapse.make_sequence(config, max_len, PROMPT_LEN, seed)
    params = init_params(config, jax.random.key(seed))
    trace = forward(params, sequence, config, precision, logits="none", numerics=True,
                    return_attention=True, cache=True)
    result = collapse.measure(np.asarray(trace.final), rows, trace.health, config, precision,
                              prompt_len=PROMPT_LEN, seed=seed)
    query_rows = [int(rows[n]) for n in lengths]  # the query of y*_{N+1}: the (N+1)-th one
    sums = _running_sums(trace, config, precision, query_rows)
    formats = sum_formats(precision)
    record = {"precision": str(precision), "spacing": floats.get(fmt).eps,
              "l1": _sig(result.l1), "status": [str(s) for s in result.status], "at": {}}
    for n_max, row in zip(lengths, query_rows, strict=True):
        found = collapse.truncate(result, n_max).collapse  # analysis.collapse.judge
        at = sums[row]
        stalls = {name: mechanism_lib.first_stall(*at[name], formats[name])
                  for name in ("softmax", "wv")}
        entry = page_fields(found)
        entry["verdict"] = verdict(fmt, policy, accumulation, found, stalls["softmax"],
                                   stalls["wv"])
        entry["attention"] = _sig(at["attention"], 4)
        entry["coordinate"] = at["coordinate"]
        for name in ("softmax", "wv"):
            running, exact = at[name]
            pick = _log_indices(len(running), keep=[] if stalls[name] is None
                                else [stalls[name] - 1])
            entry[name] = {"m": (pick + 1).tolist(), "sum": _sig(running[pick], 6),
                           "exact": _sig(exact[pick], 6), "stall": stalls[name]}
        record["at"][str(n_max)] = entry
    return record


def build(out, grid: Grid = DEFAULT, progress=None, settings=None) -> list[str]:
    """Compute every setting of `grid` and write the site to folder `out`. → the files written.
    progress: a callable(done, total, label) or None. settings: only these (format, policy,
    accumulation, positional, seed) tuples of the grid (default all: Grid.settings)."""
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    every = grid.settings()
    if settings is None:
        settings = every
    settings = [tuple(s) for s in settings]
    unknown = [s for s in settings if s not in every]
    if unknown:
        raise ValueError(f"explorer.build: settings must be among the grid's, got {unknown[0]!r}")
    lengths = grid.lengths
    runs = {}
    start = time.perf_counter()
    for index, setting in enumerate(settings):
        if progress:
            progress(index, len(settings), key(*setting))
        runs[key(*setting)] = measure(*setting, grid.max_len, lengths)
    if progress:
        progress(len(settings), len(settings), "done")
    meta = {
        "model": "paper-fig10: one untrained decoder layer, d = 64, one head, vector inputs, "
                 "no norm, no MLP; prompt of 8 random vectors, then n copies of one vector",
        "formats": list(grid.formats), "policies": POLICIES,
        "accumulations": list(grid.accumulations), "storage_accumulation": STORAGE_ACCUMULATION,
        "positionals": list(grid.positionals), "seeds": list(grid.seeds),
        "lengths": list(lengths), "max_len": grid.max_len, "prompt_len": PROMPT_LEN,
        "seconds": round(time.perf_counter() - start, 1),
        "version": _version(),
    }
    data = out / "data.js"
    data.write_text("window.EXPLORER_DATA = " + json.dumps({"meta": meta, "runs": runs},
                                                            separators=(",", ":")) + ";\n")
    written = [str(data)]
    static = importlib.resources.files("squash_sim.explorer") / "static"
    for item in static.iterdir():
        if item.is_file():
            with importlib.resources.as_file(item) as path:
                shutil.copyfile(path, out / item.name)
            written.append(str(out / item.name))
    return written


class Progress:
    """build's progress as a tqdm bar (plain lines when stderr is not a terminal), like the
    report's. interrupted: a callable that says a Ctrl-C landed where Python dropped it."""

    def __init__(self, interrupted=lambda: False):
        self.interrupted = interrupted
        self.bar = None

    def __enter__(self):
        return self

    def __call__(self, done: int, total: int, label: str) -> None:
        import sys

        from tqdm import tqdm

        if self.interrupted():
            raise KeyboardInterrupt
        if self.bar is None:
            self.bar = tqdm(total=total, file=sys.stderr, desc="explore", unit="setting",
                            mininterval=0.5)
        self.bar.set_postfix_str(label, refresh=False)
        self.bar.update(done - self.bar.n)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("squash_sim")
    except Exception:  # running from a checkout that is not installed
        return "checkout"
