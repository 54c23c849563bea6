"""The "glasses" (theory.md §4): the remedies [G] proposes, each beside the plain collapse curve.

All on the same base model (default: the Figure 10 model, one NoPE layer, vector tokens) and the
same pair — the prefix ending at the n-th "1" against the one ending at the (n+1)-th — from one
forward pass each (squash_sim.experiments.collapse with a pattern):
  * plain                 1 1 1 1 …                                   (the collapse of Theorem B.3)
  * commas every 3        1 1 1 , 1 1 1 , …                           (separators)
  * interleaved           0 1 0 1 …                                   (interleaving items)
  * sliding window 64     plain ones, attention limited to 64 keys    (local attention)
  * absolute positions    plain ones, sinusoidal positions added to the input: a positional signal
                          that does not decay enters the residual stream (Prop B.4)
  * bf16-pure             plain ones rounded everywhere to bf16       (precision, the other way:
                          the fp32 plain curve is the "higher precision" remedy of this one)
What each does to the distance is measured, not assumed: on an untrained model a remedy that helps a
trained LLM may do nothing, and a sliding window of 64 makes most pairs bit-identical once the
prompt has left the window (both see the same 64 ones): 86 % of pairs from n = 64, on and off,
with no lasting collapse within 2,048 by the one rule (analysis.collapse.judge).
"""

from __future__ import annotations

from squash_sim import checks, presets
from squash_sim.analysis import collapse
from squash_sim.config import ModelConfig

WINDOW = 64


def variants(base: ModelConfig) -> dict:
    """label → (config, precision, pattern)"""
    return {
        "plain": (base, "fp32", "1"),
        "commas every 3": (base, "fp32", "111,"),
        "interleaved 0 1": (base, "fp32", "01"),
        f"sliding window {WINDOW}": (base.replace(sliding_window=WINDOW), "fp32", "1"),
        "absolute positions (sinusoidal)": (base.replace(positional="sinusoidal"), "fp32", "1"),
        "bf16-pure (lower precision)": (base, "bf16-pure", "1"),
    }


def run(base: ModelConfig | None = None, *, max_len: int = 2048, seed: int = 0,
        progress=None) -> dict:
    """label → CollapseResult for every remedy."""
    checks.config("remedies", "base", base, optional=True)
    checks.integer("remedies", "max_len", max_len)
    checks.seed("remedies", seed)
    base = base or presets.get("paper-fig10")
    out = {}
    for index, (label, (config, precision, pattern)) in enumerate(variants(base).items(), 1):
        if progress:
            progress(f"remedies [{index}/{len(variants(base))}] {label}")
        out[label] = collapse.run(config, precision, max_len=max_len, seed=seed, pattern=pattern)
    return out
