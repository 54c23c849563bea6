"""Matplotlib figures drawn from experiment data (experiments never draw)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only; no display is assumed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from squash_sim import floats  # noqa: E402


def collapse_figure(results: dict, title: str):
    """‖y_n − y*_{n+1}‖₁ against n (log-log), one curve per label, with the bf16 spacing line and
    bit-identical points marked. results: {label: CollapseResult}"""
    figure, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, result in results.items():
        positive = result.l1 > 0
        line, = ax.loglog(result.n[positive], result.l1[positive], label=label, lw=1.4)
        same = result.bit_identical
        if same.any():
            floor = result.l1[positive].min() if positive.any() else 1e-12
            ax.scatter(result.n[same], np.full(same.sum(), floor / 2), s=4, color=line.get_color(),
                       marker="|")
    _finish(ax, title, "n (number of ones)", "‖y_n − y*_{n+1}‖₁")
    return figure


def real_collapse_figure(results: list, title: str, window: int | None = 512):
    """Real-model collapse: ‖y_n − y*_{n+1}‖₁ against n, one curve per precision, bit-identical
    lengths marked below the curve. results: [RealCollapseResult]; window: the model's sliding
    window, marked (None: the model has none)."""
    figure, ax = plt.subplots(figsize=(6.4, 4.2))
    for result in results:
        positive = result.l1 > 0
        line, = ax.loglog(result.n[positive], result.l1[positive], lw=1.2,
                          marker="o" if len(result.n) < 20 else None, label=result.precision)
        same = result.bit_identical
        if same.any():
            floor = result.l1[positive].min() if positive.any() else 1e-6
            ax.scatter(result.n[same], np.full(same.sum(), floor / 2), s=6, marker="|",
                       color=line.get_color(), label=f"{result.precision}: bit-identical")
    if window:
        ax.axvline(window, color="grey", ls=":", lw=1, label=f"sliding window {window}")
    _finish(ax, title, "n", "‖y_n − y*_{n+1}‖₁ (final layer, last token)", spacing_line=False)
    return figure


def _finish(ax, title: str, xlabel: str, ylabel: str, spacing_line: bool = True):
    """The shared tail of every figure: bf16 spacing line, labels, legend, grid."""
    if spacing_line:
        ax.axhline(floats.BF16.eps, color="grey", ls="--", lw=1, label="bf16 spacing 2⁻⁷")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.25)


def attention_collapse_figure(results: list, title: str, readoffs: dict | None = None):
    """Figure 10 / Figure 8: mean ‖y_n − y*_{n+1}‖₁ over seeds with min/max band, one curve per
    positional encoding; the paper's read-off values as crosses. results: [AttentionCollapseResult]"""
    figure, ax = plt.subplots(figsize=(6.4, 4.2))
    for result in results:
        line, = ax.loglog(result.n, result.mean, lw=1.4, label=result.positional)
        ax.fill_between(result.n, result.l1.min(axis=0), result.l1.max(axis=0), alpha=0.15,
                        color=line.get_color())
    if readoffs:
        ax.scatter(list(readoffs), list(readoffs.values()), marker="x", color="black", zorder=5,
                   label="paper's read-offs")
    _finish(ax, title, "n", "‖y_n − y*_{n+1}‖₁")
    return figure


def softmax_tv_figure(result, title: str):
    """Figure 9: δ(softmax x, softmax x*) against n, mean over seeds with min/max bars, beside the
    expected curve δ̄(n) derived in experiments/softmax_tv.py. result: SoftmaxTVResult"""
    figure, ax = plt.subplots(figsize=(6.4, 4.2))
    mean = result.mean
    ax.errorbar(result.n, mean, yerr=[mean - result.tv.min(axis=0), result.tv.max(axis=0) - mean],
                fmt="o-", ms=3, capsize=3, label=f"mean of {result.tv.shape[0]} seeds (min/max)")
    ax.plot(result.n, result.expected, "k:", label="expected δ̄(n) = 2(n−k)c/(n(n+c))")
    _finish(ax, title, "n", "δ(softmax x, softmax x*)")
    return figure


def precision_figure(lengths: list, title: str):
    """Collapse length n* against mantissa bits (8 exponent bits) for storage-only and pure
    policies, with the two estimates from the float32 curve. lengths: [CollapseLength]"""
    figure, ax = plt.subplots(figsize=(6.4, 4.2))
    sweep = [x for x in lengths if x.family == "mantissa"]
    if not sweep:
        return figure
    max_len = sweep[0].max_len
    for suffix, marker in (("storage", "o"), ("-pure", "s")):
        rows = [x for x in sweep if x.label.endswith(suffix)]
        bits = [int(x.fmt.split("m")[1]) for x in rows]
        found = [(b, x.n_star) for b, x in zip(bits, rows, strict=True) if x.n_star is not None]
        beyond = [b for b, x in zip(bits, rows, strict=True) if x.n_star is None]
        label = "storage (bf16-style)" if suffix == "storage" else "everything rounded (-pure)"
        line, = ax.semilogy([b for b, _ in found], [n for _, n in found], marker=marker, ls="-",
                            label=f"n*: {label}")
        if beyond:
            ax.scatter(beyond, [max_len * 1.3] * len(beyond), marker="^", color=line.get_color(),
                       label=f"{label}: n* > {max_len}")
    estimates = {int(x.fmt.split("m")[1]): (x.n_eps, x.n_round) for x in sweep}
    bits = sorted(estimates)
    for index, (label, style) in enumerate((("n_ε: fp32 ‖Δ‖₁ < ε", "k--"),
                                            ("n_round: |Δ_i| < ½ spacing(y_i)", "k:"))):
        points = [(b, estimates[b][index]) for b in bits if estimates[b][index] is not None]
        ax.semilogy([b for b, _ in points], [n for _, n in points], style, label=label)
    ax.axhline(max_len, color="grey", lw=0.8)
    _finish(ax, title, "mantissa bits (8 exponent bits)", "collapse length n*",
            spacing_line=False)
    return figure


def sensitivity_figure(frozen, real, depth: list, title: str):
    """Left: ‖∂y_n/∂v_i‖₂ against i (frozen model with its bound, real model). Right: each
    position's share of the total sensitivity at increasing depth. frozen, real: Profile"""
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    i = np.arange(1, frozen.n + 1)
    left.semilogy(i, frozen.norms.mean(axis=0), "o-", ms=3, label="frozen attention (Thm B.5)")
    left.semilogy(i, frozen.bound.mean(axis=0), "k:", label="matrix-form bound")
    left.semilogy(np.arange(1, real.n + 1), real.norms.mean(axis=0), "s-", ms=3,
                  label="real softmax + RMSNorm")
    left.set_xlabel("input position i")
    left.set_ylabel("‖∂y_n/∂v_i‖₂ (mean over seeds)")
    left.legend(fontsize=8)
    left.grid(True, which="both", alpha=0.25)
    for profile in depth:
        right.plot(np.arange(1, profile.n + 1), profile.share, lw=1.2, label=f"L = {profile.layers}")
    _finish(right, f"share of sensitivity by depth ({depth[0].setting})", "input position i",
            "share of Σ_i ‖∂y_n/∂v_i‖₂", spacing_line=False)
    right.set_yscale("log")
    figure.suptitle(title)
    return figure


def counting_figure(result, title: str):
    """Prop B.9: max state difference between (k·n₀, k·n₁) and (n₀, n₁) against k, per setting."""
    figure, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, difference in result.difference.items():
        keep = result.scales > 1
        ax.semilogy(result.scales[keep], np.maximum(difference.max(axis=0)[keep], 1e-18), "o-",
                    ms=3, label=label)
    _finish(ax, title, "scale k", f"max |state(k·{result.n0}, k·{result.n1}) − state"
            f"({result.n0}, {result.n1})|", spacing_line=False)
    return figure


def capitals_figure(sweeps: dict, windowed: dict, switch, baseline: dict, title: str,
                    paper_band=(0.53, 0.69)):
    """Left: accuracy vs k/L per intervention (windowed controls dashed). Middle: the switch,
    P(original) and P(injected) vs k/L with the paper's crossover band. Right: the random-init
    relative change of the last output vs k/L, Gemma beside the random-init baseline.
    baseline: label → SweepResult"""
    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 4.2))
    for kind, result in sweeps.items():
        accuracy = result.top1_agrees.mean(axis=(1, 2))
        line, = left.plot(result.depth, accuracy, "o-", ms=3, label=kind)
        if kind in windowed:
            w = windowed[kind]
            left.plot(w.depth, w.top1_agrees.mean(axis=(1, 2)), "--", color=line.get_color(),
                      label=f"{kind}, window")
    left.set_xlabel("k / L")
    left.set_ylabel("accuracy (greedy answer = capital)")
    left.legend(fontsize=8)
    left.grid(True, alpha=0.25)
    depth = switch.layers / switch.n_layers
    middle.plot(depth, switch.p_original.mean(-1), "o-", ms=3, label="P(original capital)")
    middle.plot(depth, switch.p_injected.mean(-1), "s-", ms=3, label="P(injected capital)")
    middle.axvspan(*paper_band, color="grey", alpha=0.2, label="paper's crossover (7B)")
    if switch.crossover is not None:
        middle.axvline(switch.crossover / switch.n_layers, color="black", ls=":",
                       label=f"crossover k/L = {switch.crossover / switch.n_layers:.2f}")
    _finish(middle, "country switch (inject X over Y)", "k / L", "probability",
            spacing_line=False)
    for label, result in baseline.items():
        right.plot(result.depth, result.final_change.mean(axis=(1, 2)), "o-", ms=3, label=label)
    _finish(right, "relative change of the last output y_n", "k / L",
            "‖y − y_clean‖ / ‖y_clean‖", spacing_line=False)
    figure.suptitle(title)
    return figure


def real_tasks_figure(copy_rows, count_rows, profile, profile_text: str, title: str):
    """Left: copy accuracy vs n (first / last digit). Middle: counting, answer vs true count.
    Right: the sensitivity profile of the last output over input positions."""
    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 4.2))
    for which, marker in (("first", "o"), ("last", "s")):
        accuracy = copy_rows.accuracy(which=which)
        left.semilogx(list(accuracy), list(accuracy.values()), marker=marker, label=f"{which} digit")
    left.axhline(0.5, color="grey", ls=":", lw=1, label="chance (majority digit)")
    _finish(left, "copy a digit", "n (digits)", "accuracy", spacing_line=False)
    for kind, marker in (("bernoulli 0.7", "o"), ("ones", "x")):
        rows = [r for r in count_rows.rows if r["kind"] == kind and r["answer"] is not None]
        middle.loglog([r["target"] for r in rows], [max(r["answer"], 0.5) for r in rows], marker,
                      ls="none", label=kind)
    top = max(r["target"] for r in count_rows.rows)
    middle.plot([1, top], [1, top], "k:", label="correct")
    _finish(middle, "count the ones (few-shot)", "true count", "answer", spacing_line=False)
    right.semilogy(np.arange(profile.size), profile / profile.sum(), lw=1.2)
    _finish(right, "sensitivity of y_n to each input", "input position i (0 = BOS)",
            "share of Σ_i ‖∂y_n/∂h0_i‖_F", spacing_line=False)
    figure.suptitle(f"{title}\n{profile_text}", fontsize=10)
    figure.tight_layout(rect=(0, 0, 1, 0.9))
    return figure
