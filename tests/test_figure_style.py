"""One figure style (squash_sim/figure_style.py): every figure keeps its legend off the data, each
positional encoding keeps its colour from figure to figure, and Figure 10's coinciding curves
stay visible. The figures are drawn from small synthetic results (no model runs): the style is
what is tested, not the experiments."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from squash_sim import figure_style, plotting, presets
from squash_sim.analysis.collapse import CollapseResult
from squash_sim.experiments.accumulation_collapse import PANELS, AccumulationCollapse
from squash_sim.experiments.attention_collapse import AttentionCollapseResult
from squash_sim.experiments.counting import CountingResult
from squash_sim.experiments.precision_collapse import CollapseLength
from squash_sim.experiments.sensitivity import Profile
from squash_sim.experiments.softmax_tv import SoftmaxTVResult
from squash_sim.interventions import SweepResult
from squash_sim.precision import get as get_precision

N = np.arange(1, 513)
PES = ("none", "rope", "alibi", "sinusoidal")


def _collapse(scale: float, identical_from: int | None = None) -> CollapseResult:
    l1 = scale / N
    same = np.zeros(len(N), bool) if identical_from is None else N >= identical_from
    return CollapseResult(N, np.where(same, 0.0, l1), l1, same, presets.get("paper-fig10"),
                          get_precision("fp32"), 8, 0, 0.0)


def _figures():
    """(name, figure) for each figure squash_sim draws from experiment results."""
    collapse = {pe: _collapse(2.0 + i, 300 if pe == "none" else None) for i, pe in enumerate(PES)}
    same = np.stack([2.0 / N, 2.1 / N])
    tenth = [AttentionCollapseResult(pe, N, same, np.zeros_like(same, bool), "1/d", "fp32", None)
             for pe in PES]  # NoPE and RoPE coincide exactly, as in Figure 10
    lengths = []
    for m in (2, 3, 5, 7, 10):
        for suffix in (" storage", "-pure"):
            lengths.append(CollapseLength("mantissa", f"e8m{m}{suffix}", f"e8m{m}", f"e8m{m}",
                                          2 ** (m + 1) if m < 10 else None, 2 ** m,
                                          2 ** (m - 1), 2048))
    for fmt in ("bf16", "fp16", "fp8_e4m3fn"):
        lengths.append(CollapseLength("named", f"{fmt}-pure", f"{fmt}-pure", fmt, 400, 128, 64,
                                      2048))
    rows = [AccumulationCollapse(f, m, "x", "ok", 100 * (i + 1) if f != "fp32" else None,
                                 "accumulator stalled", None, 8192, 256.0, 2048)
            for i, f in enumerate(("fp32", "bf16", "fp16"))
            for m in ("sequential", "pairwise", "storage, fp32 sums", "tc:h100")]
    tv = SoftmaxTVResult(N[::32], np.stack([1 / N[::32], 1.1 / N[::32]]), 1)
    counting = CountingResult(2, 3, np.arange(1, 6), {"a": np.full((2, 5), 1e-3),
                                                      "b": np.full((2, 5), 1e-6)})
    remedies = {"plain": collapse["none"], "commas every 3": _collapse(3.0),
                "bf16-pure (lower precision)": _collapse(1.5, 200)}
    rng = np.random.default_rng(0)
    layers = np.arange(6)
    sweep = SweepResult("freeze", layers, 6, rng.uniform(0, 2, (6, 2, 3)),
                        rng.uniform(size=(6, 2, 3)) > 0.3, rng.uniform(size=(6, 2, 3)),
                        rng.uniform(size=(6, 2, 3)), rng.uniform(size=3))
    frozen = Profile("frozen", 2, 12, rng.uniform(0.1, 3, (2, 12)), np.full((2, 12), 20.0))
    real = Profile("real", 2, 12, rng.uniform(0.1, 3, (1, 12)), None)
    depth = [Profile("frozen", layers, 12, rng.uniform(0.1, 3, (2, 12)), None)
             for layers in (1, 2, 4)]
    return [("collapse", plotting.collapse_figure(collapse, "collapse")),
            ("remedies", plotting.collapse_figure(remedies, "remedies")),
            ("sensitivity", plotting.sensitivity_figure(frozen, real, depth, "sensitivity")),
            ("intervention", plotting.intervention_figure(sweep, "intervention")),
            ("figure10", plotting.attention_collapse_figure(tenth, "Figure 10", {100: 0.02})),
            ("precision", plotting.precision_figure(lengths, "precision")),
            ("accumulation", plotting.accumulation_figure(rows, "accumulation", PANELS)),
            ("softmax_tv", plotting.softmax_tv_figure(tv, "Figure 9")),
            ("counting", plotting.counting_figure(counting, "counting"))]


def _points(ax):
    """Display coordinates of every plotted point and marker inside the axes."""
    box = ax.get_window_extent()
    found = []
    for line in ax.get_lines():
        xy = np.column_stack(line.get_data()).astype(float)
        found.append(line.get_transform().transform(xy))
    for collection in ax.collections:
        if isinstance(collection, matplotlib.collections.PathCollection):
            offsets = np.asarray(collection.get_offsets(), float)
            if offsets.size:
                found.append(collection.get_offset_transform().transform(offsets))
    if not found:
        return np.empty((0, 2))
    xy = np.concatenate(found)
    xy = xy[np.all(np.isfinite(xy), axis=1)]
    inside = ((xy[:, 0] >= box.x0) & (xy[:, 0] <= box.x1) & (xy[:, 1] >= box.y0)
              & (xy[:, 1] <= box.y1))
    return xy[inside]


@pytest.fixture(scope="module")
def figures():
    drawn = _figures()
    for _, figure in drawn:
        figure.canvas.draw()
    yield drawn
    for _, figure in drawn:
        plotting.plt.close(figure)


def test_no_legend_covers_a_plotted_point(figures):
    for name, figure in figures:
        legends = [ax.get_legend() for ax in figure.axes if ax.get_legend()] + figure.legends
        assert legends, f"{name}: no legend"
        for legend in legends:
            box = legend.get_window_extent()
            for ax in figure.axes:
                xy = _points(ax)
                covered = ((xy[:, 0] > box.x0) & (xy[:, 0] < box.x1) & (xy[:, 1] > box.y0)
                           & (xy[:, 1] < box.y1))
                assert not covered.any(), f"{name}: the legend covers {covered.sum()} points"


def test_each_positional_encoding_keeps_its_colour(figures):
    seen = {}
    for name, figure in figures:
        for ax in figure.axes:
            for line in ax.get_lines():
                label = line.get_label()
                for pe, display in figure_style.POSITIONAL_NAMES.items():
                    if label == display:
                        colour = matplotlib.colors.to_hex(line.get_color())
                        assert colour == figure_style.POSITIONAL[pe][0].lower(), (name, label)
                        seen.setdefault(pe, set()).add(name)
    assert seen["none"] == {"collapse", "figure10"} and seen["rope"] == {"collapse", "figure10"}


def test_no_two_curves_of_a_figure_share_a_colour(figures):
    """(remedies used to draw "commas every 3" and "bf16-pure" in the same orange)"""
    for name in ("collapse", "remedies", "figure10"):
        ax = dict(figures)[name].axes[0]
        colours = [matplotlib.colors.to_hex(line.get_color()) for line in ax.get_lines()
                   if not line.get_label().startswith("_") and line.get_linestyle() != "None"
                   and "spacing" not in line.get_label()]
        assert len(colours) == len(set(colours)), (name, colours)


def test_coinciding_curves_stay_visible(figures):
    """Figure 10: NoPE and RoPE are the same curve; they differ in dash and marker positions."""
    ax = dict(figures)["figure10"].axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    nope, rope = lines["NoPE"], lines["RoPE"]
    np.testing.assert_array_equal(nope.get_ydata(), rope.get_ydata())
    assert nope.get_linestyle() != rope.get_linestyle()
    assert nope.get_marker() != rope.get_marker()
    assert nope.get_markevery() != rope.get_markevery()
    assert rope.get_zorder() > nope.get_zorder() or nope.get_zorder() > rope.get_zorder()


def test_axis_labels_are_mathematics(figures):
    for name, figure in figures:
        for ax in figure.axes:
            for label in (ax.get_xlabel(), ax.get_ylabel()):
                assert "_{" not in label or label.count("$") >= 2, (name, label)
                assert "‖" not in label, (name, label)
