"""A k-sweep of one intervention (../shared/spec/interventions.md): every layer k × every seed in
one compiled program, with KL, top-1 agreement and answer probability at each prompt's last
position. Reachable as `squash_sim.interventions.sweep` too (documented there).

Every argument is checked before the clean forward pass is traced.
"""

from __future__ import annotations

import dataclasses
import numbers

import jax
import jax.numpy as jnp
import numpy as np

from squash_sim.config import ModelConfig
from squash_sim.interventions import KINDS, angle, freeze, random, shuffle, skip_attention
from squash_sim.model import check_inputs, check_params, traceable_forward
from squash_sim.precision import get as get_precision


@dataclasses.dataclass
class SweepResult:
    """Metrics of one intervention kind at every layer k, per seed and prompt, at each prompt's
    last position. Arrays are (layers, seeds, prompts)."""

    kind: str
    layers: np.ndarray  # (K,) the k swept
    n_layers: int  # L, for k / L
    kl: np.ndarray  # KL(clean ‖ manipulated)
    top1_agrees: np.ndarray  # bool: manipulated argmax == clean argmax
    final_change: np.ndarray  # ‖y − y_clean‖₂ / ‖y_clean‖₂ of the last final-norm output
    answer_probability: np.ndarray | None  # P(answer) under manipulation (answers given)
    clean_answer_probability: np.ndarray | None  # (prompts,)

    @property
    def depth(self) -> np.ndarray:
        return self.layers / self.n_layers

    def summary(self) -> list[dict]:
        rows = []
        for i, k in enumerate(self.layers):
            row = {"kind": self.kind, "k": int(k), "k/L": float(k / self.n_layers),
                   "kl_mean": float(self.kl[i].mean()), "kl_std": float(self.kl[i].mean(-1).std()),
                   "top1_agreement": float(self.top1_agrees[i].mean()),
                   "final_change": float(self.final_change[i].mean())}
            if self.answer_probability is not None:
                per_seed = self.answer_probability[i].mean(-1)
                row.update(answer_probability=float(per_seed.mean()),
                           answer_probability_std=float(per_seed.std()))
            rows.append(row)
        return rows


def last_logits(params, config: ModelConfig, final, last):
    """Unembed only each prompt's last row: final (b, n, d), last (b,) → (b, vocab)."""
    rows = jnp.take_along_axis(final, last[:, None, None], axis=1)[:, 0]  # (b, d)
    unembedding = params["embedding"].T if config.tied_embedding else params["unembedding"]
    return rows @ unembedding


def _log_softmax(logits):
    return jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)


def sweep(model, prompts, *, kind: str, layers=None, last=None, seeds=(0,), answers=None,
          theta: float = np.pi / 2, window: int | None = None, exclude_bos: bool = False,
          form: str = "faithful", precision="fp32") -> SweepResult:
    """Run one intervention kind at every layer k in `layers` (default all valid) for every seed,
    at each prompt's last position. One compiled program: lax.map over k, vmap over seeds.

    model: a loaded model (squash_sim.models: .params, .config, .encode) or a (params, config)
    pair. prompts: strings (encoded with BOS, right-padded to a batch; `last` is then derived) or
    token ids (b, n), right-padded, whose last real tokens are `last` (b,) (default n − 1).
    answers: (b,) token ids whose probability is reported (e.g. the correct capital)."""
    params, config = _unpack(model)
    if kind not in KINDS or kind == "inject":
        raise ValueError(f"sweep: kind must be one of {[k for k in KINDS if k != 'inject']} "
                         f"(inject has its own experiment), got {kind!r}")
    if not config.takes_tokens:
        raise ValueError("sweep: the model must take token ids (metrics read its logits)")
    if window is not None and kind not in ("random", "freeze", "skip_attention"):
        raise ValueError(f"sweep: window applies to random, freeze and skip_attention, not {kind}")
    if isinstance(prompts, (list, tuple)) and len(prompts) == 0:
        raise ValueError("sweep: prompts must hold at least one prompt, got an empty list")
    if isinstance(prompts, (list, tuple)) and isinstance(prompts[0], str):
        if not hasattr(model, "encode"):
            raise TypeError("sweep: text prompts need a model with a tokenizer (.encode)")
        if not all(isinstance(p, str) for p in prompts):
            raise TypeError("sweep: prompts must be all strings or all token ids, not a mix")
        encoded = [model.encode(p) for p in prompts]
        width = max(len(e) for e in encoded)
        last = np.array([len(e) - 1 for e in encoded])
        prompts = np.stack([np.pad(e, (0, width - len(e))) for e in encoded]).astype(np.int32)
    tokens, _ = check_inputs(prompts, config)
    check_params(params, config)
    b, n = tokens.shape
    precision = get_precision(precision)
    seeds = _int_list("seeds", seeds, 0, 2**32 - 1)
    lowest = 1 if kind == "freeze" else 0
    highest = config.n_layers - 1 if kind == "skip_attention" else config.n_layers
    layers = (np.arange(lowest, highest + 1) if layers is None
              else _int_list("layers", layers, lowest, highest))
    if kind == "angle":
        if isinstance(theta, bool) or not isinstance(theta, numbers.Real):
            raise TypeError(f"sweep: theta must be a number (radians), got {theta!r:.60}")
        if not np.isfinite(theta):
            raise ValueError(f"sweep: theta must be finite (radians), got {theta!r}")
    if window is not None and (isinstance(window, bool) or not isinstance(window, numbers.Integral)
                               or window < 1):
        raise ValueError(f"sweep: window must be a positive int (blocks), got {window!r:.60}")
    if answers is not None:
        answers = _int_list("answers", answers, 0, config.vocab_size - 1)
        if answers.shape != (b,):
            raise ValueError(f"sweep: answers must hold one token id per prompt ({b}), got "
                             f"{answers.size}")
    if not isinstance(exclude_bos, (bool, np.bool_)):
        raise TypeError(f"sweep: exclude_bos must be a bool, got {exclude_bos!r:.60}")
    last = np.full(b, n - 1) if last is None else last  # checked by build(...).check below

    def build(layer, key, last, clean_hidden, window=window):
        if kind == "random":
            return random(layer, key, exclude_bos=exclude_bos, window=window, last=last,
                          clean=clean_hidden)
        if kind == "shuffle":
            return shuffle(layer, key, exclude_bos=exclude_bos, last=last)
        if kind == "angle":
            return angle(layer, key, theta, exclude_bos=exclude_bos, last=last)
        if kind == "freeze":
            return freeze(layer, form=form, exclude_bos=exclude_bos, window=window, last=last,
                          clean=clean_hidden)
        return skip_attention(layer, window=window)

    # every k at once, before tracing (the windowed variants' clean stream is checked below)
    build(layers, jax.random.key(0), last, None, window=None).check(config, b, n)
    if form == "kv" and window is not None:
        raise ValueError("sweep: the windowed freeze is defined for form='faithful'")
    clean_run = traceable_forward(config, precision, logits="none")
    clean = jax.jit(clean_run)(params, tokens)
    clean_hidden = clean.hidden if window is not None else None

    build(layers, jax.random.key(0), last, clean_hidden).check(config, b, n)
    last_j = jnp.asarray(last, jnp.int32)
    clean_logp = _log_softmax(last_logits(params, config, clean.final, last_j))  # (b, v)
    if not bool(jnp.all(jnp.isfinite(clean_logp))):
        raise FloatingPointError(f"sweep: the clean run's logits are not finite under {precision}; "
                                 "KL and agreement against them would be meaningless")
    answers_j = jnp.zeros(b, jnp.int32) if answers is None else jnp.asarray(answers, jnp.int32)

    # Everything data-dependent is an argument, never a closed-over constant (XLA would try to
    # constant-fold reductions over a (b, vocab) array at compile time).
    @jax.jit
    def run_all(params, tokens, layers, seeds, clean_logp, last_j, answers_j, clean_hidden,
                clean_last):
        # params as they are: the forward stacks the layers for its scan, and XLA hoists that
        # copy out of the map (tests/test_layer_scan.py)
        def at_layer(layer):
            def at_seed(seed):
                intervention = build(layer, jax.random.key(seed), last_j, clean_hidden)
                final = clean_run(params, tokens, intervention=intervention).final
                logp = _log_softmax(last_logits(params, config, final, last_j))
                kl = jnp.sum(jnp.exp(clean_logp) * (clean_logp - logp), axis=-1)
                agree = jnp.argmax(logp, -1) == jnp.argmax(clean_logp, -1)
                p_answer = jnp.exp(jnp.take_along_axis(logp, answers_j[:, None], 1)[:, 0])
                y = jnp.take_along_axis(final, last_j[:, None, None], axis=1)[:, 0]  # (b, d)
                change = (jnp.linalg.norm(y - clean_last, axis=-1)
                          / jnp.linalg.norm(clean_last, axis=-1))
                return kl, agree, p_answer, change
            return jax.vmap(at_seed)(seeds)
        return jax.lax.map(at_layer, layers)

    clean_last = jnp.take_along_axis(clean.final, last_j[:, None, None], axis=1)[:, 0]
    kl, agree, p_answer, change = run_all(params, tokens, jnp.asarray(layers, jnp.int32),
                                          jnp.asarray(seeds, jnp.uint32), clean_logp, last_j,
                                          answers_j, clean_hidden, clean_last)
    clean_p = (None if answers is None else
               np.exp(np.take_along_axis(np.asarray(clean_logp), np.asarray(answers)[:, None],
                                         1)[:, 0]))
    return SweepResult(kind, layers, config.n_layers, np.asarray(kl), np.asarray(agree),
                       np.asarray(change), None if answers is None else np.asarray(p_answer), clean_p)


def _unpack(model):
    """(params, config) of a loaded model (.params, .config) or a (params, config) pair."""
    if hasattr(model, "params") and hasattr(model, "config"):
        params, config = model.params, model.config
    elif isinstance(model, (tuple, list)) and len(model) == 2:
        params, config = model
    else:
        raise TypeError(f"sweep: model must be a loaded model (.params, .config) or a (params, "
                        f"config) pair, got {type(model).__name__}")
    if not isinstance(config, ModelConfig):
        raise TypeError(f"sweep: model's config must be a ModelConfig, got {type(config).__name__}")
    return params, config


def _int_list(name: str, values, low: int, high: int) -> np.ndarray:
    """A non-empty 1-D list of ints in low..high."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"sweep: {name} must be a list of ints, got {values!r:.60}")
    values = values if isinstance(values, np.ndarray) else list(values)
    if any(isinstance(v, numbers.Integral) and not isinstance(v, bool)
           and not low <= v <= high for v in np.ravel(np.asarray(values, dtype=object))):
        raise ValueError(f"sweep: {name} must lie in {low}..{high}, got {values!r:.80}")
    try:
        array = np.asarray(values)
    except (TypeError, ValueError):
        raise TypeError(f"sweep: {name} must be a list of ints, got {values!r:.60}") from None
    if array.dtype.kind not in "iu" or array.ndim != 1:
        if array.size == 0:
            raise ValueError(f"sweep: {name} must hold at least one int, got an empty list")
        raise TypeError(f"sweep: {name} must be a 1-D list of ints, got {values!r:.60}")
    if array.size == 0:
        raise ValueError(f"sweep: {name} must hold at least one int, got an empty list")
    if array.min() < low or array.max() > high:
        raise ValueError(f"sweep: {name} must lie in {low}..{high}, got {array.tolist()!r:.80}")
    return array
