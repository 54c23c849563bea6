# %% [markdown]
# # Lecture 5 — The glasses: remedies for collapse
#
# The paper suggests separators (commas every few digits), local attention, higher precision, and
# positional information that does not decay (Prop B.4). Each is run here beside the plain case
# on the same model and pair, and *measured*: on an untrained model some remedies do what the
# paper hopes and some do the opposite. (Theory: squash_sim/theory.md#prop_b4.)

# %%
import os

from squash_sim import plotting
from squash_sim.experiments import remedies

SMALL = os.environ.get("SQUASH_SIM_EXAMPLE_SMALL") == "1"
MAX_N = 300 if SMALL else 2048
FIGURES = "out/examples/05"

# %% [markdown]
# ## Every remedy beside the plain curve
#
# `remedies.run` sweeps prompt + n ones against n + 1 ones (one forward pass each) for the plain
# model and each remedy; `result.collapse` judges each sweep by the project's one rule: n* is the
# first n from which the two outputs are the same bits through the end of a sweep that reaches
# 2·n* (otherwise "not within the sweep"), beside the first identical pair and their share.

# %%
runs = remedies.run(max_len=MAX_N)
for label, result in runs.items():  # each finding as a sentence, by the one rule
    found = result.collapse
    same = (f"the two outputs are the same bits from n = {found.n_star} on" if found.n_star
            else f"no lasting collapse ({found.reason})")
    first = (f"first identical pair n = {found.first_identical}, {found.share:.0%} of pairs"
             if found.first_identical else "no identical pair")
    print(f"{label}: ‖Δ‖₁ = {result.l1[-1]:.3e} at n = {MAX_N}; {same}; {first}.")
plotting.show(plotting.collapse_figure(runs, "the glasses beside the plain collapse"),
              f"{FIGURES}/remedies.png")

# %% [markdown]
# - Commas keep the two counts apart far longer (the last token's local context differs).
# - A sliding window makes them *identical* once the prompt leaves the window: both see the same
#   window of ones. Local attention fights dilution, not counting.
# - Absolute positions in the residual stream never collapse (Prop B.4).
# - In bf16-pure the curve hits exact zero: the counts become the same bits (ticks below the
#   curves).

# %%
assert runs["commas every 3"].l1[-1] > runs["plain"].l1[-1]
