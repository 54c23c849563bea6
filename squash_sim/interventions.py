"""Hidden-state interventions of "Attend First, Consolidate Later" (../shared/spec/interventions.md)
as pure functions of the residual stream, jit- and vmap-compatible.

Layer indexing (the spec's): h[j], j = 0..L, is the residual stream ENTERING block j — h[0] the
embeddings after any scaling, h[L] the output of the last block before the final norm. "Layer k"
means block-input index k. An intervention at layer k acts on h[k] (and, for freeze and
skip_attention, on every later block).

Manipulated positions P: by default every position except the last (BOS included);
`exclude_bos=True` spares position 0; `position=p` targets p alone. With batched, right-padded
prompts give `last` (b,) — the index of each prompt's last real token: P is then j < last.

    from squash_sim import interventions as iv
    trace = forward(params, tokens, config, intervention=iv.random(layer=3, key=jax.random.key(0)))

Every field that varies across a sweep (layer, key, angle, source state, position, window) is an
array leaf, so `jax.vmap` over e.g. the layer runs a whole k-sweep as one compiled program:
`sweep(model, prompts, kind="freeze")`. Each intervention is validated against the config and
sequence before tracing.

Generation: only single forward passes are supported (no cached decoding), i.e. the reference
code's semantics for the next token after the prompt.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from squash_sim.config import ModelConfig

KINDS = ("random", "shuffle", "angle", "freeze", "skip_attention", "inject")


@functools.partial(jax.tree_util.register_dataclass,
                   data_fields=["layer", "key", "theta", "source", "position", "window", "last",
                                "clean"],
                   meta_fields=["kind", "form", "exclude_bos", "targets_one"])
@dataclasses.dataclass(frozen=True)
class Intervention:
    """One intervention; build it with random / shuffle / angle / freeze / skip_attention /
    inject. Array fields may carry a leading batch axis under vmap."""

    kind: str
    layer: jax.Array  # int: block-input index k
    key: jax.Array | None = None  # PRNG key (random, shuffle, angle)
    theta: jax.Array | None = None  # angle
    source: jax.Array | None = None  # (d,) or (b, d): the state written by inject
    position: jax.Array | None = None  # int: the one targeted position (inject, position=)
    window: jax.Array | None = None  # int: blocks [k, k + w) then clean states restored
    last: jax.Array | None = None  # (b,) index of each prompt's last token (default n − 1)
    clean: jax.Array | None = None  # (b, L+1, n, d) clean stream, needed by windowed variants
    form: str = "faithful"  # freeze: "faithful" (overwrite h) or "kv" (override keys/values)
    exclude_bos: bool = False
    targets_one: bool = False  # P = {position} instead of "all but the last"

    # -- checks, before anything is traced -----------------------------------------------------
    def check(self, config: ModelConfig, batch: int, n: int) -> None:
        layers = config.n_layers
        lowest = 1 if self.kind == "freeze" else 0
        highest = layers - 1 if self.kind == "skip_attention" else layers
        layer = np.asarray(self.layer)
        if layer.dtype.kind not in "iu" or layer.size == 0:
            raise TypeError(f"{self.kind}: layer must be an int (block-input index), got "
                            f"{self.layer!r}")
        if layer.min() < lowest or layer.max() > highest:
            raise ValueError(f"{self.kind}: layer must lie in {lowest}..{highest} for a model of "
                             f"{layers} layers (h[k] enters block k), got {layer.tolist()}")
        if self.position is not None:
            position = np.asarray(self.position)
            if position.min() < 0 or position.max() >= n:
                raise ValueError(f"{self.kind}: position must lie in 0..{n - 1} (the sequence has "
                                 f"{n} positions), got {position.tolist()}")
        if self.last is not None:
            last = np.asarray(self.last)
            if last.shape != (batch,) or last.min() < 0 or last.max() >= n:
                raise ValueError(f"{self.kind}: last must be ({batch},) indices in 0..{n - 1}, "
                                 f"got {last.tolist()}")
        if self.source is not None and np.shape(self.source)[-1] != config.d_model:
            raise ValueError(f"inject: the source state must have width d_model = "
                             f"{config.d_model}, got shape {np.shape(self.source)}")
        if self.window is not None and self.kind in ("random", "freeze"):
            if self.clean is None:
                raise ValueError(f"{self.kind}: a windowed intervention needs the clean stream "
                                 f"(clean=trace.hidden of an unmanipulated run)")
            expected = (batch, layers + 1, n, config.d_model)
            if tuple(np.shape(self.clean)) not in (expected, expected[1:]):
                raise ValueError(f"{self.kind}: clean must have shape {expected} (trace.hidden), "
                                 f"got {np.shape(self.clean)}")

    # -- the hook the model calls -------------------------------------------------------------
    def start(self, h):
        """State carried through the blocks: freeze's saved h[k−1] (starts as h[0])."""
        return h if self.kind == "freeze" else None

    def _targets(self, h):
        """P as a (b, n, 1) bool mask."""
        b, n, _ = h.shape
        positions = jnp.arange(n)
        if self.targets_one:
            mask = jnp.broadcast_to(positions == self.position, (b, n))
        else:
            last = jnp.full((b,), n - 1) if self.last is None else self.last
            mask = positions[None, :] < last[:, None]
            if self.exclude_bos:
                mask = mask & (positions[None, :] > 0)
        return mask[..., None]

    def _active(self, j):
        """Whether block input j is manipulated (k ≤ j, and j < k + w when windowed)."""
        active = j >= self.layer
        if self.window is not None:
            active = active & (j < self.layer + self.window)
        return active

    def _restore(self, j, h, targets):
        """Windowed variants: at j = k + w the clean states come back at P."""
        if self.window is None:
            return h
        clean = self.clean if self.clean.ndim == 4 else self.clean[None]
        clean_j = jnp.broadcast_to(clean[:, j], h.shape).astype(h.dtype)
        return jnp.where((j == self.layer + self.window) & targets, clean_j, h)

    def before_block(self, j: int, h, state):
        """→ (h to use, keys/values source or None, skip-attention flag or None, state)"""
        targets = self._targets(h)
        if self.kind == "freeze":
            saved = jnp.where(j == self.layer - 1, h, state)  # h[k−1], kept once reached
            active = self._active(j) & targets
            frozen = jnp.where(active, saved, h)
            if self.form == "kv":  # keys/values from h[k−1] at P; the stream itself runs on
                return h, frozen, None, saved
            return self._restore(j, frozen, targets), None, None, saved
        if self.kind == "skip_attention":
            return h, None, self._active(j), state
        if self.kind == "inject":
            source = jnp.broadcast_to(self.source, (h.shape[0], h.shape[2])).astype(h.dtype)
            at = (j == self.layer) & targets
            return jnp.where(at, source[:, None, :], h), None, None, state
        # random, shuffle, angle: a fresh draw per (call, block, position)
        key = jax.random.fold_in(self.key, j)
        new = {"random": _random_like, "shuffle": _shuffle, "angle": self._rotate}[self.kind](h, key)
        at = (self._active(j) if self.window is not None else j == self.layer) & targets
        return self._restore(j, jnp.where(at, new, h), targets), None, None, state

    def _rotate(self, h, key):
        return _angle(h, key, self.theta)


def _normal(key, shape, dtype):
    """N(0, 1) draws, fenced off: fused with its consumers under jit, XLA evaluates the normal's
    polynomial differently than eager (last-bit differences); the barrier keeps them the same."""
    return jax.lax.optimization_barrier(jax.random.normal(key, shape, dtype))


def _random_like(h, key):
    """r ~ N(0, I) per position, rescaled to ‖h_p‖₂."""
    r = _normal(key, h.shape, h.dtype)
    return r * jnp.sqrt(_squared_norm(h) / _squared_norm(r))


def _squared_norm(x):
    """Σ x² over features as a dot product: XLA:CPU fuses a reduce into its neighbours under jit
    (changing its summation order), never a dot, so jit and eager give the same bits."""
    return jnp.einsum("...d,...d->...", x, x, precision=jax.lax.Precision.HIGHEST)[..., None]


def _shuffle(h, key):
    """A random permutation of the coordinates of each position (norm and values kept)."""
    order = jnp.argsort(jax.random.uniform(key, h.shape), axis=-1)
    return jnp.take_along_axis(h, order, axis=-1)


def _angle(h, key, theta):
    """cos θ·u + sin θ·r⊥, r⊥ ⟂ u with ‖r⊥‖ = ‖u‖ (u = h_p)."""
    r = _normal(key, h.shape, h.dtype)
    u_sq = _squared_norm(h)
    dot = jnp.einsum("...d,...d->...", r, h, precision=jax.lax.Precision.HIGHEST)[..., None]
    r_perp = r - dot / u_sq * h
    r_perp = r_perp * jnp.sqrt(u_sq / _squared_norm(r_perp))
    return jnp.cos(theta) * h + jnp.sin(theta) * r_perp


# -- constructors -------------------------------------------------------------------------------

def _int(name: str, value, kind: str):
    if isinstance(value, jax.core.Tracer):  # inside a sweep's vmap / lax.map: checked before
        return value
    array = np.asarray(value)
    if isinstance(value, bool) or array.dtype.kind not in "iu":
        raise TypeError(f"{kind}: {name} must be an int (or an int array for a sweep), got "
                        f"{value!r}")
    return jnp.asarray(array, jnp.int32)


def _key(key, kind: str):
    if key is None:
        raise TypeError(f"{kind}: key is required (explicit PRNG key, e.g. jax.random.key(0))")
    return key


def _common(kind, layer, position, window, last, clean, exclude_bos, **fields):
    return Intervention(
        kind=kind, layer=_int("layer", layer, kind),
        position=None if position is None else _int("position", position, kind),
        window=None if window is None else _int("window", window, kind),
        last=None if last is None else _int("last", last, kind),
        clean=None if clean is None else jnp.asarray(clean),
        exclude_bos=bool(exclude_bos), targets_one=position is not None, **fields)


def random(layer, key, *, position=None, exclude_bos=False, window=None, last=None, clean=None):
    """h[k][p] ← r·‖h[k][p]‖/‖r‖, r ~ N(0, I), for p in P (windowed: every block in [k, k+w),
    fresh draws, then clean states restored at k + w)."""
    return _common("random", layer, position, window, last, clean, exclude_bos,
                   key=_key(key, "random"))


def shuffle(layer, key, *, position=None, exclude_bos=False, last=None):
    """Permute the coordinates of h[k][p] for p in P."""
    return _common("shuffle", layer, position, None, last, None, exclude_bos,
                   key=_key(key, "shuffle"))


def angle(layer, key, theta, *, position=None, exclude_bos=False, last=None):
    """h[k][p] ← cos θ·u + sin θ·r⊥ (u = h[k][p], r⊥ ⟂ u, ‖r⊥‖ = ‖u‖)."""
    return _common("angle", layer, position, None, last, None, exclude_bos,
                   key=_key(key, "angle"), theta=jnp.asarray(theta, jnp.float32))


def freeze(layer, *, form="faithful", position=None, exclude_bos=False, window=None, last=None,
           clean=None):
    """Save h[k−1][P]; before every block j ≥ k overwrite h[j][P] with it (k ≥ 1).
    form="kv": blocks j ≥ k compute keys/values at P from h[k−1][P] instead (same last-position
    output, cheaper in a cached implementation). Windowed: blocks [k, k+w), then clean restored."""
    if form not in ("faithful", "kv"):
        raise ValueError(f"freeze: form must be 'faithful' or 'kv', got {form!r}")
    if form == "kv" and window is not None:
        raise ValueError("freeze: the windowed variant is defined for form='faithful'")
    return _common("freeze", layer, position, window, last, clean, exclude_bos, form=form)


def skip_attention(layer, *, window=None):
    """Blocks j ≥ k (j < k + w when windowed) skip their whole attention branch."""
    return _common("skip_attention", layer, None, window, None, None, False)


def inject(layer, source, position):
    """Write `source` (d,) or (b, d) — e.g. h[k][src_pos] of another prompt's clean run — into
    h[k][position]; nothing else is touched."""
    source = jnp.asarray(source)
    if source.ndim not in (1, 2):
        raise ValueError(f"inject: source must be a state (d,) or (b, d), got shape {source.shape}")
    return _common("inject", layer, position, None, None, None, False, source=source)


# -- sweeps and metrics -------------------------------------------------------------------------

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
    params, config = (model.params, model.config) if hasattr(model, "params") else model
    if isinstance(prompts, (list, tuple)) and prompts and isinstance(prompts[0], str):
        if not hasattr(model, "encode"):
            raise TypeError("sweep: text prompts need a model with a tokenizer (.encode)")
        encoded = [model.encode(p) for p in prompts]
        width = max(len(e) for e in encoded)
        last = np.array([len(e) - 1 for e in encoded])
        prompts = np.stack([np.pad(e, (0, width - len(e))) for e in encoded]).astype(np.int32)
    tokens = prompts
    from squash_sim.model import check_inputs, check_params, traceable_forward

    if kind not in KINDS or kind == "inject":
        raise ValueError(f"sweep: kind must be one of {[k for k in KINDS if k != 'inject']} "
                         f"(inject has its own experiment), got {kind!r}")
    if not config.takes_tokens:
        raise ValueError("sweep: the model must take token ids (metrics read its logits)")
    if window is not None and kind not in ("random", "freeze", "skip_attention"):
        raise ValueError(f"sweep: window applies to random, freeze and skip_attention, not {kind}")
    tokens, _ = check_inputs(tokens, config)
    check_params(params, config)
    b, n = tokens.shape
    last = np.full(b, n - 1) if last is None else np.asarray(last)
    lowest = 1 if kind == "freeze" else 0
    highest = config.n_layers - 1 if kind == "skip_attention" else config.n_layers
    layers = np.arange(lowest, highest + 1) if layers is None else np.asarray(list(layers))
    seeds = np.asarray(list(seeds))
    clean_run = traceable_forward(config, precision, logits="none")
    clean = jax.jit(clean_run)(params, tokens)
    clean_hidden = clean.hidden if window is not None else None

    def build(layer, key, last, clean_hidden):
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

    # every k at once, before tracing
    build(layers, jax.random.key(0), last, clean_hidden).check(config, b, n)
    last_j = jnp.asarray(last, jnp.int32)
    clean_logp = _log_softmax(last_logits(params, config, clean.final, last_j))  # (b, v)
    answers_j = jnp.zeros(b, jnp.int32) if answers is None else jnp.asarray(answers, jnp.int32)

    # Everything data-dependent is an argument, never a closed-over constant (XLA would try to
    # constant-fold reductions over a (b, vocab) array at compile time).
    @jax.jit
    def run_all(params, tokens, layers, seeds, clean_logp, last_j, answers_j, clean_hidden,
                clean_last):
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
