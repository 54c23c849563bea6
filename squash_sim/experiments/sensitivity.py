"""Over-squashing (theory.md, Theorem B.5 and Proposition B.8): how strongly the last output y_n
depends on each input position, ‖∂y_n/∂v_i⁽⁰⁾‖₂ for i = 1..n.

Two settings, both through squash_sim.analysis.sensitivity (exact Jacobians in float64, d backward
passes vmapped, not n·d):
  * "frozen": the theorem's model (paper-theory preset: theory norms x/β, ReLU MLP, W_V = W_O = I,
    attention frozen at a real forward's weights), with the matrix-form bound C·[Ā⋯Ā]_{n,i} beside
    the measurement — the inequality must hold at every i;
  * "real": softmax attention differentiated through, real RMSNorm, GELU MLP, real W_V/W_O (the tiny
    preset's shape with vector inputs) — no bound is guaranteed; the profile is reported as measured.
`depth_sweep` shows the first token's share of the total sensitivity growing with depth (the
paths-counting picture of Prop B.8: earlier tokens have combinatorially more monotone paths to n).
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from squash_sim import checks, presets
from squash_sim.analysis import sensitivity
from squash_sim.config import ModelConfig
from squash_sim.model import init_params


@dataclasses.dataclass
class Profile:
    setting: str  # "frozen" or "real"
    layers: int
    n: int
    norms: np.ndarray  # (seeds, n) ‖∂y_n/∂v_i‖₂
    bound: np.ndarray | None  # (seeds, n) the matrix-form bound (frozen only)

    @property
    def share(self) -> np.ndarray:
        """Mean over seeds of each position's share of the total sensitivity. → (n,)"""
        return (self.norms / self.norms.sum(axis=1, keepdims=True)).mean(axis=0)

    @property
    def bound_holds(self) -> bool | None:
        if self.bound is None:
            return None
        return bool(np.all(self.norms <= self.bound * (1 + 1e-9)))

    def rows(self) -> list[dict]:
        return [{"setting": self.setting, "layers": self.layers, "seed": s, "i": i + 1,
                 "sensitivity": float(self.norms[s, i]),
                 "bound": None if self.bound is None else float(self.bound[s, i])}
                for s in range(self.norms.shape[0]) for i in range(self.n)]


def config_for(setting: str, layers: int) -> ModelConfig:
    if setting == "frozen":
        return presets.get("paper-theory").replace(n_layers=layers)
    if setting == "real":
        return presets.get("tiny").replace(vocab_size=None, positional="none", n_layers=layers)
    raise ValueError(f"sensitivity: setting must be 'frozen' or 'real', got {setting!r}")


def profile(setting: str = "frozen", *, layers: int = 2, n: int = 32, seeds: int = 3) -> Profile:
    """‖∂y_n/∂v_i‖₂ for every i, per seed (parameters and inputs drawn from the seed)."""
    checks.choice("sensitivity", "setting", setting, ("frozen", "real"))
    for name, value in (("layers", layers), ("n", n), ("seeds", seeds)):
        checks.integer("sensitivity", name, value)
    config = config_for(setting, layers)
    with jax.enable_x64(True):
        program = jax.jit(sensitivity.jacobian_program(config, "fp64", setting == "frozen"))
        norms, bounds = [], []
        for seed in range(seeds):
            params = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64),
                                            init_params(config, jax.random.key(seed)))
            v0 = np.random.default_rng(seed).standard_normal((n, config.d_model))
            jacobian, lambdas = program(params, v0)
            norms.append(sensitivity.block_norms(jacobian))
            if setting == "frozen":
                bounds.append(sensitivity.matrix_bound(
                    lambdas, sensitivity.lipschitz(params), config.theory_beta1,
                    config.theory_beta2, config.theory_beta3))
    return Profile(setting, layers, n, np.stack(norms), np.stack(bounds) if bounds else None)


def depth_sweep(setting: str = "real", depths=(1, 2, 4, 8, 16), *, n: int = 32,
                seeds: int = 3) -> list[Profile]:
    """Profiles at increasing depth (the first token's share grows: Prop B.8's picture)."""
    depths = checks.integers("sensitivity", "depths", depths, 1, 256)
    checks.choice("sensitivity", "setting", setting, ("frozen", "real"))
    checks.integer("sensitivity", "n", n)
    checks.integer("sensitivity", "seeds", seeds)
    return [profile(setting, layers=layers, n=n, seeds=seeds) for layers in depths]
