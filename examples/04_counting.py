# %% [markdown]
# # 04 — Counting needs a mask or positions (Proposition B.9)
#
# Without a causal mask and without positional encoding, attention is a weighted average over a
# *set*: duplicating every token leaves every average unchanged. So "01" and "0011" give the same
# states at every layer — the model sees the ratio n₁/n₀, never the counts.

# %%
from squash_sim.experiments import counting

# %%
result = counting.run(n0=1, n1=2, scales=(1, 2, 3), seeds=1, layers=2)
for label, difference in result.difference.items():
    print(f"{label:>32}: max |state(k) − state(1)| = {difference[:, 1:].max():.2e}")
assert result.difference["bidirectional, NoPE (Prop B.9)"].max() < 1e-12

# %% [markdown]
# The causal mask breaks the symmetry (the first token sees only itself), and so does any
# positional encoding — the controls differ by O(1).
