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
            if position.ndim != 0:
                raise ValueError(f"{self.kind}: position must be one int for a forward pass, got "
                                 f"shape {position.shape}")
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
        if self.source is not None and np.ndim(self.source) == 2 and len(self.source) != batch:
            raise ValueError(f"inject: a batch of source states (b, d) needs b = {batch} (the "
                             f"prompts' batch), got shape {np.shape(self.source)}")
        if self.theta is not None and np.ndim(self.theta) != 0:
            raise ValueError(f"angle: theta must be one number for a forward pass, got shape "
                             f"{np.shape(self.theta)}")
        if self.key is not None and not _is_tracer(self.key) and _key_shape(self.key) != ():
            raise ValueError(f"{self.kind}: key must be one PRNG key for a forward pass, got a "
                             f"batch of shape {_key_shape(self.key)}")
        if self.window is not None and self.kind in ("random", "freeze"):
            if self.clean is None:
                raise ValueError(f"{self.kind}: a windowed intervention needs the clean stream "
                                 f"(clean=trace.hidden of an unmanipulated run)")
            expected = (batch, layers + 1, n, config.d_model)
            if tuple(np.shape(self.clean)) not in (expected, expected[1:]):
                raise ValueError(f"{self.kind}: clean must have shape {expected} (trace.hidden), "
                                 f"got {np.shape(self.clean)}")
            if not _is_tracer(self.clean) and not np.all(np.isfinite(np.asarray(self.clean))):
                raise ValueError(f"{self.kind}: clean (the restored stream) contains NaN or inf")

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

_INT32 = (-(2**31), 2**31 - 1)


def _is_tracer(value) -> bool:
    return isinstance(value, jax.core.Tracer)


def _int(name: str, value, kind: str, minimum: int = 0):
    """An int (or int array, for a sweep) >= minimum that fits the int32 it is stored in."""
    if _is_tracer(value):  # inside a sweep's vmap / lax.map: checked before
        return value
    try:
        array = np.asarray(value)
    except ValueError:  # ragged lists
        array = np.asarray(None)
    if isinstance(value, bool) or array.dtype.kind not in "iu":
        raise TypeError(f"{kind}: {name} must be an int (or an int array for a sweep), got "
                        f"{value!r:.80}")
    if array.size and (array.min() < minimum or array.max() > _INT32[1]):
        raise ValueError(f"{kind}: {name} must lie in {minimum}..{_INT32[1]}, got "
                         f"{array.tolist()!r:.80}")
    return jnp.asarray(array, jnp.int32)


def _real(name: str, value, kind: str):
    """A finite real number (or array of them); NaN or inf would make every output NaN."""
    if _is_tracer(value):
        return value
    try:
        array = np.asarray(value)
    except ValueError:
        array = np.asarray(None)
    if isinstance(value, (bool, str)) or array.dtype.kind not in "iuf":
        raise TypeError(f"{kind}: {name} must be a real number, got {type(value).__name__} "
                        f"{value!r:.80}")
    finite = np.isfinite(array)
    if not np.all(finite):
        got = (repr(array.item()) if array.ndim == 0 else
               f"{finite.size - int(finite.sum())} NaN/inf entries of {finite.size}")
        raise ValueError(f"{kind}: {name} must be finite, got {got}")
    if not jax.config.jax_enable_x64 and np.any(np.abs(array) > float(np.finfo(np.float32).max)):
        # it is stored as float32, where it would turn into inf (and every output into NaN)
        raise ValueError(f"{kind}: {name} must be finite in float32 (|{name}| <= 3.4e38), got "
                         f"{np.max(np.abs(array)):.3g}")
    return array


def _key_shape(key) -> tuple:
    """Batch shape of a PRNG key: typed keys (jax.random.key) or raw uint32 (jax.random.PRNGKey)."""
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return tuple(key.shape)
    return tuple(key.shape[:-1])


def _key(key, kind: str):
    if key is None:
        raise TypeError(f"{kind}: key is required (explicit PRNG key, e.g. jax.random.key(0))")
    dtype = getattr(key, "dtype", None)
    typed = dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)
    raw = dtype == np.uint32 and np.ndim(key) >= 1 and np.shape(key)[-1] == 2
    if not (typed or raw):
        raise TypeError(f"{kind}: key must be a PRNG key (e.g. jax.random.key(0)), got "
                        f"{type(key).__name__} {key!r:.60}")
    return key


def _flag(name: str, value, kind: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{kind}: {name} must be a bool, got {value!r:.60}")
    return bool(value)


def _common(kind, layer, position, window, last, clean, exclude_bos, **fields):
    return Intervention(
        kind=kind, layer=_int("layer", layer, kind, minimum=_INT32[0]),  # range: check()
        position=None if position is None else _int("position", position, kind, _INT32[0]),
        window=None if window is None else _int("window", window, kind, minimum=1),
        last=None if last is None else _int("last", last, kind, minimum=_INT32[0]),
        clean=None if clean is None else _state("clean", clean, kind),
        exclude_bos=_flag("exclude_bos", exclude_bos, kind), targets_one=position is not None,
        **fields)


def _state(name: str, value, kind: str):
    """Hidden states (source, clean): a real array, finite where concrete."""
    if _is_tracer(value):
        return value
    return jnp.asarray(_real(name, value, kind))


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
                   key=_key(key, "angle"),
                   theta=jnp.asarray(_real("theta", theta, "angle"), jnp.float32))


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
    if position is None:
        raise TypeError("inject: position is required (the one position written), got None")
    source = _state("source", source, "inject")
    if source.ndim not in (1, 2):
        raise ValueError(f"inject: source must be a state (d,) or (b, d), got shape {source.shape}")
    return _common("inject", layer, position, None, None, None, False, source=source)


def __getattr__(name: str):
    """`iv.sweep`, `iv.SweepResult`, `iv.last_logits` (documented here) live in analysis/sweep.py;
    imported lazily, since the sweep itself builds interventions."""
    if name in ("sweep", "SweepResult", "last_logits"):
        from squash_sim.analysis import sweep

        return getattr(sweep, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
