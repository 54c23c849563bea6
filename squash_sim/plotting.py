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
    ax.axhline(floats.BF16.eps, color="grey", ls="--", lw=1, label="bf16 spacing 2⁻⁷")
    ax.set_xlabel("n (number of ones)")
    ax.set_ylabel("‖y_n − y*_{n+1}‖₁")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.25)
    return figure


def real_collapse_figure(results: list, title: str):
    """Real-model collapse: ‖y_n − y*_{n+1}‖₁ against n, one curve per precision, bit-identical
    lengths marked below the curve. results: [RealCollapseResult]"""
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
    ax.axvline(512, color="grey", ls=":", lw=1, label="sliding window 512")
    ax.set_xlabel("n")
    ax.set_ylabel("‖y_n − y*_{n+1}‖₁ (final layer, last token)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.25)
    return figure
