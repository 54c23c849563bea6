"""The layer scan (issue 26): forward's blocks as one lax.scan give the bits of the unrolled loop,
the reference kept as forward(..., scan_layers=False), with everything that touches layers.

Each comparison is bit for bit: the scanned body runs the same operations on the same values (one
step's p layers, static windows and RoPE bases), so XLA has nothing to reassociate. The real
models' parity (Gemma 3 270M, SmolLM2-135M) rides in test_gemma.py / test_real_models.py, whose
fixtures already load them; jit, vmap, grad and sharding through the scan in test_model_citizen.py."""

import io
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from squash_sim import interventions as iv
from squash_sim import presets
from squash_sim.model import (
    forward,
    init_params,
    layer_period,
    scans,
    stack_layers,
    traceable_forward,
)

# Gemma-like: local (window 8, RoPE base 10⁴) and global layers alternate, and five layers leave a
# remainder: two scan steps of two layers, then one layer unrolled.
CONFIG = presets.get("tiny").replace(n_layers=5, sliding_window=(8, None, 8, None, 8),
                                     rope_base=1e6, rope_base_local=1e4, d_model=32, n_heads=2)
PARAMS = init_params(CONFIG, jax.random.key(0))
TOKENS = np.arange(16) % 251


def assert_same_bits(a, b):
    leaves_a, tree_a = jax.tree_util.tree_flatten(a)
    leaves_b, tree_b = jax.tree_util.tree_flatten(b)
    assert tree_a == tree_b
    for x, y in zip(leaves_a, leaves_b, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_the_stack_is_cut_where_layers_repeat():
    assert layer_period(CONFIG) == 2 and scans(CONFIG, True) and not scans(CONFIG, False)
    assert layer_period(presets.get("gemma3-270m")) == 6
    assert layer_period(presets.get("tiny").replace(n_layers=30)) == 1
    assert not scans(presets.get("tiny"), True)  # 2 layers: unrolled, as cheap to compile
    stacked = stack_layers(PARAMS["layers"], CONFIG)
    assert stacked.blocks["wq"].shape == (2, 2, *PARAMS["layers"][0]["wq"].shape)
    np.testing.assert_array_equal(stacked.blocks["wq"][1, 0], PARAMS["layers"][2]["wq"])
    assert len(stacked.rest) == 1 and stacked.rest[0]["wq"] is PARAMS["layers"][4]["wq"]
    jaxpr = str(jax.make_jaxpr(traceable_forward(CONFIG))(PARAMS, jnp.asarray(TOKENS[None])))
    assert "scan" in jaxpr  # the mutant: a forward that ignored scan_layers fails here
    unrolled = traceable_forward(CONFIG, scan_layers=False)
    assert "scan[" not in str(jax.make_jaxpr(unrolled)(PARAMS, jnp.asarray(TOKENS[None])))


@pytest.mark.parametrize("precision, options", [
    # every output at once on the dense path
    ("fp32", dict(cache=True, numerics=True, return_attention=True)),
    ("bf16", dict(logits="last")),
    # long-sequence paths: banded local layers, query-blocked global ones (ordered sums)
    ("bf16-pure", dict(dense_max_len=8, attention_block=4)),
])
def test_scanned_forward_gives_the_unrolled_bits(precision, options):
    scanned = forward(PARAMS, TOKENS, CONFIG, precision, **options)
    unrolled = forward(PARAMS, TOKENS, CONFIG, precision, scan_layers=False, **options)
    assert_same_bits(scanned, unrolled)
    hidden = np.asarray(scanned.hidden)
    assert all(not np.array_equal(hidden[i], hidden[i + 1]) for i in range(CONFIG.n_layers))
    if options.get("cache"):
        assert scanned.cache["q"].shape == (CONFIG.n_layers, 16, 2, CONFIG.d_head)
        assert scanned.health.nonfinite.shape == (CONFIG.n_layers + 2, 16)


def test_an_intervention_gives_the_unrolled_bits():
    """Windowed: the block index j is traced in the scan (fold_in, clean[:, j], the window's
    ends). Sweeps, which vmap over k (the carried state batched), run on the scanned Gemma in
    test_gemma.py (the capital set's identities); vmapped matmuls are laid out differently in the
    scan's body than in the loop, so a vmapped sweep agrees with the unrolled one to float32
    rounding (measured 2e-6), not bit for bit."""
    clean = forward(PARAMS, TOKENS, CONFIG, "bf16", logits="last").hidden  # a program compiled above
    runs = [forward(PARAMS, TOKENS, CONFIG, intervention=iv.random(
        2, jax.random.key(1), window=2, clean=clean), scan_layers=scan) for scan in (True, False)]
    assert_same_bits(*runs)
    assert not np.array_equal(runs[0].hidden[3], clean[3])  # it did intervene


def _concatenates_outside_loops(program, *args) -> int:
    """Concatenates (the layer stack makes one per parameter) in the compiled program outside
    every while loop's body and what that body calls."""
    hlo = program.lower(*args).compile().as_text()
    computations = {m.group(1): text for text in re.split(r"\n(?=\S)", hlo)
                    if (m := re.match(r"(?:ENTRY )?%(\S+)", text))}
    pending, in_loops = re.findall(r"body=%([\w.\-]+)", hlo), set()
    while pending:
        name = pending.pop()
        if name not in in_loops and name in computations:
            in_loops.add(name)
            pending += re.findall(r"(?:calls|body|condition|to_apply)=%([\w.\-]+)",
                                  computations[name])
    return sum(text.count("concatenate(") for name, text in computations.items()
               if name not in in_loops)


def test_a_callers_loop_stacks_the_layers_once_outside_it():
    """A caller's jitted loop over the forward (the capital set's lax.map over k) passes the
    params as they are, never stacked_params: _forward stacks them inside the trace, and XLA
    hoists that loop-invariant copy out of the loop (measured at SmolLM2's size too: the same
    11 concatenates, 2 of them in the loop, with or without stacked_params first). The mutant,
    a stack of arrays that change inside the loop, is made in every iteration."""
    config = presets.get("tiny").replace(n_layers=4, d_model=8, n_heads=1, d_ff=8)
    params, tokens = init_params(config, jax.random.key(0)), jnp.asarray(TOKENS[None, :2])
    run = traceable_forward(config, logits="none")
    sweep = jax.jit(lambda params, tokens: lax.map(
        lambda k: run(params, tokens).final.sum() * k, jnp.arange(2.0)))
    assert _concatenates_outside_loops(sweep, params, tokens) >= len(
        jax.tree.leaves(params["layers"][0]))  # each parameter's stack
    mutant = jax.jit(lambda ws: lax.map(lambda k: jnp.stack([w * k for w in ws]).sum(),
                                        jnp.arange(2.0)))
    assert _concatenates_outside_loops(mutant, [jnp.ones(3)] * 4) == 0


def test_a_long_compile_is_announced_before_and_timed_after():
    from squash_sim import compiling
    from squash_sim.precision import get

    out = io.StringIO()
    with compiling.notice("a long one", 12.0, stream=out):
        jax.jit(lambda x: x * 3 + 1)(jnp.arange(5)).block_until_ready()  # a fresh program
    before, after = out.getvalue().splitlines()
    assert before.startswith("squash-sim: compiling a long one (about 12 s")
    assert after.startswith("squash-sim: a long one: compiled in ")
    # XLA's own event: at least one program counted (a trivial one compiles in well under 0.05 s
    # on an idle machine, which prints as "0.0 s", so the seconds are only bounded above)
    assert 0 <= float(after.split("compiled in ")[1].split(" s")[0]) < 12
    assert int(after.split(" s (")[1].split(" XLA program")[0]) >= 1
    quiet = io.StringIO()
    with compiling.notice("a short one", 5.0, stream=quiet):  # under the threshold: silent
        jax.jit(lambda x: x * 5 + 2)(jnp.arange(5)).block_until_ready()
    assert quiet.getvalue() == ""
    gemma = presets.get("gemma3-270m")
    assert compiling.estimate(gemma, get("bf16-pure")) > compiling.estimate(gemma, get("bf16"))
    assert compiling.estimate(CONFIG, get("fp32")) is None


def test_a_notice_counts_its_own_threads_compiles_once_and_leaves_one_listener():
    """Nested notices each print one line counting the compile; a notice open in another thread
    counts nothing of it; however many notices ran, the process holds one listener."""
    import threading

    from jax._src import monitoring

    from squash_sim import compiling

    outer, inner, other = io.StringIO(), io.StringIO(), io.StringIO()
    opened, done = threading.Event(), threading.Event()

    def elsewhere():
        with compiling.notice("elsewhere", threshold_s=-1, stream=other):
            opened.set()
            done.wait(60)

    thread = threading.Thread(target=elsewhere)
    thread.start()
    opened.wait(60)
    with compiling.notice("outer", threshold_s=-1, stream=outer):
        with compiling.notice("inner", threshold_s=-1, stream=inner):
            jax.jit(lambda x: x * 7 - 2)(jnp.arange(6)).block_until_ready()  # a fresh program
    done.set()
    thread.join()
    lines = [out.getvalue().splitlines() for out in (outer, inner, other)]
    assert [len(line) for line in lines] == [1, 1, 1]
    programs = [int(line[0].split(" s (")[1].split(" XLA program")[0]) for line in lines]
    assert programs[0] == programs[1] >= 1 and programs[2] == 0
    assert monitoring._event_duration_secs_listeners.count(compiling._listener) == 1
