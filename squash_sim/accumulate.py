"""Accumulation models: the order and the width in which a reduction adds its terms.

A reduction Σ_{i<K} x_i in a simulated format F is a sequence of float32 additions, each rounded to
F (round_to). `Accumulation` picks the sequence. Below, F(·) is "round to F", x_0..x_{K−1} are the
terms in index order (already rounded to F: for a dot product x_i = F(a_i·b_i)).

    sequential   s ← F(s + x_i) for i = 0, 1, …, K−1, from s = 0. (squash_sim's original order.)
    pairwise     a fixed binary tree. S(x_0..x_{n−1}) = x_0 when n = 1, else
                 F(S(x_0..x_{h−1}) + S(x_h..x_{n−1})) with h the largest power of two below n.
                 Equivalently: pad to the next power of two P, add neighbours level by level
                 ((x0+x1), (x2+x3), …), and let a node whose right subtree is all padding pass its
                 left child through unchanged. Depth ⌈log₂ K⌉; Higham's error bound ~ log₂K·u.
                 The tree is built in chunks of terms, and an output too large for its
                 partial sums is summed in slices along an output axis: the same tree
                 for every output element either way.
    blocked      partial sums of `block` consecutive terms (the last block may be shorter), each
                 summed sequentially in the accumulator format, then promoted (exactly, when
                 `promote` is wider) and added sequentially, block 0 first, in `promote`:
                 p_b ← F(p_b + x_i) inside block b;  t ← P(t + p_b).  The hardware picture is the
                 tensor-core MMA with a narrow accumulator whose partial sums a kernel adds into
                 fp32 registers every N_C terms (docs/precision_hardware.md).
    kahan        compensated summation (Kahan 1965; Higham, Accuracy and Stability, Alg. 4.2), every
                 operation rounded to F: y ← F(x_i − c); t ← F(s + y); c ← F(F(t − s) − y); s ← t.
                 A term equal to ±0 leaves (s, c) unchanged: masked causal keys are exact zeros at the
                 end of a row, and skipping them keeps the one-pass prefix property (row j of a
                 length-N forward = the last row of a length-j forward). The result is s.

Arithmetic. Each operation is done in float32 and then rounded to F (floats.round_to, exact). For
formats with ≤ 11 significant bits that is the correctly rounded result; wider formats (e8m13; tf32
is fine) see float32 rounding first (the simulation's definition: the tests' references do the
same). XLA:CPU treats float32 subnormal operands as zero and flushes float32
subnormal results to (signed) zero; so does every reference in the tests, so bf16/e8m13/fp32
subnormal partial sums flush inside a reduction (fp16 and fp8 subnormals are normal float32).

Every mode gives the same bits under jit and eagerly (tested), and all four are exact functions of
the terms: no XLA reassociation can reach them (each partial sum goes through round_to).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax.numpy as jnp
import numpy as np
from jax import lax

from squash_sim import floats
from squash_sim.floats import FloatFormat, round_to

MODES = ("sequential", "pairwise", "blocked", "kahan")
CHUNK_ELEMENTS = 1 << 22  # pairwise/blocked materialise at most about this many terms at once
# The most chunk sums one pairwise reduction may hold at once; larger outputs are split. XLA
# keeps some of every layer's buffers alive (measured: a Gemma-sized forward at 1,061 tokens
# asked for 83 GB with a 4 GiB limit; a 4-layer d = 640 model needs 8.5 GiB at 4 GiB and
# 0.49 GiB at 256 MiB), so the limit is well below the machine's memory.
PAIRWISE_LIMIT_BYTES = 256 << 20


class TooLarge(ValueError):
    """A reduction whose working set this implementation cannot hold (raised at trace time,
    before any work)."""


@dataclasses.dataclass(frozen=True)
class Accumulation:
    """How one kind of reduction adds its terms (see the module docstring).

    mode     one of MODES
    format   the accumulator format; None → the Precision field of that reduction (`accumulation`
             for dot products and norms, `softmax` for the softmax sum)
    block    K, the terms per partial sum (blocked only)
    promote  the format partial sums are promoted to and added in (blocked only; default fp32)
    """

    mode: str = "sequential"
    format: FloatFormat | None = None
    block: int | None = None
    promote: FloatFormat | None = None

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"Accumulation: mode must be one of {MODES}, got {self.mode!r}")
        for field in ("format", "promote"):
            value = getattr(self, field)
            if isinstance(value, str):
                object.__setattr__(self, field, floats.get(value))
            elif value is not None and not isinstance(value, FloatFormat):
                raise TypeError(f"Accumulation: {field} must be a FloatFormat, a format name or "
                                f"None, got {value!r}")
        if self.mode == "blocked":
            if (isinstance(self.block, (bool, np.bool_))
                    or not isinstance(self.block, (int, np.integer)) or self.block < 1):
                raise ValueError(f"Accumulation: blocked needs block = a positive int, got "
                                 f"{self.block!r:.60}")
            object.__setattr__(self, "block", int(self.block))  # np.int64(4) → 4
            if self.promote is None:
                object.__setattr__(self, "promote", floats.FP32)
        elif self.block is not None or self.promote is not None:
            raise ValueError(f"Accumulation: block and promote belong to mode 'blocked', not "
                             f"{self.mode!r}")

    def __str__(self) -> str:
        if self.mode != "blocked":
            text = self.mode
            return text if self.format is None else f"{text}/{self.format}"
        inner = "" if self.format is None else f"/{self.format}"
        outer = "" if self.promote == floats.FP32 else f"/{self.promote}"
        if outer and not inner:
            inner = "/="
        return f"block{self.block}{inner}{outer}"


SEQUENTIAL = Accumulation()


# ---- the reductions -------------------------------------------------------------------------
# Each takes `operands`, arrays whose leading axis (length K) indexes the terms, and
# `terms(*slices)`, the already rounded terms of slices that keep a leading axis (a batch of terms:
# the operand itself for a sum, rounded products for a contraction), so that a dot product never
# materialises more than a chunk of its K·out products. → (*out)


@functools.lru_cache(maxsize=256)
def _sequential_step(terms, fmt):
    """The scan body of _sequential, one function object per (terms, fmt): op by op (outside
    jit) lax.scan then finds its traced body and compiled program in JAX's caches instead of
    compiling a scan per call (an eager Gemma bf16-pure forward: 14 scans a layer)."""
    def add(total, slices):
        return round_to(total + terms(*(s[None] for s in slices))[0], fmt), None

    return add


def _sequential(operands, terms, shape, dtype, fmt):
    total, _ = lax.scan(_sequential_step(terms, fmt), jnp.zeros(shape, dtype), operands)
    return total


@functools.lru_cache(maxsize=256)
def _kahan_step(terms, fmt):
    """The scan body of _kahan, one function object per (terms, fmt) (see _sequential_step)."""
    def add(state, slices):
        total, compensation = state
        term = terms(*(s[None] for s in slices))[0]
        y = round_to(term - compensation, fmt)
        t = round_to(total + y, fmt)
        new_compensation = round_to(round_to(t - total, fmt) - y, fmt)
        skip = term == 0  # masked keys: exact zeros leave the state alone (module docstring)
        return (jnp.where(skip, total, t), jnp.where(skip, compensation, new_compensation)), None

    return add


def _kahan(operands, terms, shape, dtype, fmt):
    zeros = jnp.zeros(shape, dtype)
    (total, _), _ = lax.scan(_kahan_step(terms, fmt), (zeros, zeros), operands)
    return total


def _tree(values, count, fmt):
    """Pairwise tree over values (P, *out), P a power of two, the first `count` real (an int or a
    traced int): a node whose right child starts at or past `count` passes its left child on."""
    size = values.shape[0]
    width = 1  # terms covered by each child at this level
    while size > 1:
        values = values.reshape(size // 2, 2, *values.shape[1:])
        left, right = values[:, 0], values[:, 1]
        starts = (2 * jnp.arange(size // 2) + 1) * width  # first term of each right child
        real = (starts < count).reshape(-1, *(1,) * (values.ndim - 2))
        values = jnp.where(real, round_to(left + right, fmt), left)
        size //= 2
        width *= 2
    return values[0]


def _pad_to(operands, length: int):
    """Zero-pad every operand's leading axis to `length` (padding terms are never added)."""
    return tuple(jnp.pad(o, [(0, length - o.shape[0])] + [(0, 0)] * (o.ndim - 1))
                 for o in operands)


def _pairwise_chunks(count: int, per_term: int, itemsize: int) -> tuple[int, int, int]:
    """(padded K, terms per chunk, bytes of partial sums held at once) for a pairwise reduction of
    `count` terms into an output of `per_term` elements."""
    padded = 1 << max(0, (count - 1).bit_length())
    chunk = min(padded, 1 << (max(1, CHUNK_ELEMENTS // per_term).bit_length() - 1))
    n_chunks = padded // chunk
    return padded, chunk, (n_chunks if n_chunks > 1 else chunk) * per_term * itemsize


def _pairwise(operands, terms, count, shape, dtype, fmt):
    per_term = max(1, math.prod(shape))
    padded, chunk, held = _pairwise_chunks(count, per_term, np.dtype(dtype).itemsize)
    n_chunks = padded // chunk
    if held > PAIRWISE_LIMIT_BYTES:
        # Outputs of more than CHUNK_ELEMENTS elements leave one term per chunk, and the tree of
        # chunk sums then holds all K of them; _pairwise_split slices such outputs when it can.
        raise TooLarge(f"pairwise accumulation of {count} terms into an output of {per_term:,} "
                       f"elements would hold {held / 2**30:.1f} GiB of partial sums (limit "
                       f"{PAIRWISE_LIMIT_BYTES / 2**20:,.0f} MiB) and no output axis can be split "
                       f"further; use sequential, blocked or kahan for a contraction this large")
    operands = _pad_to(operands, padded)
    if n_chunks == 1:
        return _tree(terms(*operands), count, fmt)
    # Chunk c covers terms c·chunk … (c+1)·chunk − 1: a subtree of the same tree. Chunks that start
    # past the end are all padding; the tree of chunk sums passes over them.
    chunks = tuple(o.reshape(n_chunks, chunk, *o.shape[1:]) for o in operands)

    def subtree(args):
        c, *slices = args
        return _tree(terms(*slices), jnp.clip(count - c * chunk, 0, chunk), fmt)

    sums = lax.map(subtree, (jnp.arange(n_chunks), *chunks))  # (n_chunks, *out)
    return _tree(sums, -(-count // chunk), fmt)


def _pairwise_split(operands, terms, count, shape, dtype, fmt, free_axes):
    """_pairwise, on slices of the output when its partial sums would not fit at once.

    free_axes: (operand index, operand axis, output axis) triples along which slicing one operand
    slices the output. The longest is cut into the fewest equal pieces that fit (zero-padded at
    the end; single slices, if even those do not fit, are split again along the next free axis),
    summed one after another (lax.map): every output element gets the same tree."""
    if math.prod(shape) == 0:
        return jnp.zeros(shape, dtype)  # an empty output: nothing to add
    itemsize = np.dtype(dtype).itemsize
    per_term = math.prod(shape)
    free_axes = tuple(free for free in free_axes if shape[free[2]] > 1)  # what can still be cut
    if _pairwise_chunks(count, per_term, itemsize)[2] <= PAIRWISE_LIMIT_BYTES or not free_axes:
        return _pairwise(operands, terms, count, shape, dtype, fmt)  # (TooLarge if it must)
    chosen = max(free_axes, key=lambda free: shape[free[2]])
    index, axis, out_axis = chosen
    length = shape[out_axis]
    for pieces in range(2, length + 1):
        step = -(-length // pieces)
        if _pairwise_chunks(count, per_term // length * step, itemsize)[2] <= PAIRWISE_LIMIT_BYTES:
            break
    step = -(-length // pieces)
    others = tuple(free for free in free_axes if free != chosen)
    cut = operands[index]
    cut = jnp.pad(cut, [(0, 0)] * axis + [(0, pieces * step - length)]
                  + [(0, 0)] * (cut.ndim - axis - 1))
    cut = cut.reshape(*cut.shape[:axis], pieces, step, *cut.shape[axis + 1:])
    cut = jnp.moveaxis(cut, axis, 0)  # (pieces, K, …, step, …)
    piece_shape = (*shape[:out_axis], step, *shape[out_axis + 1:])

    def one_piece(piece):
        sliced = operands[:index] + (piece,) + operands[index + 1:]
        return _pairwise_split(sliced, terms, count, piece_shape, dtype, fmt, others)

    out = jnp.moveaxis(lax.map(one_piece, cut), 0, out_axis)  # (…, pieces, step, …)
    out = out.reshape(*shape[:out_axis], pieces * step, *shape[out_axis + 1:])
    return lax.slice_in_dim(out, 0, length, axis=out_axis)


def _blocked(operands, terms, count, shape, dtype, fmt, block: int, promote):
    block = min(block, count)
    n_blocks = -(-count // block)
    operands = _pad_to(operands, n_blocks * block)
    blocks = tuple(o.reshape(n_blocks, block, *o.shape[1:]) for o in operands)  # (nb, K, ...)

    # Block by block (the carries stay out-sized, cache-resident): K sequential additions in fmt,
    # then the partial sum, promoted (exact when `promote` is wider), added to the total.
    def one_block(total, args):
        b, *block_operands = args

        def add(partial, step):
            j, *slices = step
            real = b * block + j < count  # the last block may be shorter
            new = round_to(partial + terms(*(s[None] for s in slices))[0], fmt)
            return jnp.where(real, new, partial), None

        partial, _ = lax.scan(add, jnp.zeros(shape, dtype), (jnp.arange(block), *block_operands))
        return round_to(total + round_to(partial, promote), promote), None

    total, _ = lax.scan(one_block, jnp.zeros(shape, dtype), (jnp.arange(n_blocks), *blocks))
    return total


def reduce(operands, terms, shape, dtype, fmt: FloatFormat, how: Accumulation, free_axes=()):
    """Σ over the operands' leading axis of terms(...) in fmt (or how.format) by the model `how`.
    free_axes: where pairwise may slice the output (_pairwise_split)."""
    fmt = how.format or fmt
    count = operands[0].shape[0]
    if count == 0:
        return jnp.zeros(shape, dtype)
    if how.mode == "sequential":
        return _sequential(operands, terms, shape, dtype, fmt)
    if how.mode == "kahan":
        return _kahan(operands, terms, shape, dtype, fmt)
    if how.mode == "pairwise":
        return _pairwise_split(operands, terms, count, shape, dtype, fmt, free_axes)
    return _blocked(operands, terms, count, shape, dtype, fmt, how.block, how.promote)


def _as_given(terms):  # a sum's terms are its operand's slices
    return terms


def accumulated_sum(x, axis: int, fmt: FloatFormat, how: Accumulation = SEQUENTIAL,
                    keepdims: bool = False):
    """Σ over `axis` of x by the model `how`, partial sums in fmt (or how.format)."""
    xs = jnp.moveaxis(x, axis, 0)  # (K, *rest): added as given (the caller stores them rounded)
    free_axes = tuple((0, 1 + i, i) for i in range(xs.ndim - 1))
    total = reduce((xs,), _as_given, xs.shape[1:], x.dtype, fmt, how, free_axes)
    return jnp.expand_dims(total, axis) if keepdims else total


@functools.lru_cache(maxsize=256)
def _products(term_spec: str, fmt: FloatFormat):
    """terms(a_i, b_i) = fmt(a_i · b_i) per term, one function object per (spec, fmt) (see
    _sequential_step)."""
    def terms(a_i, b_i):
        return round_to(jnp.einsum(term_spec, a_i, b_i), fmt)

    return terms


def accumulated_einsum(spec: str, a, b, fmt: FloatFormat, how: Accumulation = SEQUENTIAL):
    """einsum whose contraction is a reduction by `how`: the contracted axes are flattened in the
    order they appear in `a` (k = 0, 1, …, K−1) and term k is fmt(a_k · b_k)."""
    fmt = how.format or fmt
    inputs, out = spec.replace(" ", "").split("->")
    sa, sb = inputs.split(",")
    contracted = [c for c in sa if c in sb and c not in out]
    if not contracted:
        return round_to(jnp.einsum(spec, a, b), fmt)
    rest_a = "".join(c for c in sa if c not in contracted)
    rest_b = "".join(c for c in sb if c not in contracted)
    # Contracted axes to the front, flattened: a (K, *rest_a), b (K, *rest_b).
    a_k = jnp.transpose(a, [sa.index(c) for c in contracted] + [sa.index(c) for c in rest_a])
    b_k = jnp.transpose(b, [sb.index(c) for c in contracted] + [sb.index(c) for c in rest_b])
    count = math.prod(a.shape[sa.index(c)] for c in contracted)
    a_k = a_k.reshape(count, *a_k.shape[len(contracted):])
    b_k = b_k.reshape(count, *b_k.shape[len(contracted):])
    index = "z" if "z" not in spec else next(c for c in "ZYXWV" if c not in spec)
    term_spec = f"{index}{rest_a},{index}{rest_b}->{index}{out}"  # a product per term, no sum

    terms = _products(term_spec, fmt)
    shape = jnp.einsum(f"{rest_a},{rest_b}->{out}", a_k[0], b_k[0]).shape
    # Output axes owned by one operand: slicing that operand slices the output (pairwise's split).
    free_axes = tuple((0, 1 + rest_a.index(c), out.index(c)) if c in rest_a
                      else (1, 1 + rest_b.index(c), out.index(c))
                      for c in out if (c in rest_a) != (c in rest_b))
    return reduce((a_k, b_k), terms, shape, jnp.result_type(a, b), fmt, how, free_axes)
