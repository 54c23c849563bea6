"""Collapse length n* per float format × accumulation model, with the mechanism of each collapse.

The question: does precision-induced collapse (theory.md, Corollary B.10) happen on the
hardware I run, and at what n? Real kernels rarely add sequentially in bf16: they add in trees, in
narrow blocks promoted to fp32, or with compensation (docs/precision_hardware.md). So for every
format F in FORMATS and accumulation model in MODELS, the policy "F-pure+<model>" (every rounding
point in F; every reduction's accumulator in F, added by the model — blocks promoted to fp32) runs
the one-pass sweep of experiments.collapse on the Figure 10 model ("paper-fig10", NoPE, one layer)
and n* is analysis.collapse.judge's (the one definition, docs/theory.md; None: not within the
sweep), with the first identical pair and the share of identical pairs beside it.

Hardware columns (HARDWARE, the Figure 10 model's default): what a GPU or TPU computes. "F" alone
stores params, activations and logits in F and sums in XLA's fp32 (the reference for the row);
"F+tc:<gpu>[/fp16]" is the same storage with every contraction (projections, q·k,
weights·values) that GPU's tensor-core MMA chain, bit for bit (squash_sim.hardware, validated on
measured outputs; fp16 output: d carried in fp16), the softmax sum in fp32 as attention kernels
keep it; "tpu-default" (fp32 row) rounds every contraction's operands to bf16 and sums in fp32.
A GPU × format cell exists where the GPU has that MMA (hardware.PRESETS: v100 fp16 only, a100
fp16/bf16, h100 fp16/bf16/fp8); the others read "—".

Mechanism of a collapse — a counterfactual, not a guess. Two causes can make y_n and y*_{n+1} the
same bits:
  * spacing      the two representations differ by less than F's rounding interval, so the rounding
                 points that STORE values (activations, logits, softmax weights) map them together;
  * accumulator  a running sum stalls (e.g. ones summed sequentially in bf16 stop at 256: every
                 further term is below half the accumulator's spacing), so sums over n and n + 1
                 keys come out the same before any storage rounding sees them.
The counterfactual runs (squash_sim.analysis.mechanism, shared with proofs_check's corollary_b10
and the report's precision section) keep every storage rounding point in F and give sums an fp32
sequential accumulator: all of them at once (a collapse that then disappears or comes later is a
stall; one that stays is the spacing), then each accumulation site alone — the softmax
denominator, weights·values, the scores q·k, projections & MLP, norm sums where the model has
them — and each site as the only sum left in F. Each row names the *necessary* stalls (restoring
that sum alone removes the collapse), the sums that only move it later, and the *sufficient* ones
(that sum alone in F still collapses by n*), and every site's outcome ("removed", "moved",
"kept"). `sum_of_ones` beside it
is Σ 1 over 4·max_len ones in the softmax's accumulator.

A run whose outputs are not finite reports status "non-finite" and no n* (never a collapse).

On a real LLM (`llm=`, a squash_sim.models.LoadedModel such as Gemma 3 270M) the sweep is
experiments.real_collapse's count-ones prompt ("How many ones are in the following sequence? "
followed by n ones against n + 1), one forward pass per policy; n*, the quarter rule and the
counterfactual are the same.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from squash_sim import floats, hardware, presets
from squash_sim.accumulate import TooLarge, accumulated_sum
from squash_sim.analysis import collapse
from squash_sim.analysis import mechanism as mechanism_lib
from squash_sim.config import ModelConfig
from squash_sim.precision import Precision
from squash_sim.precision import get as get_precision

FORMATS = ("fp32", "bf16", "fp16", "fp8_e4m3fn", "fp8_e5m2")
MODELS = {"sequential": "sequential", "pairwise": "pairwise", "blocked K=32 → fp32": "block32",
          "blocked K=128 → fp32": "block128", "kahan": "kahan"}
STORAGE = "storage, fp32 sums"  # "F": the hardware columns' reference
TENSOR_CORES = ("tc:h100", "tc:a100", "tc:v100", "tc:v100/fp16")  # "F+tc:<gpu>[/fp16]"
TPU = "tpu-default"
HARDWARE = (STORAGE, *TENSOR_CORES, TPU)
COLUMNS = (*MODELS, *HARDWARE)  # the Figure 10 table's columns, in order
# The figure's panels: the accumulation models (every sum in F) apart from the hardware columns.
PANELS = {"every sum in the format: F-pure + accumulation model": tuple(MODELS),
          "F stored, hardware matmuls (softmax sum fp32)": HARDWARE}


@dataclasses.dataclass
class AccumulationCollapse:
    fmt: str
    model: str  # a key of MODELS
    policy: str  # the precision string that was run
    status: str  # "ok" | "non-finite" | "overflow" (saturated, real models) | "too large"
    #              (accumulate.TooLarge: not run) — every status but "ok" carries no n*
    n_star: int | None  # collapse length (None: none within the sweep, or not finite)
    mechanism: str | None  # mechanism.STALLED | mechanism.REPRESENTATION | None (no collapse)
    n_star_fp32_sums: int | None  # the counterfactual's n* (every sum in fp32, storage in fmt)
    ones: int  # how many ones `sum_of_ones` adds (4·max_len)
    sum_of_ones: float  # their sum in the softmax's accumulator: far below `ones` = a stall
    max_len: int
    first_identical: int | None = None  # the first bit-identical pair (judge)
    identical_share: float = 0.0  # the share of swept n whose pair is bit-identical
    necessary: str = ""  # the stalls the collapse needs ("; "-joined sites): restoring one removes it
    moved_by: str = ""  # sums whose restoring alone only moves the collapse later
    sufficient: str = ""  # the stalls that alone (every other sum fp32) still collapse by n*
    sites: dict = dataclasses.field(default_factory=dict)  # site → "alone: …; only: …"
    mechanism_text: str = ""  # the per-sum finding in words (mechanism.Mechanism.sentence)

    def row(self) -> dict:
        row = dataclasses.asdict(self)
        sites = row.pop("sites")
        return row | {f"restore {site}": text for site, text in sites.items()}


def policy(fmt: str, model: str) -> str | None:
    """The precision string of a format × column (COLUMNS), None where that hardware has no such
    MMA (e.g. v100 bf16) or the column is another row's (tpu-default: fp32 only)."""
    if model in MODELS:
        return f"{fmt}-pure+{MODELS[model]}"
    if model == STORAGE:
        return fmt
    if model == TPU:
        return TPU if fmt == "fp32" else None
    if model not in TENSOR_CORES:
        raise ValueError(f"accumulation_collapse: unknown column {model!r}; use one of "
                         f"{', '.join(COLUMNS)}")
    gpu = model.removeprefix("tc:").split("/")[0]
    return f"{fmt}+{model}" if (gpu, floats.get(fmt).name) in hardware.PRESETS else None


def sum_of_ones(precision: Precision, count: int) -> float:
    """Σ 1 over `count` ones in the softmax's accumulator, by its model (sequential bf16: 256, the
    stall; pairwise bf16 rounds the count to bf16 but does not stall)."""
    ones = jnp.ones(count, jnp.float32)
    fmt = precision.sum_format("softmax")
    if fmt is None:  # XLA's float32 sum (storage policies)
        return float(jnp.sum(ones))
    return float(accumulated_sum(ones, 0, fmt, precision.softmax_sum))


def judged(config, precision, max_len, seed, llm=None) -> tuple[str, collapse.Collapse | None]:
    """(status, analysis.collapse.judge's verdict) of one sweep: the Figure 10 model's
    (experiments.collapse) or, on a loaded LLM, the count-ones prompt's (experiments.real_collapse).
    status: "ok", "non-finite" / "overflow" (never a collapse) or "too large" (not run; None)."""
    try:
        found = _sweep(config, precision, max_len, seed, llm).collapse
    except FloatingPointError:
        return "non-finite", None
    except TooLarge:
        return "too large", None  # pairwise on a model this size (accumulate.TooLarge)
    return ("ok" if found.status == "sound" else found.status), found


def run(config: ModelConfig | None = None, *, llm=None, max_len: int = 2048, seed: int = 0,
        formats=FORMATS, models=None, sites=None, progress=None) -> list[AccumulationCollapse]:
    """n*, its mechanism and the counterfactual for every format × column (COLUMNS: accumulation
    models and hardware), on `config` (default: the Figure 10 model) or on a loaded LLM `llm`
    (module docstring). models: the columns (default: COLUMNS; on an LLM, whose tensor-core
    forwards compile for minutes, MODELS); cells without a policy (`policy`) are skipped. sites:
    the accumulation sites whose per-sum counterfactuals run for each stall (default: every site
    the model has, mechanism.sites_of; on an LLM the two sums over keys, mechanism.KEY_SUMS; 2 runs
    each)."""
    if llm is not None and config is not None:
        raise ValueError("accumulation_collapse.run: pass config or llm, not both")
    config = None if llm is not None else (config or presets.get("paper-fig10"))
    if models is None:
        models = tuple(MODELS) if llm is not None else COLUMNS
    rows = []
    jobs = [(f, m) for f in formats for m in models if policy(f, m) is not None]
    if sites is None:  # an LLM's runs take minutes each: the sums over keys only
        sites = mechanism_lib.KEY_SUMS if llm is not None else mechanism_lib.sites_of(config)
    for index, (fmt, model) in enumerate(jobs, 1):
        if progress:
            progress(f"accumulation [{index}/{len(jobs)}] {policy(fmt, model)}")
        precision = get_precision(policy(fmt, model))
        status, found = judged(config, precision, max_len, seed, llm)
        n_star = None if found is None else found.n_star
        why = None
        if n_star is not None:
            why = mechanism_lib.explain(lambda p: _sweep(config, p, max_len, seed, llm),
                                        precision, collapse_length=n_star, sites=tuple(sites))
        rows.append(AccumulationCollapse(
            fmt, model, str(precision), status, n_star, why and why.mechanism,
            why and why.counterfactual_collapse_length, 4 * max_len,
            sum_of_ones(precision, 4 * max_len), max_len,
            found.first_identical if found else None, round(found.share, 6) if found else 0.0,
            "; ".join(why.stalled) if why else "", "; ".join(why.moved) if why else "",
            "; ".join(why.sufficient) if why else "",
            {e.site: f"alone: {_said(e.alone, e.alone_n_star, e.alone_run_from)}; only: "
                     f"{_said(e.only, e.only_n_star, e.only_run_from)}"
             for e in (why.sites if why else ())},
            why.sentence() if why else ""))
        if progress:
            progress(f"  {policy(fmt, model)}: {status}, n* {n_star}, "
                     f"{why.label() if why else 'no collapse'}")
    return rows


def _sweep(config, precision, max_len, seed, llm=None):
    """One sweep's result (with .collapse): the Figure 10 model's or the LLM's count-ones."""
    if llm is not None:
        from squash_sim.experiments import real_collapse

        return real_collapse.run(llm, "count-ones", precision, max_len=max_len)
    return collapse.run(config, precision, max_len=max_len, seed=seed)


def _said(outcome: str, n_star: int | None, run_from: int | None = None) -> str:
    """"removed", "removed (identical again from 2033 to the end, …)", "moved to 400",
    "kept (n* 398)"."""
    if outcome == "moved":
        return f"moved to {n_star}"
    if outcome == "removed" and run_from is not None:
        return f"removed (identical again from {run_from} to the end, too late to call)"
    if outcome == "kept" and n_star is not None:
        return f"kept (n* {n_star})"
    return outcome


def write(rows: list[AccumulationCollapse], stem) -> list[str]:
    """rows as <stem>.json and <stem>.csv; → the paths."""
    import csv
    import json
    import pathlib

    stem = pathlib.Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    data = [r.row() for r in rows]
    stem.with_suffix(".json").write_text(json.dumps(data, indent=1) + "\n")
    with open(stem.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for row in data for k in row)))
        writer.writeheader()
        writer.writerows(data)
    return [str(stem.with_suffix(".json")), str(stem.with_suffix(".csv"))]


def cell_mechanism(r: AccumulationCollapse) -> str:
    """"stall: weights·values" (the necessary stalls), "spacing", or the mechanism's word."""
    if r.mechanism == mechanism_lib.STALLED:
        return f"stall: {r.necessary or 'no single sum'}"
    return "spacing" if r.mechanism == mechanism_lib.REPRESENTATION else str(r.mechanism)


def cell(r: AccumulationCollapse | None, fmt: str = "", model: str = "") -> str:
    """A table cell: "398 (stall: softmax sum; weights·values)", "> 1024" (no collapse within
    reach), a failure status, "—" (no such policy: `policy`) or "not run"."""
    if r is None:
        return "—" if model and policy(fmt, model) is None else "not run"
    if r.status != "ok":
        return r.status
    if r.n_star is None:
        return f"> {r.max_len // collapse.REACH}"
    return f"{r.n_star} ({cell_mechanism(r)})"


def table(rows: list[AccumulationCollapse], models=None) -> str:
    """A markdown table: formats down, columns (default: those in rows) across, 'n* (mechanism)'
    per cell."""
    models = list(models or dict.fromkeys(r.model for r in rows))
    lines = ["| format | " + " | ".join(models) + " |", "|---" * (len(models) + 1) + "|"]
    for fmt in dict.fromkeys(r.fmt for r in rows):
        found = {r.model: r for r in rows if r.fmt == fmt}
        lines.append(f"| {fmt} | " + " | ".join(cell(found.get(m), fmt, m) for m in models)
                     + " |")
    return "\n".join(lines)


def tables(rows: list[AccumulationCollapse]) -> list[str]:
    """`table` per panel (PANELS: the accumulation models, then the hardware columns), each with
    the columns that were run: what the command prints and docs/precision_hardware.md shows."""
    run_models = {r.model for r in rows}
    chosen = [[m for m in models if m in run_models] for models in PANELS.values()]
    return [table(rows, models) for models in chosen if models]


if __name__ == "__main__":
    # python -m squash_sim.experiments.accumulation_collapse [stem] [max_len] [model] [formats]
    # [models]  (comma lists; the CLI's `squash-sim accumulation` is the documented way)
    import sys
    import time

    from squash_sim import plotting

    stem = sys.argv[1] if len(sys.argv) > 1 else "accumulation_collapse"
    sweep = int(sys.argv[2]) if len(sys.argv) > 2 else 2048
    real = sys.argv[3] if len(sys.argv) > 3 else None
    chosen = tuple(sys.argv[4].split(",")) if len(sys.argv) > 4 else FORMATS
    chosen_models = tuple(sys.argv[5].split(",")) if len(sys.argv) > 5 else None
    start = time.perf_counter()
    loaded = None
    if real:
        from squash_sim.models import load

        loaded = load(real)
    found = run(llm=loaded, max_len=sweep, formats=chosen, models=chosen_models,
                progress=lambda m: print(f"{m} ({time.perf_counter() - start:.0f} s)", flush=True))
    print(*write(found, stem), sep="\n")
    plotting.accumulation_figure(found, f"Collapse length by accumulation model and hardware "
                                        f"({real or 'Figure 10 model'}, sweep to {sweep})",
                                 PANELS).savefig(f"{stem}.png", dpi=150)
    print(*tables(found), sep="\n\n")
