# %% [markdown]
# # Lecture 3 — Over-squashing: how much can $y_n$ feel each input? (Theorem B.5, Prop B.8)
#
# With attention frozen and norms replaced by constants, the proof of Theorem B.5 bounds the
# sensitivity of the last output to each input:
#
# $$\left\|\frac{\partial y_n}{\partial v_i}\right\|_2
# \le C\,\big[\bar A^{(L-1)} \cdots \bar A^{(0)}\big]_{n,i},
# \qquad \bar A = \Lambda/\beta_1 + I$$
#
# The matrix entry sums over *monotone paths* $i \le k_1 \le \dots \le n$ through the layers.
# Early tokens have combinatorially more paths; the last token has the residual connection; the
# middle gets squashed. We compute the exact Jacobian (d vmapped backward passes, float64) and put
# the bound beside it. (Theory: squash_sim/theory.md#theorem_b5 and #prop_b8.)

# %%
import os

import numpy as np

from squash_sim import plotting
from squash_sim.experiments import sensitivity

SMALL = os.environ.get("SQUASH_SIM_EXAMPLE_SMALL") == "1"
N = 12 if SMALL else 32
FIGURES = "out/examples/03"

# %% [markdown]
# ## 1. The theorem's model: the bound holds at every position
#
# `sensitivity.profile("frozen")` builds the model of the theorem (frozen Λ, theory norms x/β,
# a ReLU MLP) and returns $\|\partial y_n / \partial v_i\|_2$ for every $i$ together with the bound.
# Tightness is LHS/RHS.

# %%
frozen = sensitivity.profile("frozen", layers=2, n=N, seeds=2)
print(f"The bound {'holds' if frozen.bound_holds else 'FAILS'} at every position; the sensitivity "
      f"uses at most {float(np.max(frozen.norms / frozen.bound)):.0%} of it.")
assert frozen.bound_holds

# %% [markdown]
# ## 2. With depth, the first token takes over (Prop B.8's picture)
#
# Each position's share of $\sum_i \|\partial y_n / \partial v_i\|$ on the theorem's model, at
# increasing depth. The proposition is about the bound,
# $\big([\tfrac12(\Lambda + I)]^L\big)_{n,i} \to 1$ for $i = 1$, and the measured shares follow it.

# %%
depths = (1, 2, 4) if SMALL else (1, 2, 4, 8, 16)
profiles = sensitivity.depth_sweep("frozen", depths, n=N, seeds=2)
for p in profiles:
    print(f"With {p.layers} layer(s) the first token carries {p.share[0]:.1%} of the sensitivity, "
          f"the middle one {p.share[N // 2]:.1%}, the last {p.share[-1]:.1%}.")

# %% [markdown]
# ## 3. A real model: no bound, a measured profile
#
# With real softmax attention and RMSNorm the inequality is not guaranteed; the profile is
# reported as measured (right panel: the frozen model's shares by depth).

# %%
real = sensitivity.profile("real", layers=2, n=N, seeds=1)
print(f"In the real model the first token carries {real.share[0]:.1%} and the last "
      f"{real.share[-1]:.1%} of the sensitivity (measured; no bound applies).")
plotting.show(plotting.sensitivity_figure(frozen, real, profiles, "sensitivity of y_n"),
              f"{FIGURES}/sensitivity.png")
