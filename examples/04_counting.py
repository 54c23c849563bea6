# %% [markdown]
# # Lecture 4 — Counting needs a mask or positions (Proposition B.9)
#
# Without a causal mask and without positional encoding, attention is a weighted average over a
# *set*: duplicating every token leaves every average unchanged. So "01" and "0011" give the same
# states at every layer — the model sees the ratio n₁/n₀, never the counts.
# (Theory: squash_sim/theory.md#prop_b9.)

# %%
from squash_sim import plotting
from squash_sim.experiments import counting

FIGURES = "out/examples/04"

# %% [markdown]
# ## Scale both counts by k and compare the states
#
# `counting.run(n0, n1, scales)` feeds $0^{k n_0} 1^{k n_1}$ for each $k$ and returns, per setting, the
# largest difference of every layer's states from k = 1 (float64). The bidirectional NoPE model
# is the proposition's; the others are controls that must break the symmetry.

# %%
result = counting.run(n0=1, n1=2, scales=(1, 2, 3), seeds=1, layers=2)
for label, difference in result.difference.items():  # each finding as a sentence
    largest = difference[:, 1:].max()
    verdict = "cannot tell the counts apart" if largest < 1e-12 else "tells the counts apart"
    print(f"{label}: scaling both counts changes the states by at most {largest:.2e}, so it "
          f"{verdict}.")
assert result.difference["bidirectional, NoPE (Prop B.9)"].max() < 1e-12
plotting.show(plotting.counting_figure(result, "only ratios are seen"), f"{FIGURES}/counting.png")

# %% [markdown]
# Bidirectional NoPE stays at rounding level (≈ 1e-16): it cannot count. The causal mask breaks
# the symmetry (the first token sees only itself), and so does any positional encoding — the
# controls differ by O(1).
