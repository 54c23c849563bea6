"""Matplotlib figures drawn from experiment data (experiments never draw)."""

from __future__ import annotations

import textwrap

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # files only; no display is assumed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from squash_sim import figure_style as style  # noqa: E402
from squash_sim import floats  # noqa: E402
from squash_sim.analysis.collapse import REACH  # noqa: E402  (the one rule: n* needs REACH·n* swept)

# One style (figure_style.py): fixed colour/marker per positional encoding and format, mathtext
# labels, legends outside the data, sizes legible on a 1280×720 projector. The figures are drawn
# at 6.4 × 4.2 in, saved at results.DPI; SVG text stays text (searchable, scalable).
style.apply(plt)


def collapse_figure(results: dict, title: str):
    """‖y_n − y*_{n+1}‖₁ against n (log-log), one curve per label, with the bf16 spacing line and
    bit-identical points marked. results: {label: CollapseResult}"""
    figure, ax = plt.subplots(figsize=(6.4, 4.2))
    positive_values = [r.l1[r.l1 > 0] for r in results.values()]
    floor = min((v.min() for v in positive_values if v.size), default=1e-12) / 2
    marked = flagged = intermittent = False
    looks = style.styles(results)
    for index, (label, result) in enumerate(results.items()):
        positive = (result.l1 > 0) & result.sound
        line, = ax.loglog(result.n[positive], result.l1[positive], ms=4,
                          markevery=style.markevery(index), **looks[label])
        same = result.bit_identical & result.sound  # overflowed pairs are never collapse
        lasting = result.collapse.lasting_pairs(result.n)  # the one definition (judge's record)
        come_and_go = same & ~lasting
        if lasting.any():  # a zero distance has no place on a log axis: marks at a shared floor
            ax.scatter(result.n[lasting], np.full(lasting.sum(), floor), s=30,
                       color=line.get_color(), marker="|")
            marked = True
        if come_and_go.any():
            ax.scatter(result.n[come_and_go], np.full(come_and_go.sum(), floor * 0.8), s=4,
                       color=line.get_color(), marker=".")
            intermittent = True
        if not result.sound.all():
            ax.scatter(result.n[~result.sound], np.full((~result.sound).sum(), floor / 2), s=30,
                       color=line.get_color(), marker="x")
            flagged = True
    if marked:
        ax.scatter([], [], s=30, marker="|", color="black",
                   label="lasting collapse from n* (below the curves)")
    if intermittent:
        ax.scatter([], [], s=4, marker=".", color="black",
                   label="bit-identical, intermittent (below the curves)")
    if flagged:
        ax.scatter([], [], s=30, marker="x", color="black",
                   label="overflow / non-finite (not collapse)")
    _finish(ax, title, "n (number of ones)", style.DISTANCE)
    return figure


def real_collapse_figure(results: list, title: str, window: int | None = 512):
    """Real-model collapse: ‖y_n − y*_{n+1}‖₁ against n, one curve per precision, bit-identical
    lengths marked below the curve. results: [RealCollapseResult]; window: the model's sliding
    window, marked (None: the model has none)."""
    figure, ax = plt.subplots(figsize=(6.4, 4.2))
    looks = style.styles(str(r.precision) for r in results)
    for index, result in enumerate(results):
        positive = result.l1 > 0
        line, = ax.loglog(result.n[positive], result.l1[positive], lw=1.4, ms=4,
                          markevery=1 if len(result.n) < 20 else style.markevery(index),
                          **looks[str(result.precision)])
        same = result.bit_identical
        if same.any():
            floor = result.l1[positive].min() if positive.any() else 1e-6
            found = result.collapse  # the one definition (analysis.collapse.judge)
            lasting = found.lasting_pairs(result.n)
            if lasting.any():
                ax.scatter(result.n[lasting], np.full(lasting.sum(), floor / 2), s=6,
                           marker="|", color=line.get_color(),
                           label=f"{result.precision}: lasting collapse from n* = {found.n_star}")
            if (same & ~lasting).any():
                ax.scatter(result.n[same & ~lasting], np.full((same & ~lasting).sum(), floor / 2),
                           s=4, marker=".", color=line.get_color(),
                           label=f"{result.precision}: bit-identical, intermittent")
    if window:
        ax.axvline(window, color="grey", ls=":", lw=1, label=f"sliding window {window}")
    _finish(ax, title, "n", style.DISTANCE + " (final layer, last token)", spacing_line=False)
    return figure


def _finish(ax, title: str, xlabel: str, ylabel: str, spacing_line: bool = True):
    """The shared tail of every figure: bf16 spacing line, labels, legend, grid."""
    if spacing_line:
        ax.axhline(floats.BF16.eps, color="grey", ls="--", lw=1, label=r"bf16 spacing $2^{-7}$")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title("\n".join(textwrap.wrap(title, 60)))
    if ax.get_legend_handles_labels()[0]:
        # right of the axes; below it when another panel sits to the right (never over data)
        right = max(other.get_position().x1 for other in ax.figure.axes)
        if ax.get_position().x1 < right - 1e-6:
            style.legend_outside(ax, loc="upper left", bbox_to_anchor=(0.0, -0.16))
        else:
            style.legend_outside(ax)
    ax.grid(True, which="both", alpha=0.25)


def attention_collapse_figure(results: list, title: str, readoffs: dict | None = None):
    """Figure 10 / Figure 8: mean ‖y_n − y*_{n+1}‖₁ over seeds with min/max band, one curve per
    positional encoding; the paper's read-off values as crosses. results: [AttentionCollapseResult]"""
    figure, ax = plt.subplots(figsize=(6.4, 4.2))
    for index, result in enumerate(results):
        keep = result.n > 1  # n = 1: both sequences are the same token, the distance is exactly 0
        # coinciding curves (NoPE and RoPE here) stay visible: own dash, markers at staggered n
        line, = ax.loglog(result.n[keep], result.mean[keep], lw=1.6, ms=6, mfc="none",
                          markevery=style.markevery(index, 8), zorder=3 + index,
                          **style.curve(result.positional, index))
        ax.fill_between(result.n[keep], result.l1[:, keep].min(axis=0),
                        result.l1[:, keep].max(axis=0), alpha=0.15, color=line.get_color())
    if readoffs:
        ax.scatter(list(readoffs), list(readoffs.values()), marker="x", color="black", zorder=5,
                   label="paper's read-offs")
    _finish(ax, title, "n", style.DISTANCE)
    return figure


def softmax_tv_figure(result, title: str):
    """Figure 9: δ(softmax x, softmax x*) against n, mean over seeds with min/max bars, beside the
    expected curve δ̄(n) derived in experiments/softmax_tv.py. result: SoftmaxTVResult"""
    figure, ax = plt.subplots(figsize=(6.4, 4.2))
    mean = result.mean
    ax.errorbar(result.n, mean, yerr=[mean - result.tv.min(axis=0), result.tv.max(axis=0) - mean],
                fmt="o-", ms=3, capsize=3, label=f"mean of {result.tv.shape[0]} seeds (min/max)")
    ax.plot(result.n, result.expected, "k:",
            label=r"expected $\bar\delta(n) = \frac{2(n-k)c}{n(n+c)}$")
    _finish(ax, title, "n", r"$\delta(\mathrm{softmax}\,x,\ \mathrm{softmax}\,x^*)$")
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
        pure = suffix == "-pure"  # the two can coincide: open markers under a dashed line
        line, = ax.semilogy([b for b, _ in found], [n for _, n in found], marker=marker,
                            ls="--" if pure else "-", ms=5 if pure else 9,
                            mfc=None if pure else "none", zorder=3 if pure else 2,
                            color=style.OKABE_ITO["vermillion" if pure else "black"],
                            label=f"$n^*$: {label}")
        if beyond:
            ax.scatter(beyond, [max_len * (1.3 if pure else 1.6)] * len(beyond), marker="^",
                       color=line.get_color(),
                       label=f"{label}: $n^* > {max_len // REACH}$")
    named = [x for x in lengths if x.family == "named"]
    labels: dict = {}  # one annotation per point, naming every policy drawn there
    for x in named:  # the table's formats at their mantissa width (their own exponent widths)
        bits = floats.get(x.fmt).mantissa_bits
        pure = x.label.endswith("-pure")
        y = x.n_star if x.n_star is not None else max_len * 1.3
        color = style.curve(x.fmt)["color"]
        ax.scatter([bits], [y], marker=("^" if x.n_star is None else "D" if pure else "P"), s=55,
                   facecolor="none" if pure else color, edgecolor=color, zorder=5)
        labels.setdefault((bits, y), []).append(x.label.replace("fp8_", ""))
    rightmost = max([int(x.fmt.split("m")[1]) for x in sweep] + [b for b, _ in labels])
    for (bits, y), names in labels.items():  # the rightmost labels go left, inside the axes
        left = bits >= rightmost
        ax.annotate("\n".join(names), (bits, y), textcoords="offset points", fontsize=8,
                    xytext=(-8 if left else 6, -4), va="top", ha="right" if left else "left")
    if named:
        ax.scatter([], [], marker="P", color="grey", label="named format, storage")
        ax.scatter([], [], marker="D", facecolor="none", edgecolor="grey",
                   label="named format, -pure")
    estimates = {int(x.fmt.split("m")[1]): (x.n_eps, x.n_round) for x in sweep}
    bits = sorted(estimates)
    for index, (label, dash) in enumerate((
            (r"$n_\varepsilon$: fp32 $\|\Delta\|_1 < \varepsilon$", "k--"),
            (r"$n_\mathrm{round}$: $|\Delta_i| < \frac{1}{2}\,\mathrm{spacing}(y_i)$", "k:"))):
        points = [(b, estimates[b][index]) for b in bits if estimates[b][index] is not None]
        ax.semilogy([b for b, _ in points], [n for _, n in points], dash, label=label)
    ax.axhline(max_len, color="grey", lw=0.8, label=f"end of the sweep (n = {max_len})")
    _finish(ax, title, "mantissa bits (e8mX sweep; named formats at their own)",
            r"collapse length $n^*$", spacing_line=False)
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
    left.set_ylabel(r"$\|\partial y_n / \partial v_i\|_2$ (mean over seeds)")
    style.legend_outside(left, loc="upper left", bbox_to_anchor=(0.0, -0.16), ncol=2)
    left.grid(True, which="both", alpha=0.25)
    for profile in depth:
        right.plot(np.arange(1, profile.n + 1), profile.share, lw=1.2, label=f"L = {profile.layers}")
    _finish(right, f"share of sensitivity by depth ({depth[0].setting})", "input position i",
            r"share of $\Sigma_i \|\partial y_n / \partial v_i\|_2$", spacing_line=False)
    right.set_yscale("log")
    figure.subplots_adjust(wspace=0.32)
    figure.suptitle(title)
    return figure


def counting_figure(result, title: str):
    """Prop B.9: max state difference between (k·n₀, k·n₁) and (n₀, n₁) against k, per setting."""
    figure, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, difference in result.difference.items():
        keep = result.scales > 1
        ax.semilogy(result.scales[keep], np.maximum(difference.max(axis=0)[keep], 1e-18), "o-",
                    ms=3, label=label)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))  # k is an integer
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
    style.legend_outside(left, loc="upper left", bbox_to_anchor=(0.0, -0.16))
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
            r"$\|y - y_\mathrm{clean}\| \,/\, \|y_\mathrm{clean}\|$", spacing_line=False)
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
            r"share of $\sum_i \|\partial y_n / \partial h^0_i\|_F$", spacing_line=False)
    figure.suptitle(f"{title}\n{profile_text}", fontsize=10)
    figure.tight_layout(rect=(0, 0, 1, 0.9))
    return figure


def accumulation_figure(rows: list, title: str, panels: dict | None = None):
    """Collapse length n* per format (x) and column (colour), from
    experiments.accumulation_collapse rows: filled = accumulator mechanism, open = spacing; a
    triangle at the top = no collapse within the sweep; × = non-finite outputs. panels: {panel
    title: its columns} (experiments.accumulation_collapse.PANELS), one panel each, stacked;
    None or one column set: one panel."""
    formats = list(dict.fromkeys(r.fmt for r in rows))
    present = list(dict.fromkeys(r.model for r in rows))
    groups = [(name, [m for m in models if m in present])
              for name, models in (panels or {"": present}).items()]
    groups = [(name, models) for name, models in groups if models]
    if not groups:
        groups = [("", present)]
    figure, axes = plt.subplots(len(groups), 1, figsize=(8.4, 1.0 + 3.2 * len(groups)),
                                sharex=True, squeeze=False)
    top = max(r.max_len for r in rows) // REACH  # n* is called only where the sweep reaches REACH·n*
    for index, (ax, (name, models)) in enumerate(zip(axes[:, 0], groups, strict=True)):
        _accumulation_panel(ax, rows, formats, models, top, legend_keys=index == 0)
        if name:
            ax.set_title(name, fontsize=10)
    axes[-1, 0].set_xticks(range(len(formats)), formats, fontsize=9)  # "fp8_e4m3fn fp8_e5m2"
    figure.suptitle("\n".join(textwrap.wrap(title, 70)), fontsize=11)
    figure.tight_layout()
    return figure


def _accumulation_panel(ax, rows, formats, models, top, legend_keys: bool):
    """One panel of accumulation_figure: the columns `models`, each a colour, beside each other
    at every format."""
    step = min(0.12, 0.8 / max(len(models), 1))
    for j, model in enumerate(models):
        color = style.CYCLE[(j + 1) % len(style.CYCLE)]
        for i, fmt in enumerate(formats):
            r = next((x for x in rows if x.fmt == fmt and x.model == model), None)
            x = i + (j - (len(models) - 1) / 2) * step
            if r is None:  # not run (or no such policy): nothing drawn
                continue
            if r.status == "too large":  # refused before any work (accumulate.TooLarge)
                ax.scatter(x, top * 1.6, marker="s", facecolors="none", color=color)
            elif r.status != "ok":
                ax.scatter(x, top * 1.6, marker="x", color=color)
            elif r.n_star is None:
                ax.scatter(x, top * 1.3, marker="^", color=color)
            else:
                ax.scatter(x, r.n_star, marker="o", color=color,
                           facecolors=color if r.mechanism == "accumulator stalled" else "none")
        ax.scatter([], [], marker="o", color=color, label=model)
    ax.axhline(top, color="grey", lw=0.8, ls=":",
               label="reach: half the sweep ($n^*$ needs $2n^*$ swept)" if legend_keys else None)
    if legend_keys:
        ax.scatter([], [], marker="o", color="black", label="filled: accumulator stalled")
        ax.scatter([], [], marker="o", facecolors="none", color="black",
                   label="open: representations round together")
        ax.scatter([], [], marker="^", color="black", label="no collapse within reach")
        ax.scatter([], [], marker="x", color="black", label="non-finite / overflow (not collapse)")
        if any(r.status == "too large" for r in rows):
            ax.scatter([], [], marker="s", facecolors="none", color="black",
                       label="not run: too large for the implementation")
    done = {(r.fmt, r.model) for r in rows if r.model in models}
    if len(done) < len(formats) * len(models):
        ax.plot([], [], " ", label="(a gap: that cell was not run\nor has no such hardware)")
    ax.set_yscale("log")
    ax.set_ylim(1, top * 2.2)  # n* = 1 at the bottom: a high marker is a late collapse, not zoom
    ax.set_xticks(range(len(formats)), formats)
    ax.set_ylabel(r"collapse length $n^*$")
    style.legend_outside(ax, fontsize=8)


def attention_maps(trace, *, head: int | None = 0, batch: int = 0, layers=None,
                   title: str = "Attention weights", labels=None):
    """Attention weights of a forward pass, one panel per layer (log colour scale, so the 1/n
    dilution is visible). trace: a model Trace computed with return_attention=True; its
    attention is (L, heads, n, n), or (b, L, heads, n, n) for a batch (`batch` picks one).
    head: which head, or None for the mean over heads. labels: optional token labels (n,)."""
    from matplotlib.colors import LogNorm

    attention = getattr(trace, "attention", trace)
    if attention is None:
        raise ValueError("attention_maps: the trace has no attention weights; run forward(..., "
                         "return_attention=True)")
    weights = np.asarray(attention, dtype=np.float64)
    if weights.ndim == 5:
        weights = weights[batch]
    if weights.ndim != 4:
        raise ValueError(f"attention_maps: expected attention of shape (L, heads, n, n), got "
                         f"{weights.shape}")
    weights = weights.mean(axis=1) if head is None else weights[:, head]  # (L, n, n)
    layers = list(range(weights.shape[0])) if layers is None else list(layers)
    figure, axes = plt.subplots(1, len(layers), figsize=(3.6 * len(layers) + 0.8, 3.8),
                                squeeze=False)
    positive = weights[weights > 0]
    norm = LogNorm(vmin=max(positive.min(), 1e-4) if positive.size else 1e-4, vmax=1.0)
    for ax, layer in zip(axes[0], layers, strict=True):
        shown = np.where(np.tril(np.ones_like(weights[layer])) > 0, weights[layer], np.nan)
        image = ax.imshow(shown, norm=norm, cmap="viridis", interpolation="nearest")
        ax.set_title(f"layer {layer}" + ("" if head is None else f", head {head}"))
        ax.set_xlabel("key position j")
        if labels is not None:
            ax.set_xticks(range(len(labels)), labels, fontsize=6, rotation=90)
    axes[0][0].set_ylabel("query position i")
    figure.colorbar(image, ax=axes[0].tolist(), label=r"$\alpha_{ij}$ (log scale)", shrink=0.85)
    figure.suptitle(title)
    return figure


def intervention_figure(result, title: str):
    """An intervention swept over the block k it enters: KL(clean ‖ manipulated) and top-1
    agreement (and P(answer) when answers were given) against k / L. result: SweepResult"""
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    per_seed = result.kl.mean(axis=-1)  # (K, seeds)
    left.errorbar(result.depth, per_seed.mean(axis=1), yerr=per_seed.std(axis=1), fmt="o-", ms=3,
                  capsize=3, label="mean ± std over seeds")
    left.set_yscale("symlog", linthresh=1e-3)
    _finish(left, "KL(clean ‖ manipulated), last position", "k / L (block the change enters)",
            "KL (nats)", spacing_line=False)
    right.plot(result.depth, result.top1_agrees.mean(axis=(1, 2)), "o-", ms=3,
               label="top-1 agrees with clean")
    if result.answer_probability is not None:
        right.plot(result.depth, result.answer_probability.mean(axis=(1, 2)), "s-", ms=3,
                   label="P(answer)")
    right.set_ylim(-0.02, 1.02)
    _finish(right, "agreement with the clean model", "k / L (block the change enters)",
            "fraction / probability", spacing_line=False)
    figure.suptitle(title)
    return figure


def switch_figure(switch, title: str, paper_band=(0.53, 0.69)):
    """The country switch: P(original) and P(injected) against k / L with the paper's band."""
    figure, ax = plt.subplots(figsize=(6.4, 4.2))
    depth = switch.layers / switch.n_layers
    ax.plot(depth, switch.p_original.mean(-1), "o-", ms=3, label="P(original capital)")
    ax.plot(depth, switch.p_injected.mean(-1), "s-", ms=3, label="P(injected capital)")
    ax.axvspan(*paper_band, color="grey", alpha=0.2, label="paper's crossover (7B)")
    _finish(ax, title, "k / L", "probability", spacing_line=False)
    return figure


def show(figure, path=None):
    """Show a figure where the code runs: inline in a notebook (Jupyter, executed docs), else
    written to `path` (a script run) when one is given. The examples call this."""
    import io
    from pathlib import Path

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    try:
        from IPython import get_ipython
    except ImportError:
        get_ipython = lambda: None  # noqa: E731
    if get_ipython() is not None:
        from IPython.display import Image, display

        display(Image(buffer.getvalue()))
    elif path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(buffer.getvalue())
        print(f"figure written to {Path(path).resolve()}")  # relative paths: from where it runs
