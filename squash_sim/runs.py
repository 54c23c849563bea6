"""Each experiment run end to end: compute (experiments/), draw (plotting), write data and figures
(results), and return a report Section with the measured numbers. The CLI commands and
`squash-sim report` both call these, so a command alone and the report give the same files."""

from __future__ import annotations

import io
import time
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np

from squash_sim import floats, plotting, presets, results
from squash_sim.report import Section

EPS = floats.BF16.eps


def _figures(out: Path, stem: str, figure, formats) -> list[Path]:
    paths = [results.write_figure(out / f"{stem}.{suffix}", figure) for suffix in formats]
    plotting.plt.close(figure)
    return paths


def _quiet(message: str) -> None:
    return None


def collapse(out: Path, *, preset: str = "tiny", positionals=None, precision="fp32",
             max_len: int = 1024, prompt_len: int = 8, seed: int = 0, formats=("png",),
             progress=_quiet) -> Section:
    """Theorem B.3 on a model: one-pass sweep of prompt + n ones vs n + 1 ones per positional."""
    from squash_sim.experiments import collapse as experiment

    start = time.perf_counter()
    base = presets.get(preset)
    positionals = positionals or [base.positional]
    runs = {}
    for index, positional in enumerate(positionals, 1):
        config = base.replace(positional=positional,
                              max_len=max(base.max_len or 0, max_len + prompt_len + 1)
                              if positional == "learned" else base.max_len)
        progress(f"collapse [{index}/{len(positionals)}] {preset}, {positional}, {precision}: one "
                 f"forward pass over {prompt_len + max_len + 1} positions")
        runs[positional] = experiment.run(config, precision, max_len=max_len,
                                          prompt_len=prompt_len, seed=seed)
    data = [results.write_csv(out / "collapse.csv",
                              [{"positional": p, **row} for p, r in runs.items() for row in r.table()])]
    summary = {p: {"decay_exponent": r.decay_exponent(), "collapse_length": r.collapse_length,
                   "l1_at_max_len": float(r.l1[-1]), "seconds": r.seconds} for p, r in runs.items()}
    data.append(results.write_json(out / "collapse.json", {
        "experiment": "collapse (Theorem B.3)", "preset": preset, "precision": str(precision),
        "max_len": max_len, "prompt_len": prompt_len, "seed": seed, "summary": summary}))
    figures = _figures(out, "collapse", plotting.collapse_figure(
        runs, f"Representational collapse: {preset}, {precision}"), formats)
    show = [n for n in (1, 10, 100, 1000, 10_000, 100_000) if n <= max_len]
    table = [{"positional": p, **{f"n={n}": float(r.l1[n - 1]) for n in show},
              "decay exponent": r.decay_exponent(), "n* (bit-identical)": r.collapse_length}
             for p, r in runs.items()]
    return Section("collapse", f"Representational collapse on the {preset} model",
                   "theorem_b3", [
                       f"‖y_n − y*_(n+1)‖₁ for a {prompt_len}-token random prompt + n ones vs n + 1 "
                       f"ones, n = 1..{max_len}, from one forward pass per positional encoding "
                       f"(precision {precision}, seed {seed}). Decay exponents are fitted over "
                       f"n ≥ 10; bf16 spacing 2⁻⁷ = {EPS:.4g}."],
                   table, figures, data, time.perf_counter() - start)


FIGURE10_READOFFS = {5: 0.95, 100: 0.065, 1000: 0.007}  # theory.md, Figure 10 protocol


def attention_collapse(out: Path, *, figure: str = "figure10", positionals=None, seeds: int = 5,
                       max_n: int | None = None, variance: str = "1/d", precision="fp32",
                       formats=("png",), progress=_quiet) -> Section:
    """Figures 10 (four positional encodings, n ≤ 5000) and 8 (sinusoidal, n ≤ 10⁴)."""
    from squash_sim.experiments import attention_collapse as experiment

    start = time.perf_counter()
    if figure == "figure10":
        positionals = positionals or list(experiment.POSITIONALS)
        max_n = max_n or 5000
    else:
        positionals = positionals or ["sinusoidal", "none"]
        max_n = max_n or 10_000
    bad = [p for p in positionals if p not in experiment.POSITIONALS]
    if bad:
        raise ValueError(f"{figure}: positional must be among {experiment.POSITIONALS}, got {bad}")
    ns = experiment.log_grid(max_n)
    runs = []
    for index, positional in enumerate(positionals, 1):
        progress(f"{figure} [{index}/{len(positionals)}] {positional}: {seeds} seeds, "
                 f"{ns.size} lengths up to {max_n}")
        runs.append(experiment.run(positional, ns, seeds=seeds, variance=variance,
                                   precision=precision))
    data = [results.write_csv(out / f"{figure}.csv", [row for r in runs for row in r.rows()])]
    table = []
    for r in runs:
        row = {"positional": r.positional}
        row.update({f"n={n}": float(r.mean[np.flatnonzero(r.n == n)[0]])
                    for n in experiment.FIGURE10_N if n <= max_n})
        row.update({"exponent (n≥50)": r.decay_exponent(), "< 2⁻⁷ from n": r.first_below(EPS)})
        table.append(row)
    data.append(results.write_json(out / f"{figure}.json", {
        "experiment": f"{figure} protocol (theory.md, Theorem B.3)", "variance": variance,
        "seeds": seeds, "precision": str(precision), "table": table,
        "paper_readoffs": FIGURE10_READOFFS if figure == "figure10" else
        {"crosses 2^-7 near n": 500}}))
    title = {"figure10": "Figure 10: one attention layer, i.i.d. q, k, v",
             "figure8": "Figure 8: i.i.d. q, k, v ~ N(0, 1/d), sinusoidal"}[figure]
    figures = _figures(out, figure, plotting.attention_collapse_figure(
        runs, f"{title} (variance {variance})",
        FIGURE10_READOFFS if figure == "figure10" else None), formats)
    if figure == "figure10":
        none = next((r for r in runs if r.positional == "none"), runs[0])
        measured = {n: float(none.mean[np.flatnonzero(none.n == n)[0]])
                    for n in FIGURE10_READOFFS if n <= max_n}
        text = [f"Mean over {seeds} seeds of ‖y_n − y*_(n+1)‖₁ (d = 64, one head, q, k, v ~ "
                f"N(0, {variance})). Paper read-offs vs measured ({none.positional}): "
                + ", ".join(f"n={n}: {FIGURE10_READOFFS[n]} vs {v:.3g}" for n, v in measured.items())
                + ". theory.md states N(0, 1) for this figure, but its read-offs are what "
                  "N(0, 1/d) gives; N(0, 1) is ≈ 7× larger (run with --variance 1)."]
    else:
        text = ["theory.md: the sinusoidal curve crosses 2⁻⁷ near n ≈ 500. Measured (sinusoidal "
                "added to q and k at unit amplitude): "
                + ", ".join(f"{r.positional} from n = {r.first_below(EPS)}" for r in runs)
                + " (None: not within the sweep)."]
    return Section(figure, title, "theorem_b3", text, table, figures, data,
                   time.perf_counter() - start)


def softmax_tv(out: Path, *, seeds: int = 5, formats=("png",), progress=_quiet) -> Section:
    """Figure 9 (Lemma B.2)."""
    from squash_sim.experiments import softmax_tv as experiment

    start = time.perf_counter()
    progress(f"figure9: {seeds} seeds × {len(experiment.FIGURE9_N)} lengths")
    result = experiment.run(seeds=seeds)
    data = [results.write_csv(out / "figure9.csv", result.rows())]
    worst = float(np.max(np.abs(result.mean / result.expected - 1)))
    table = [{"n": int(n), "mean δ": float(m), "expected δ̄": float(e),
              "relative error": float(m / e - 1)}
             for n, m, e in zip(result.n, result.mean, result.expected, strict=True)]
    data.append(results.write_json(out / "figure9.json", {
        "experiment": "Figure 9 (Lemma B.2)", "seeds": seeds, "k": result.k, "table": table,
        "max_relative_error": worst}))
    figures = _figures(out, "figure9", plotting.softmax_tv_figure(
        result, "Figure 9: softmax of eventually-equal sequences"), formats)
    return Section("figure9", "Figure 9: softmax total variation", "lemma_b2", [
        f"x ~ U[0,1]ⁿ, x* = x + U[0, 0.1] on the first {result.k} entries; δ = ‖·‖₁. The mean over "
        f"{seeds} seeds is within {100 * worst:.1f} % of the independently derived curve "
        f"δ̄(n) = 2(n−k)c/(n(n+c)), c = k(E e^u − 1) ≈ 10.34 (experiments/softmax_tv.py), which "
        f"decays like 2c/n."], table, figures, data, time.perf_counter() - start)


def precision(out: Path, *, preset: str = "paper-fig10", max_len: int = 2048, seed: int = 0,
              mantissa_bits=None, formats=("png",), progress=_quiet) -> Section:
    """Corollary B.10: collapse lengths per format and policy."""
    from squash_sim.experiments import precision_collapse as experiment

    start = time.perf_counter()
    lengths = experiment.run(presets.get(preset), max_len=max_len, seed=seed,
                             mantissa_bits=mantissa_bits or experiment.MANTISSA_BITS,
                             progress=progress)
    data = [results.write_csv(out / "precision.csv", [x.row() for x in lengths])]
    stall = experiment.sum_of_ones(1000, "bf16")
    data.append(results.write_json(out / "precision.json", {
        "experiment": "precision collapse lengths (Corollary B.10)", "preset": preset,
        "max_len": max_len, "seed": seed, "lengths": [x.row() for x in lengths],
        "bf16_sum_of_1000_ones": stall}))
    figures = _figures(out, "precision", plotting.precision_figure(
        lengths, f"Collapse length vs mantissa bits ({preset}, n ≤ {max_len})"), formats)
    table = [{"family": x.family, "policy": x.label,
              "n*": x.n_star if x.n_star is not None else f"> {max_len}",
              "n_ε (paper's line)": x.n_eps, "n_round": x.n_round}
             for x in lengths if x.family != "mantissa"]
    return Section("precision", "Precision collapse lengths", "corollary_b10", [
        f"n* = first n from which prompt + n ones and + n + 1 ones give bit-identical outputs "
        f"(one forward pass per policy, {preset}, n ≤ {max_len}). Estimates from the float32 "
        f"curve: n_ε where ‖Δ‖₁ < ε (the paper's reading), n_round where every |Δ_i| < ½ spacing "
        f"at y_i.",
        f"- Where rounding happens matters: 1000 ones summed in order in bf16 give {stall:g} "
        f"(the sum stalls at 256), so a bf16 softmax sum stops normalising the weights beyond 256 "
        f"keys; ladder row '+ softmax': no collapse within the sweep.",
        "- Storage-only policies (float32 arithmetic, storage rounded) collapse much later than "
        "the estimates: each stored intermediate adds rounding noise of a spacing that keeps the "
        "two outputs in different rounding intervals. Measured n* against n_ε: "
        + ", ".join(f"{x.label} {x.n_star if x.n_star is not None else f'> {max_len}'} vs "
                    f"{x.n_eps}" for x in lengths if x.family == "named") + "."],
        table, figures, data, time.perf_counter() - start)


def sensitivity(out: Path, *, n: int = 32, seeds: int = 3, depths=(1, 2, 4, 8, 16),
                formats=("png",), progress=_quiet) -> Section:
    """Theorem B.5 / Prop B.8 profiles and the depth sweep."""
    from squash_sim.experiments import sensitivity as experiment

    start = time.perf_counter()
    progress(f"sensitivity: frozen and real profiles, n = {n}, {seeds} seeds")
    frozen = experiment.profile("frozen", n=n, seeds=seeds)
    real = experiment.profile("real", n=n, seeds=seeds)
    progress(f"sensitivity: depth sweep {tuple(depths)}")
    depth = experiment.depth_sweep("real", depths, n=n, seeds=seeds)
    depth_frozen = experiment.depth_sweep("frozen", depths, n=n, seeds=seeds)
    rows = frozen.rows() + real.rows() + [r for p in depth + depth_frozen for r in p.rows()]
    data = [results.write_csv(out / "sensitivity.csv", rows)]
    table = [{"setting": p.setting, "layers": p.layers, "first token share": float(p.share[0]),
              "middle share": float(p.share[n // 2]), "last token share": float(p.share[-1]),
              "bound holds": p.bound_holds} for p in depth_frozen + depth]
    tight = float(np.max(frozen.norms / frozen.bound))
    data.append(results.write_json(out / "sensitivity.json", {
        "experiment": "sensitivity (Theorem B.5, Prop B.8)", "n": n, "seeds": seeds,
        "frozen_bound_holds": frozen.bound_holds, "max_tightness": tight, "table": table}))
    figures = _figures(out, "sensitivity", plotting.sensitivity_figure(
        frozen, real, depth_frozen, "Over-squashing: sensitivity of y_n to each input"), formats)
    return Section("sensitivity", "Over-squashing: sensitivity profiles", "theorem_b5, prop_b8", [
        f"Exact ‖∂y_n/∂v_i‖₂ (float64, jax.jacrev = d vmapped VJPs) for n = {n}. Frozen attention "
        f"(theorem's model): the matrix-form bound holds at every position: {frozen.bound_holds} "
        f"(max LHS/RHS {tight:.3g}). Real softmax + RMSNorm: no bound is guaranteed; profile "
        f"reported as measured.",
        "- The profile is U-shaped — the last token through the residual path, the first through "
        "the most monotone paths — and with depth the first token takes over (Prop B.8's picture): "
        + ", ".join(f"L={p.layers}: {p.share[0]:.2f}" for p in depth_frozen)
        + " of the total on the frozen model; the middle is what gets lost."],
        table, figures, data, time.perf_counter() - start)


def counting(out: Path, *, seeds: int = 3, scales=(1, 2, 3, 4, 8), formats=("png",),
             progress=_quiet) -> Section:
    """Prop B.9: bidirectional NoPE sees only ratios."""
    from squash_sim.experiments import counting as experiment

    start = time.perf_counter()
    progress(f"counting: {len(experiment.SETTINGS)} settings × scales {tuple(scales)}")
    result = experiment.run(scales=scales, seeds=seeds)
    data = [results.write_csv(out / "counting.csv", result.rows())]
    table = [{"setting": label, "max difference over k > 1": float(d[:, 1:].max()),
              "ratios only": bool(d[:, 1:].max() < 1e-12)}
             for label, d in result.difference.items()]
    data.append(results.write_json(out / "counting.json", {
        "experiment": "counting (Prop B.9)", "n0": result.n0, "n1": result.n1,
        "scales": result.scales.tolist(), "seeds": seeds, "table": table}))
    figures = _figures(out, "counting", plotting.counting_figure(
        result, "Counting: bidirectional NoPE sees only ratios"), formats)
    return Section("counting", "Counting: only ratios are seen", "prop_b9", [
        f"States (every layer, float64) of 0^(k·{result.n0}) 1^(k·{result.n1}) against k = 1: "
        "identical to rounding for bidirectional NoPE, so such a model cannot count; a causal "
        "mask or positions break the symmetry."], table, figures, data,
        time.perf_counter() - start)


def remedies(out: Path, *, preset: str = "paper-fig10", max_len: int = 2048, seed: int = 0,
             formats=("png",), progress=_quiet) -> Section:
    """The glasses, each beside the plain curve."""
    from squash_sim.experiments import remedies as experiment

    start = time.perf_counter()
    runs = experiment.run(presets.get(preset), max_len=max_len, seed=seed, progress=progress)
    data = [results.write_csv(out / "remedies.csv",
                              [{"remedy": k, **row} for k, r in runs.items() for row in r.table()])]
    show = [n for n in (10, 100, 1000, 10_000) if n <= max_len]
    table = [{"remedy": k, **{f"n={n}": float(r.l1[n - 1]) for n in show},
              "at max n": float(r.l1[-1]), "n* (bit-identical)": r.collapse_length}
             for k, r in runs.items()]
    data.append(results.write_json(out / "remedies.json", {
        "experiment": "remedies (the glasses)", "preset": preset, "max_len": max_len,
        "seed": seed, "table": table}))
    figures = _figures(out, "remedies", plotting.collapse_figure(
        runs, f"The glasses: remedies beside the plain collapse ({preset})"), formats)
    plain, commas = runs["plain"].l1[-1], runs["commas every 3"].l1[-1]
    return Section("remedies", "The glasses: remedies", "theorem_b3, prop_b4", [
        f"Distance between the prefixes ending at the n-th and (n+1)-th '1' ({preset}, "
        f"one pass each, n ≤ {max_len}).",
        f"- Commas every 3 keep the distance {commas / plain:.0f}× larger than plain at "
        f"n = {max_len} (decay ≈ 1/n instead of ≈ 1/n²).",
        "- A sliding window makes collapse total (both prefixes see the same window of ones: "
        "distance 0 up to float32 reassociation) — a remedy for dilution, not for counting.",
        "- Absolute positions added to the input (a positional signal that does not decay, "
        "Prop B.4) prevent collapse; bf16-pure collapses bit for bit where fp32 does not."],
        table, figures, data, time.perf_counter() - start)


def claims(out: Path, *, examples: int | None = None, formats=(), progress=_quiet) -> Section:
    """The proofs_check table (every formal result over Hypothesis instances; no figure, so
    `formats` is unused)."""
    import json

    from proofs_check.runner import main as check_main

    start = time.perf_counter()
    progress("claims: proofs_check over every result (about a minute)")
    buffer = io.StringIO()
    argv = ["--json", str(out / "claims.json"), "--counterexamples", str(out / "counterexamples")]
    if examples:
        argv += ["--examples", str(examples)]
    with redirect_stdout(buffer):
        status = check_main(argv)
    rows = json.loads((out / "claims.json").read_text())
    table = [{"claim": r["claim"], "instances": r["instances"], "violations": r["violations"],
              "assumption not met": r["assumption_failures"], "max tightness": r["max_tightness"],
              "printed variant": bool(r.get("printed_variant"))} for r in rows]
    text = buffer.getvalue().strip().splitlines()
    return Section("claims", "Every formal result, checked (proofs_check)", "all of theory.md §2", [
        ("No violations of the checked statements." if status == 0 else
         "**VIOLATIONS FOUND** — see counterexamples/."),
        f"`{text[-1]}`" if text else ""], table, [], [out / "claims.json"],
        time.perf_counter() - start)


def _real_model(name, progress):
    """A loaded model (models.load: a name or a path), its label and the file-name suffix of its
    outputs ("" for Gemma 3 270M, whose file names predate the others)."""
    from squash_sim.models import load

    progress(f"loading {name} (first time: dequantizing and caching, up to ~1 min)")
    model = load(name)
    return model, model.name, "" if model.name == "gemma3-270m" else f"_{model.name}"


def capitals(out: Path, *, seeds: int = 3, window: int = 3, limit: int = 30, formats=("png",),
             model: str = "gemma3-270m", progress=_quiet) -> Section:
    """Attend first, consolidate later on a real model (a name or checkpoint path)."""
    import jax

    from squash_sim.experiments import capitals as experiment
    from squash_sim.model import init_params

    start = time.perf_counter()
    model, label, suffix = _real_model(model, progress)
    capital_set = experiment.build_set(model, limit=limit)
    seed_list = tuple(range(seeds))
    sweeps = experiment.sweeps(model.params, model.config, capital_set, seeds=seed_list,
                               progress=progress)
    windowed = experiment.sweeps(model.params, model.config, capital_set,
                                 kinds=("random", "freeze"), seeds=seed_list, window=window,
                                 progress=progress)
    switch = experiment.switch(model.params, model.config, capital_set, progress=progress)
    progress("capitals: baseline sweeps on a randomly initialised model of the same shape")
    random_params = init_params(model.config, jax.random.key(0))
    baseline = experiment.sweeps(random_params, model.config, capital_set,
                                 kinds=("random", "freeze"), seeds=(0,), with_answers=False)
    rows = ([{"model": label, "window": None, **r} for s in sweeps.values()
             for r in s.summary()]
            + [{"model": label, "window": window, **r} for s in windowed.values()
               for r in s.summary()]
            + [{"model": "random-init", "window": None, **r} for s in baseline.values()
               for r in s.summary()])
    data = [results.write_csv(out / f"capitals{suffix}.csv", rows),
            results.write_csv(out / f"capitals_switch{suffix}.csv", switch.rows())]
    L = model.config.n_layers
    # Each metric beside the paper's number for that metric; windowed controls after.
    table = experiment.comparison_rows(label, L, sweeps, switch)
    table += [{"model": label, "L": L, "metric": f"{kind}, window {window}: accuracy ≥ 50 % from k",
               "k": k, "k/L": None if k is None else round(k / L, 3), "paper k/L": "— (control)"}
              for kind, k in experiment.transitions(windowed, L).items()]
    crossover = switch.crossover
    data.append(results.write_json(out / f"capitals{suffix}.json", {
        "experiment": f"attend first, consolidate later: capitals on {label}", "model": label,
        "countries": capital_set.countries, "rejected": capital_set.rejected,
        "prompt": experiment.template("<country>"), "seeds": seeds, "window": window,
        "n_layers": L, "table": table, "switch_crossover": crossover,
        "switch_crossover_probability": switch.crossover_probability,
        "paper_crossover_depth": experiment.PAPER_CROSSOVER,
        "paper_costs_little_from_depth": experiment.PAPER_COSTS_LITTLE_FROM}))
    changes = {f"{label}: {k}": sweeps[k] for k in ("random", "freeze")}
    changes.update({f"random init: {k}": r for k, r in baseline.items()})
    figures = _figures(out, f"capitals{suffix}", plotting.capitals_figure(
        sweeps, windowed, switch, changes,
        f"{label}, {len(capital_set.countries)} one-shot capital questions"), formats)
    return Section(f"capitals{suffix}", f"Attend first, consolidate later: {label}",
                   "interventions.md", [
        f"{len(capital_set.countries)} one-shot capital questions the clean model answers "
        f"(squash_sim/data/capitals.csv; {len(capital_set.rejected)} rejected, reasons in the "
        f"JSON). Interventions on every position but the last, at the input of block k "
        f"(k = 0..{L}); mean over {seeds} seeds for random.",
        f"- Switch crossover (greedy answers, as the paper's figure counts them: first k from "
        f"which more prompts answer the original capital than the injected one): k = {crossover} "
        f"of {L} (k/L = {'—' if crossover is None else f'{crossover / L:.2f}'}); the paper's 7B "
        f"models: {PAPER_BAND_TEXT}. Probability form: k = {switch.crossover_probability}.",
        "- Random/freeze/skip are compared with the paper's own claim for them: manipulating "
        "the final 30–50 % of layers costs little (accuracy holds from k/L ≈ 0.5–0.7).",
        "- Windowed controls corrupt/freeze only blocks [k, k+w) and then restore clean states: "
        "where they recover, the drop is about fewer clean layers above k, not a phase change."],
        table, figures, data, time.perf_counter() - start)


PAPER_BAND_TEXT = "block ≈ 17–22 of 32 (k/L ≈ 0.53–0.69)"


def real_collapse(out: Path, *, prompt: str = "count-ones", precisions=("fp32",),
                  max_len: int = 2048, seed: int = 0, compare_global: bool = False,
                  formats=("png",), model: str = "gemma3-270m", progress=_quiet) -> Section:
    """The Figure 5 analogue on a real model: ‖y_n − y*_(n+1)‖₁ of the final-layer last token per
    precision policy; with compare_global (Gemma 3 270M, the one model with sliding windows), the
    same fp32 sweep with the local layers made global."""
    import dataclasses

    from squash_sim.experiments import real_collapse as experiment
    from squash_sim.models import gemma3_270m

    start = time.perf_counter()
    model, label, suffix = _real_model(model, progress)
    compare_global = compare_global and label == "gemma3-270m"
    runs = []
    for precision in precisions:
        runs.append(experiment.run(model, prompt, precision, max_len=max_len, seed=seed,
                                   progress=progress))
        progress(f"      done in {runs[-1].seconds:.1f} s")
    if compare_global:  # the sliding window's effect: the same sweep, local layers global
        progress("the same sweep with the local layers made global (fp32)")
        result = experiment.run(gemma3_270m(local_layers_global=True), prompt, "fp32",
                                max_len=max_len, seed=seed, progress=progress)
        runs.append(dataclasses.replace(result, precision="fp32, no sliding window"))
    stem = f"real_collapse_{prompt}{suffix}"
    summary = {r.precision: {"bit_identical_lengths": int(r.bit_identical.sum()),
                             "first_bit_identical_n": (int(r.n[r.bit_identical][0])
                                                       if r.bit_identical.any() else None),
                             "l1_at_max_len": float(r.l1[-1]), "tokens": r.tokens,
                             "seconds": r.seconds} for r in runs}
    data = [results.write_csv(out / f"{stem}.csv", [row for r in runs for row in r.rows()]),
            results.write_json(out / f"{stem}.json", {
                "experiment": "real-model collapse (Figure 5 analogue)",
                "model": label, "prompt": prompt, "max_len": max_len,
                "seed": seed, "summary": summary})]
    figures = _figures(out, stem, plotting.real_collapse_figure(
        runs, f"{label}: {prompt}",
        max((w for w in model.config.sliding_window if w), default=None)), formats)
    shown = sorted({int(n) for n in runs[0].n if n in experiment.PAPER_N or n == max_len})
    table = []
    for n in shown:
        row: dict = {"n": n}
        for r in runs:
            i = int(np.flatnonzero(r.n == n)[0])
            row[r.precision] = float(r.l1[i])
            row[f"{r.precision} =="] = bool(r.bit_identical[i])
        table.append(row)
    lines = [f"Prompt {experiment.PROMPTS[prompt]!r} + n {'digits' if prompt == 'digits' else 'ones'}"
             f" against n + 1, n = 1..{max_len} ({runs[0].tokens} tokens at most); ‖·‖₁ of the "
             "final-layer last-token outputs after the final norm; '==' marks bit-identical "
             "outputs."
             + (" The local layers' window (512 tokens) drops BOS once the prompt is longer."
                if any(model.config.sliding_window) else
                " Every layer attends globally (no sliding window).")]
    for r in runs:
        first = summary[r.precision]["first_bit_identical_n"]
        lines.append(f"- {r.precision}: {int(r.bit_identical.sum())} of {len(r.n)} lengths "
                     f"bit-identical{f' (first at n = {first})' if first else ''}; ‖Δ‖₁ "
                     f"{r.l1[0]:.4g} at n = "
                     f"{int(r.n[0])}, {r.l1[-1]:.4g} at n = {int(r.n[-1])}.")
    late = runs[0].n >= 600
    if compare_global and late.any() and prompt != "digits":
        lines.append(f"- Window effect: median ‖Δ‖₁ over n ≥ 600 is {np.median(runs[0].l1[late]):.3g}"
                     f" with the window and {np.median(runs[-1].l1[late]):.3g} with the local "
                     "layers global.")
    return Section(stem, f"{label}: representational collapse ({prompt})", "theorem_b3",
                   lines, table, figures, data, time.perf_counter() - start)


def real_tasks(out: Path, *, copy_n=None, count_n=None, seeds: int = 6, formats=("png",),
               model: str = "gemma3-270m", progress=_quiet) -> Section:
    """Copy first/last digit, few-shot counting and the sensitivity profile on a real model."""
    from squash_sim.experiments import real_tasks as experiment

    start = time.perf_counter()
    model, label, suffix = _real_model(model, progress)
    copy_rows = experiment.copy_task(model, copy_n or experiment.COPY_N, progress=progress)
    count_rows = experiment.count_task(model, count_n or experiment.COUNT_N, seeds=seeds,
                                       progress=progress)
    text = "How many ones are in the following sequence? " + "1" * 100
    progress("tasks: sensitivity profile (16 random VJPs)")
    profile = experiment.sensitivity_profile(model, text)
    share = profile / profile.sum()
    data = [results.write_csv(out / f"real_tasks{suffix}.csv", copy_rows.rows + count_rows.rows),
            results.write_csv(out / f"real_sensitivity{suffix}.csv",
                              [{"position": i, "sensitivity": float(p), "share": float(s)}
                               for i, (p, s) in enumerate(zip(profile, share, strict=True))])]
    counted = [r for r in count_rows.rows if r["answer"] is not None]
    round_answers = float(np.mean([r["answer"] % 10 == 0 for r in counted])) if counted else None
    table = ([{"task": f"copy {w} digit", **{f"n={n}": a for n, a in
                                              copy_rows.accuracy(which=w).items()}}
              for w in ("first", "last")]
             + [{"task": f"count ({k})", **{f"n={n}": a for n, a in
                                            count_rows.accuracy(kind=k).items()}}
                for k in ("ones", "bernoulli 0.7")])
    data.append(results.write_json(out / f"real_tasks{suffix}.json", {
        "experiment": f"copy / count / sensitivity on {label} (theory.md §4)", "model": label,
        "copy_prompt": experiment.copy_prompt("first", "<digits>"),
        "count_prompt": experiment.count_prompt("<digits>"), "table": table,
        "answers_multiple_of_10": round_answers,
        "sensitivity_share": {"bos": float(share[0]), "middle": float(share[share.size // 2]),
                              "last": float(share[-1])}}))
    figures = _figures(out, f"real_tasks{suffix}", plotting.real_tasks_figure(
        copy_rows, count_rows, profile, f"profile prompt: {text[:46]}… ({profile.size} tokens)",
        f"{label}: copying, counting, sensitivity"), formats)
    return Section(f"real_tasks{suffix}", f"{label}: copying, counting, sensitivity",
                   "theory.md §4", [
        "Few-shot prompts (three worked examples: the model is a base model), greedy answers. "
        "Copy: the odd digit at the asked end of n digits, both digit assignments (chance 50 %).",
        f"- Counting answers that are multiples of 10: {round_answers:.0%} of parsed answers."
        if round_answers is not None else "- No counting answer parsed.",
        f"- Sensitivity of the last output to each input (Frobenius norm, Hutchinson estimate): "
        f"the first position takes {share[0]:.1%}, the middle position "
        f"{share[share.size // 2]:.2%}, the last "
        f"{share[-1]:.1%}: the U-shape of the theory on a trained model."],
        table, figures, data, time.perf_counter() - start)


REAL_MODELS = ("gemma3-270m", "smollm2-135m")


def real_side_by_side(out: Path, *, models=REAL_MODELS, prompt: str = "count-ones",
                      formats=("png",), progress=_quiet) -> Section:
    """The real models' findings side by side, one row per metric, read back from the JSON the
    real_collapse / real_tasks / capitals sections wrote into `out` (run those first, per model;
    a missing file leaves its cells empty)."""
    import json

    start = time.perf_counter()

    def read(stem, name):
        path = out / f"{stem}{'' if name == 'gemma3-270m' else f'_{name}'}.json"
        return (json.loads(path.read_text()), path) if path.is_file() else ({}, None)

    rows: dict = {}
    data = []

    def put(metric, name, value):
        rows.setdefault(metric, {"metric": metric})[name] = value

    for name in models:
        collapse, p1 = read(f"real_collapse_{prompt}", name)
        tasks, p2 = read("real_tasks", name)
        caps, p3 = read("capitals", name)
        data += [p for p in (p1, p2, p3) if p is not None]
        for precision, s in collapse.get("summary", {}).items():
            put(f"{prompt}: ‖Δ‖₁ at n = {collapse['max_len']}, {precision}", name,
                s["l1_at_max_len"])
            put(f"{prompt}: bit-identical lengths (first n), {precision}", name,
                f"{s['bit_identical_lengths']} ({s['first_bit_identical_n'] or '—'})")
        for row in tasks.get("table", []):
            cells = {k: v for k, v in row.items() if k.startswith("n=")}
            put(f"{row['task']}: accuracy", name,
                ", ".join(f"{k} {v:.0%}" for k, v in cells.items()))
        if tasks.get("sensitivity_share"):
            share = tasks["sensitivity_share"]
            put("sensitivity share: first / middle / last position", name,
                f"{share['bos']:.1%} / {share['middle']:.2%} / {share['last']:.1%}")
        for row in caps.get("table", []):
            k, depth = row["k"], row["k/L"]
            put(f"{row['metric']} (k/L; paper: {row['paper k/L']})", name,
                "never" if k is None else f"{k}/{row['L']} = {depth:.2f}")
    return Section("real_side_by_side", "Real models side by side", "interventions.md, theorem_b3",
                   [f"Each row one metric, each column one model ({', '.join(models)}); the "
                    "paper's number for that same metric in the row's name. Sources: the JSON "
                    "files listed below."], list(rows.values()), [], data,
                   time.perf_counter() - start)
