"""The paper's behavioural tasks on a real LLM (theory.md §4): copying the first vs the last digit,
and counting, with few-shot prompts (Gemma 3 270M is a base model and SmolLM2-135M-Instruct a small
one: each task is shown by three worked examples first, the same text for every model).

    copy      "0 1 1 … 1" → first digit / "1 … 1 0" → last digit (and the same with 0 and 1 swapped,
              so that always answering the majority digit scores 50 %, not 100 %)
    count     n digits, each 1 with probability 0.7 (and the all-ones string): the answer after
              "Answer:", read greedily digit by digit

Digits and spaces are single tokens in both models' vocabularies, so "0 1 1" is five tokens.
Prompts of one n have the same length and run as one batch; greedy decoding writes into a
right-padded buffer (a causal model never looks right, so the padding changes nothing) and reads
each prompt's next-token logits at its own position: one compiled program per n, whatever the
answers' lengths.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from squash_sim import checks
from squash_sim.analysis.sweep import last_logits
from squash_sim.model import stacked_params, traceable_forward

COPY_N = (10, 50, 100, 200, 400, 800)
COUNT_N = (5, 10, 20, 50, 100, 200)


def _digits(bits) -> str:
    return " ".join(str(int(b)) for b in bits)


def copy_prompt(which: str, sequence: str) -> str:
    shots = ["1 0 0 0", "0 1 1 1 1 1", "1 1 0 1"] if which == "first" else \
        ["0 0 0 1", "1 1 1 1 1 0", "1 0 1 1"]
    lines = [f"Sequence: {s}\n{which.capitalize()} digit: {s.split()[0 if which == 'first' else -1]}"
             for s in shots]
    return "\n\n".join(lines + [f"Sequence: {sequence}\n{which.capitalize()} digit:"])


def count_prompt(sequence: str) -> str:
    shots = ["1 0 1 1", "1 1 1 0 1 1 0 1", "0 1 1 1 1 1 1 1 1 1 1 1 0"]
    lines = [f"Sequence: {s}\nNumber of ones: {s.split().count('1')}" for s in shots]
    return "\n\n".join(lines + [f"Sequence: {sequence}\nNumber of ones:"])


def greedy(model, prompts: list[str], steps: int, precision="fp32",
           until=None) -> list[list[int]]:
    """Greedy continuation of equal-length prompts, `steps` tokens each (fewer where
    `until(continuations)` is true after a step: each step is its own forward, so stopping
    changes no token). → token ids per prompt"""
    checks.loaded_model("greedy", "model", model)
    if isinstance(prompts, str) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise TypeError(f"greedy: prompts must be a non-empty list of strings, got {prompts!r:.60}")
    checks.integer("greedy", "steps", steps, 1, 4096)
    ids = np.stack([model.encode(p) for p in prompts]).astype(np.int32)  # (b, n)
    b, n = ids.shape
    buffer = jnp.asarray(np.pad(ids, ((0, 0), (0, steps))))  # (b, n + steps), right-padded
    run = traceable_forward(model.config, precision, logits="none")

    @jax.jit
    def step(params, buffer, position):  # the next token after `position`, for every prompt
        final = run(params, buffer).final
        logits = last_logits(params, model.config, final, jnp.full((b,), position))
        token = jnp.argmax(logits, axis=-1).astype(buffer.dtype)
        return jax.lax.dynamic_update_slice(buffer, token[:, None], (0, position + 1))

    params = stacked_params(model.params, model.config)  # the layer scan's copy, made once
    for i in range(steps):
        buffer = step(params, buffer, jnp.int32(n - 1 + i))
        if until is not None and i + 1 < steps and until(np.asarray(buffer[:, n:n + i + 1])):
            return np.asarray(buffer[:, n:n + i + 1]).tolist()
    return np.asarray(buffer[:, n:]).tolist()


def _ended(model, continuations) -> bool:
    """Whether every continuation's leading number (_number) is complete: a character that is
    not a digit follows it (or stands first), so later tokens cannot change what is parsed."""
    texts = (model.tokenizer.decode([int(t) for t in row]).lstrip() for row in continuations)
    return all(any(not ch.isdigit() for ch in text) for text in texts)


def _number(model, tokens: list[int]) -> int | None:
    """The integer at the start of a continuation (leading space allowed), None if none."""
    text = model.tokenizer.decode(tokens).lstrip()
    digits = ""
    for ch in text:
        if not ch.isdigit():
            break
        digits += ch
    return int(digits) if digits else None


@dataclasses.dataclass
class TaskRows:
    rows: list[dict]

    def accuracy(self, **match) -> dict:
        """n → fraction correct over rows matching the given fields."""
        out: dict = {}
        for r in self.rows:
            if all(r[k] == v for k, v in match.items()):
                out.setdefault(r["n"], []).append(r["correct"])
        return {n: float(np.mean(v)) for n, v in sorted(out.items())}


def copy_task(model, ns=COPY_N, progress=None) -> TaskRows:
    """First / last digit of an n-digit sequence whose odd digit sits at that end."""
    checks.loaded_model("copy_task", "model", model)
    checks.integers("copy_task", "ns", ns, 1, 2**16)
    rows = []
    for n in ns:
        if progress:
            progress(f"copy: n = {n}")
        for which in ("first", "last"):  # one batch per template (equal lengths)
            cases = []
            for odd, rest in ((0, 1), (1, 0)):
                bits = [rest] * n
                bits[0 if which == "first" else -1] = odd
                cases.append((odd, copy_prompt(which, _digits(bits))))
            answers = greedy(model, [c[1] for c in cases], steps=2)
            for (odd, _), tokens in zip(cases, answers, strict=True):
                answer = _number(model, tokens)
                rows.append({"task": "copy", "which": which, "n": n, "target": odd,
                             "answer": answer, "correct": answer == odd})
    return TaskRows(rows)


def count_task(model, ns=COUNT_N, seeds: int = 6, progress=None) -> TaskRows:
    """Count the ones in n Bernoulli(0.7) digits (`seeds` strings) and in n ones."""
    checks.loaded_model("count_task", "model", model)
    checks.integers("count_task", "ns", ns, 1, 2**16)
    checks.integer("count_task", "seeds", seeds)
    rows = []
    for n in ns:
        if progress:
            progress(f"count: n = {n}")
        rng = np.random.default_rng(n)
        strings = [("ones", np.ones(n, int))] + [
            ("bernoulli 0.7", (rng.random(n) < 0.7).astype(int)) for _ in range(seeds)]
        answers = greedy(model, [count_prompt(_digits(s)) for _, s in strings],
                         steps=len(str(n)) + 2,  # room for a longer (wrong) answer
                         until=lambda rows: _ended(model, rows))
        for (kind, s), tokens in zip(strings, answers, strict=True):
            answer = _number(model, tokens)
            rows.append({"task": "count", "kind": kind, "n": n, "target": int(s.sum()),
                         "answer": answer, "correct": answer == int(s.sum())})
    return TaskRows(rows)


def sensitivity_profile(model, text: str, probes: int = 16, seed: int = 0) -> np.ndarray:
    """‖∂y_n/∂h0_i‖_F for every input position i of `text` (h0 = the scaled embeddings), the
    Frobenius norm estimated from `probes` random output projections (Hutchinson:
    E‖uᵀJ_i‖² = ‖J_i‖_F² for u ~ N(0, I)): `probes` backward passes instead of d = 640. → (n,)"""
    from squash_sim.precision import Numerics
    from squash_sim.precision import get as get_precision

    checks.loaded_model("sensitivity_profile", "model", model)
    if not isinstance(text, str) or not text:
        raise TypeError(f"sensitivity_profile: text must be a non-empty str, got {text!r:.60}")
    checks.integer("sensitivity_profile", "probes", probes, 1, 4096)
    checks.seed("sensitivity_profile", seed)
    config = model.config
    ids = jnp.asarray(model.encode(text))[None]  # (1, n)
    embedded_config = config.replace(vocab_size=None, embed_scale=1.0)  # vector inputs
    run = traceable_forward(embedded_config, "fp32", logits="none")
    params = {k: v for k, v in model.params.items() if k not in ("embedding", "unembedding")}
    h0 = Numerics(get_precision("fp32")).act(model.params["embedding"][ids] * config.embed_scale)

    def last_output(h):
        return run(params, h).final[0, -1]  # (d,)

    _, pullback = jax.vjp(last_output, h0)
    probes_u = jax.random.normal(jax.random.key(seed), (probes, config.d_model))
    rows = jax.lax.map(lambda u: pullback(u)[0][0], probes_u)  # (probes, n, d)
    return np.sqrt(np.asarray(jnp.mean(jnp.sum(rows ** 2, axis=-1), axis=0)))
