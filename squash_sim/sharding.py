"""Run a per-instance function over a batch of instances, vmapped and sharded over jax.devices().

    outputs = batched_map(fn, *inputs)     fn(*one instance's arrays) → a pytree of arrays

The leading axis of every input is the instance axis. It is padded (by repeating the
last instance) to a bucket — a power of two times the device count — so batches of similar sizes
share one compilation, laid out with NamedSharding over a 1-D mesh of every device ("batch"), and
`jax.vmap(fn)` runs under one jit: one CPU, a GPU or many devices run the same program, and XLA
splits the batch between them. Outputs come back as NumPy arrays without the padding.

Multi-host: call `jax.distributed.initialize()` in every process before the first use (see
docs/howto/verify.md); jax.devices() then lists every host's devices, and the same mesh spans them.
"""

from __future__ import annotations

import functools

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P


def bucket(size: int, multiple: int) -> int:
    """Smallest multiple·2^k ≥ size."""
    padded = multiple
    while padded < size:
        padded *= 2
    return padded


@functools.cache
def _mesh(device_count: int) -> Mesh:
    return Mesh(np.array(jax.devices()[:device_count]), ("batch",))


@functools.lru_cache(maxsize=256)
def _compiled(fn):
    return jax.jit(jax.vmap(fn))


def batched_map(fn, *inputs, devices: int | None = None):
    """vmap `fn` over the leading axis of `inputs` (pytrees), sharded over `devices` (default:
    all). `fn` must be hashable and stable (a module-level function or a cached partial) so the
    compiled program is reused."""
    leaves = jax.tree_util.tree_leaves(inputs)
    if not leaves:
        raise ValueError("batched_map: inputs has no arrays")
    size = leaves[0].shape[0]
    if size == 0 or any(leaf.shape[0] != size for leaf in leaves):
        raise ValueError(f"batched_map: every input needs the same non-zero leading (instance) "
                         f"size, got {[leaf.shape[:1] for leaf in leaves]}")
    count = devices or len(jax.devices())
    if not 1 <= count <= len(jax.devices()):
        raise ValueError(f"batched_map: devices must be in 1..{len(jax.devices())}, got {devices}")
    padded = bucket(size, count)
    sharding = NamedSharding(_mesh(count), P("batch"))

    def place(leaf):
        leaf = np.asarray(leaf)
        pad = np.repeat(leaf[-1:], padded - size, axis=0)  # repeat the last instance
        return jax.device_put(np.concatenate([leaf, pad]), sharding)

    outputs = _compiled(fn)(*jax.tree_util.tree_map(place, inputs))  # inputs: a tuple
    return jax.tree_util.tree_map(lambda out: np.asarray(out)[:size], outputs)
