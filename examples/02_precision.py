# %% [markdown]
# # Lecture 2 — Precision: when n and n + 1 become the same number (Corollary B.10)
#
# Lecture 1 showed $\|y_n - y^*_{n+1}\| \to 0$. In a float format with spacing $\varepsilon$ the two
# outputs eventually round to the **same bits**, and then no readout can tell the counts apart: a model
# cannot count past that point. The **collapse length** $n^*$ is the first $n$ from which the two are
# bit-identical. It depends on the format *and on where rounding happens*.
# (Theory: squash_sim/theory.md#corollary_b10 and #precision.)

# %%
import os

from squash_sim import plotting
from squash_sim.experiments import precision_collapse

SMALL = os.environ.get("SQUASH_SIM_EXAMPLE_SMALL") == "1"
FIGURES = "out/examples/02"

# %% [markdown]
# ## 1. Where rounding happens: a sum of ones in bf16
#
# bf16 keeps 8 significant bits: 256 + 1 is not representable and rounds back to 256. Any running
# sum kept in bf16 therefore stops growing once its terms fall below half its spacing — the softmax
# denominator after about 256 keys, and the attention output's weights·values sum too. Which stall
# a collapse needs is a measurement, not a guess: `squash_sim.analysis.mechanism` restores one sum
# at a time to fp32 (`squash-sim accumulation`, docs/precision_hardware.md). On the Figure 10
# model the "-pure" collapses need the weights·values stall; restoring the softmax sum alone only
# delays them.

# %%
print("1000 ones summed in bf16:", precision_collapse.sum_of_ones(1000, "bf16"))
print("1000 ones summed in fp16:", precision_collapse.sum_of_ones(1000, "fp16"))
assert precision_collapse.sum_of_ones(1000, "bf16") == 256

# %% [markdown]
# ## 2. Collapse lengths: storage-only vs everything rounded
#
# "bf16" stores activations in bf16 but computes in float32 (what inference does); "bf16-pure"
# rounds every operation and accumulates in bf16. Beside the measured n* are two estimates from
# the float32 curve: $n_\varepsilon$, where $\|\Delta\|_1$ drops below the spacing above 1 (the paper's
# reading), and $n_\mathrm{round}$, where every coordinate sits inside half a spacing of its value,
# $|\Delta_i| < \tfrac12\,\mathrm{spacing}(y_i)$.

# %%
lengths = precision_collapse.run(max_len=256 if SMALL else 1024, mantissa_bits=(2, 3, 5),
                                 named=("fp8_e5m2", "fp8_e4m3fn") if SMALL else
                                 ("fp16", "bf16", "fp8_e4m3fn", "fp8_e5m2"), ladder=not SMALL)
for x in lengths:  # each finding as a sentence, by the one rule (n* needs the sweep to reach 2·n*)
    first = (f"the first identical pair is n = {x.first_identical} "
             f"({x.identical_share:.0%} of pairs identical)" if x.first_identical else
             "no pair is identical")
    if x.status != "measured":
        found = f"{x.status}: the format cannot hold the model's values, so no n* is read"
    elif x.n_star is None:
        found = f"no lasting collapse within the sweep ({x.n_star_reason}); {first}"
    else:
        found = f"n and n + 1 ones give the same bits from n = {x.n_star} on; {first}"
    print(f"{x.label}: {found}; the fp32 curve estimates n_ε = {x.n_eps}, "
          f"n_round = {x.n_round}.")
plotting.show(plotting.precision_figure(lengths, "collapse length vs mantissa bits"),
              f"{FIGURES}/precision.png")

# %% [markdown]
# **Read the figure.** More mantissa bits push n* up, roughly like 2^m: the spacing halves with
# every bit. Rounding every operation ("-pure") collapses far sooner than rounding storage only,
# and the paper's estimate n_ε is a reading of the float32 curve, not a prediction of the bits.
