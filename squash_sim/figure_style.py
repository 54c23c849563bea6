"""One figure style for everything squash_sim draws (plotting.py; the explorer uses the same
palette in JavaScript): a fixed colour, marker and dash per positional encoding and per float
format, from the Okabe–Ito palette (distinguishable with every common colour-vision deficiency),
mathtext axis labels, legends outside the data, and sizes legible on a 1280×720 projector.

A curve keeps its identity across figures: NoPE is always vermillion with circles, RoPE always
blue with squares, bf16 always orange, and so on. Curves that can coincide (Figure 10's NoPE and
RoPE are the same function of n when q, k, v are i.i.d.) get different dashes and markers at
staggered points, so the one drawn second never hides the first.
"""

from __future__ import annotations

import re

# Okabe & Ito (2008), "Color Universal Design".
OKABE_ITO = {"black": "#000000", "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73",
             "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00",
             "purple": "#CC79A7"}

# name → (colour, marker, linestyle)
POSITIONAL = {
    "none": (OKABE_ITO["vermillion"], "o", "-"),
    "rope": (OKABE_ITO["blue"], "s", "--"),
    "alibi": (OKABE_ITO["green"], "^", "-."),
    "sinusoidal": (OKABE_ITO["purple"], "D", ":"),
    "learned": (OKABE_ITO["sky"], "v", (0, (5, 1, 1, 1))),
}
POSITIONAL_NAMES = {"none": "NoPE", "rope": "RoPE", "alibi": "ALiBi", "sinusoidal": "sinusoidal",
                    "learned": "learned"}
FORMAT = {
    "fp64": (OKABE_ITO["black"], "*", "-"),
    "fp32": (OKABE_ITO["black"], "o", "-"),
    "bf16": (OKABE_ITO["orange"], "s", "-"),
    "fp16": (OKABE_ITO["sky"], "D", "--"),
    "fp8_e4m3fn": (OKABE_ITO["green"], "^", "-."),
    "fp8_e5m2": (OKABE_ITO["purple"], "v", ":"),
    "tf32": (OKABE_ITO["yellow"], "P", "--"),
}
CYCLE = [OKABE_ITO[name] for name in ("black", "orange", "sky", "green", "blue", "vermillion",
                                       "purple", "yellow")]

# Mathtext labels (matplotlib renders them as mathematics; no raw braces on an axis).
DISTANCE = r"$\|y_n - y^*_{n+1}\|_1$"
DISTANCE_SHORT = r"$\|\Delta\|_1$"

# Legible at 1280×720: a 6.4 in figure saved at 150 dpi is 960 px wide.
RC = {"font.size": 12, "axes.titlesize": 12, "axes.labelsize": 12, "legend.fontsize": 10,
      "xtick.labelsize": 11, "ytick.labelsize": 11, "lines.linewidth": 1.8,
      "lines.markersize": 5, "svg.fonttype": "none", "legend.frameon": False}


def apply(plt) -> None:
    """Set the style's defaults on matplotlib (plotting.py does this at import); SVG text stays
    text (searchable, scalable)."""
    from cycler import cycler

    plt.rcParams.update({**RC, "axes.prop_cycle": cycler(color=CYCLE)})


def _lookup(table: dict, label: str):
    """The table's name a label starts with ("bf16-pure+block32" → "bf16"), or None."""
    head = re.split(r"[\s+,(]", str(label).lower(), maxsplit=1)[0].removesuffix("-pure")
    return head if head in table else None


def positional(name: str) -> dict:
    """Line keywords for a positional encoding: colour, marker, linestyle, its display name."""
    color, marker, dash = POSITIONAL[name]
    return {"color": color, "marker": marker, "linestyle": dash,
            "label": POSITIONAL_NAMES[name]}


def curve(label: str, index: int = 0) -> dict:
    """Line keywords for a curve named `label`: the fixed style of the positional encoding or
    float format it names (a policy "bf16-pure" is drawn as bf16, dashed), else the index-th
    colour of the palette with a distinct marker."""
    text = str(label)
    if text in POSITIONAL:
        return positional(text)
    fmt = _lookup(FORMAT, text)
    if fmt is not None:
        color, marker, dash = FORMAT[fmt]
        return {"color": color, "marker": marker,
                "linestyle": "--" if "pure" in text else dash, "label": text}
    markers = "osD^vP*X"
    return {"color": CYCLE[index % len(CYCLE)], "marker": markers[index % len(markers)],
            "linestyle": "-", "label": text}


def styles(labels) -> dict:
    """curve() for each label of one figure: the fixed styles first, then the other labels take
    the palette's colours that no fixed one in this figure uses (no two curves share a colour
    while the palette lasts)."""
    labels = list(labels)
    fixed = {label: curve(label) for label in labels
             if str(label) in POSITIONAL or _lookup(FORMAT, str(label)) is not None}
    used = {kw["color"] for kw in fixed.values()}
    free = [c for c in CYCLE if c not in used] or CYCLE
    markers = "osD^vP*X"
    out, k = {}, 0
    for label in labels:
        if label in fixed:
            out[label] = fixed[label]
        else:
            out[label] = {"color": free[k % len(free)], "marker": markers[k % len(markers)],
                          "linestyle": "-", "label": str(label)}
            k += 1
    return out


def markevery(index: int, count: int = 12):
    """Staggered marker positions (fractions along a log axis), so coinciding curves show both."""
    return (0.02 + 0.025 * index, 1.0 / count)


def legend_outside(ax, **kwargs):
    """The legend to the right of the axes, never over the data."""
    options = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0}
    options.update(kwargs)
    return ax.legend(**options)
