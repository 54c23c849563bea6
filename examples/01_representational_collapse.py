# %% [markdown]
# # 01 — Representational collapse (Theorem B.3)
#
# Take a sequence and the same sequence with its last token repeated once more. A causal
# Transformer's last-token outputs for the two, y_n and y*_{n+1}, get closer as n grows:
# the repeated token's attention weight is Θ(1/n), so its effect is diluted. The paper gives no
# rate; for one NoPE layer the exact identity is
#
#     y_n − y*_{n+1} = α*_{n+1,n+1} · (m_n − v_n),   α*_{n+1,n+1} = Θ(1/n)
#
# so ‖Δ‖ ≈ c/n. Below: the paper's Figure 10 protocol (one layer, i.i.d. q, k, v) and a real
# (untrained) model swept in **one forward pass** — row j of a causal forward is the output of the
# prefix of length j + 1.
#
# Open as a notebook with `jupytext --to notebook`; run as a script with `python`.

# %%
import os

from squash_sim import presets
from squash_sim.experiments import attention_collapse, collapse

SMALL = os.environ.get("SQUASH_SIM_EXAMPLE_SMALL") == "1"  # the test suite runs a small size
MAX_N = 200 if SMALL else 5000

# %% [markdown]
# ## Figure 10: one attention layer, four positional encodings
# q, k, v ~ N(0, 1/d): this is what reproduces the paper's plotted values (≈ 0.95 at n = 5,
# ≈ 0.065 at n = 100, ≈ 0.007 at 1000).

# %%
ns = attention_collapse.log_grid(MAX_N)
for positional in attention_collapse.POSITIONALS:
    result = attention_collapse.run(positional, ns, seeds=3)
    print(f"{positional:>10}: ‖Δ‖₁ at n = {ns[-1]}: {result.mean[-1]:.4f}, "
          f"fitted exponent {result.decay_exponent():.2f}")
nope = attention_collapse.run("none", (5, 100), seeds=5)
assert abs(nope.mean[1] / 0.065 - 1) < 0.15, "the n = 100 read-off of Figure 10"

# %% [markdown]
# NoPE decays like 1/n (exponent ≈ −1). ALiBi's logits are unbounded below — the theorem's
# assumption fails — and its distance plateaus: a check whose assumption is not met must say so.

# %% [markdown]
# ## A model, swept in one pass: prompt + n ones vs prompt + n + 1 ones

# %%
sweep = collapse.run(presets.get("tiny").replace(positional="none"), "fp32",
                     max_len=256 if SMALL else 4096)
for n in (1, 10, 100, sweep.n[-1]):
    print(f"n = {n:>5}: ‖y_n − y*_(n+1)‖₁ = {sweep.l1[n - 1]:.3e}")
print(f"decay exponent {sweep.decay_exponent():.2f}; one forward pass took {sweep.seconds:.2f} s")
assert sweep.l1[-1] < sweep.l1[9] / 10
