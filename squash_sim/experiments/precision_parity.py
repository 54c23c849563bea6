"""Precision parity of a real model: how far a policy's outputs move from fp32's.

For each policy, against fp32 on the same prompts:

    max Δ, median Δ   |logit − fp32 logit| at each prompt's last token, in units of the fp32
                      spacing at the fp32 logit (floats.spacing), over every prompt × vocabulary
                      entry
    top-1             prompts whose last-token argmax equals fp32's
    first divergence  per prompt, the first step t of fp32's `steps`-token greedy continuation
                      where the policy's own greedy continuation picks another token (None: none)

Greedy continuations, exactly and cheaply. A continuation is decoded in a fixed-length buffer
(prompt + `steps` tokens, right-padded): every step runs the same program, and under the causal
mask the logits at position t do not depend on the tokens after t (masked keys contribute exact
zeros: a select on the exponentials, and zero weights times finite values; `test_precision_parity`
checks the bits). Hence:

  * fp32's continuation is found by Jacobi iteration: guess all `steps` tokens, run one teacher-
    forced forward, keep the guess up to its first mismatch with the forward's argmax, take the
    argmax from there, repeat. Each round fixes at least one more token; the fixed point is the
    greedy continuation bit for bit. A good guess (Hugging Face transformers' fp32 greedy decode
    of the same checkpoint, when installed) needs a round or two; without one it costs up to
    `steps` rounds, and after `rounds` the continuation is cut at its verified prefix (reported).
  * a policy's first divergence needs one teacher-forced forward over fp32's continuation: up to
    the first position where the policy's argmax differs from fp32's token, the policy's own greedy
    decode would have written the same tokens (its inputs there are identical), so that position
    is exactly where its continuation first diverges.

Prompts: PROMPTS, fifty sentences written for this package (no outside source), each cut to its
first `prompt_tokens` tokens (BOS included where the model adds one) so that every prompt has
the same length and a policy runs them as one batch.
"""

from __future__ import annotations

import os
import time

import jax.numpy as jnp
import numpy as np

from squash_sim import checks, floats
from squash_sim.precision import get as get_precision

POLICIES = ("fp32", "bf16", "bf16+tc:h100", "bf16+tc:h100+scaled:e4m3")
PROMPT_TOKENS = 12
STEPS = 128
ROUNDS = 8
BATCH = 5  # prompts per forward when every position's logits are kept (Gemma: 262,144 each)

PROMPTS = (
    "The old lighthouse keeper climbed the spiral stairs every evening to light the lamp",
    "In the spring of that year the river flooded the lower fields and the farmers",
    "To bake a simple loaf of bread you need flour, water, salt and a little yeast",
    "The committee met on Tuesday to discuss the budget for the new public library",
    "Photosynthesis is the process by which green plants turn sunlight into chemical energy",
    "She opened the letter slowly, afraid of what the hospital might have written",
    "A prime number is a whole number greater than one that has no divisors other than",
    "The train to the coast was delayed by two hours because of a fallen tree on the line",
    "When the orchestra finished the last movement, the audience stood and applauded for",
    "Most desert animals avoid the heat of the day by resting in burrows and coming out",
    "The museum's new exhibition brings together paintings from three centuries of Dutch art",
    "He had never seen snow before, so the first winter in the mountains was a surprise",
    "To reset the router, hold the small button on the back for ten seconds and wait until",
    "The history of the printing press begins with movable type and a goldsmith in Mainz",
    "Our neighbours keep bees in the garden, and every August they give us a jar of honey",
    "The spacecraft entered orbit around the planet after a journey of almost seven years",
    "A good night's sleep helps the brain store memories and clear away waste products",
    "The recipe calls for two cups of rice, a pinch of saffron and a litre of chicken stock",
    "During the storm the ship lost its main mast, and the crew worked through the night",
    "The students were asked to write an essay about a person who had changed their lives",
    "Glaciers form where more snow falls in winter than melts in summer, year after year",
    "The small café on the corner serves the best coffee in town and opens at six",
    "In chess, the knight is the only piece that can jump over other pieces on the board",
    "The city council voted to close the main street to cars on Sundays during the summer",
    "Volcanoes are openings in the crust through which molten rock and gases escape",
    "My grandmother taught me to knit when I was seven, and I still have my first scarf",
    "The footballers trained in the rain all week before the final match of the season",
    "Whales communicate over great distances with low songs that travel far under water",
    "The software update fixed several bugs but made the application start more slowly",
    "On the first day of school the children lined up in the yard with their new bags",
    "The ancient road ran straight across the plain from the harbour to the capital city",
    "A healthy breakfast might include oats, fresh fruit, yoghurt and a glass of water",
    "The detective looked at the muddy footprints and realised the thief had come back",
    "Electric cars are becoming cheaper as batteries improve and factories grow larger",
    "The mountain village has one shop, one school and a church with a very tall tower",
    "Every language has its own way of counting, and some use a base of twenty",
    "The gardener planted tulips in the autumn so that they would flower in April",
    "After the concert the band signed autographs for an hour outside the stage door",
    "The bridge was designed to sway slightly in strong winds without being damaged",
    "Honey never spoils: jars found in ancient tombs were still good to eat",
    "The pilot announced that the plane would land twenty minutes ahead of schedule",
    "The library lends books, films and music, and it also runs reading groups for",
    "Tides are caused mainly by the pull of the moon on the oceans of the earth",
    "The carpenter measured the board twice before cutting it to the right length",
    "The festival fills the old town with music, food stalls and dancing every July",
    "Computers store numbers in binary, using only the digits zero and one to write",
    "The farmer checked the sky, decided it would not rain, and started cutting the hay",
    "A map of the underground shows each line in its own colour and every station",
    "The scientist repeated the experiment three times to make sure the result was real",
    "At the end of the long day the hikers reached the hut and cooked a hot meal",
)


def prompt_ids(model, count: int = len(PROMPTS), tokens: int = PROMPT_TOKENS) -> np.ndarray:
    """The first `count` PROMPTS, each cut to its first `tokens` tokens → int32 (count, tokens)."""
    checks.integer("prompt_ids", "count", count, 1, len(PROMPTS))
    checks.integer("prompt_ids", "tokens", tokens, 1, 4096)
    encoded = [model.encode(text) for text in PROMPTS[:count]]
    short = min(len(ids) for ids in encoded)
    if short < tokens:
        raise ValueError(f"prompt_ids: tokens must be at most {short} for {model.name} (its "
                         f"shortest prompt), got {tokens}")
    return np.stack([ids[:tokens] for ids in encoded]).astype(np.int32)


def _forward(model, ids, precision, logits: str):
    """model.forward of (b, n) ids: a LoadedModel, or a (params, config) pair (the tests')."""
    if isinstance(model, tuple):
        from squash_sim.model import forward

        params, config = model
        return forward(params, jnp.asarray(ids), config, precision, logits=logits)
    return model.forward(jnp.asarray(ids), precision, logits=logits)


def last_logits(model, ids, precision) -> np.ndarray:
    """Each prompt's last-token logits under `precision`: (b, n) → float32 (b, vocab)."""
    return np.asarray(_forward(model, ids, precision, "last").logits[:, -1])


def argmax_all(model, buffer, precision, batch: int = BATCH) -> np.ndarray:
    """The policy's argmax token after every position of a teacher-forced forward: (b, N) →
    int32 (b, N), `batch` rows per forward (every position's logits are materialised)."""
    out = []
    for start in range(0, len(buffer), batch):
        logits = _forward(model, buffer[start:start + batch], precision, "all").logits
        out.append(np.asarray(jnp.argmax(logits, axis=-1)).astype(np.int32))
    return np.concatenate(out)


def _first_mismatch(tokens, predicted) -> np.ndarray:
    """Per row, the first index where tokens and predicted differ (their length if none)."""
    differ = tokens != predicted
    return np.where(differ.any(axis=1), differ.argmax(axis=1), tokens.shape[1])


def greedy_reference(model, ids, steps: int, guess=None, rounds: int = ROUNDS,
                     batch: int = BATCH) -> dict:
    """fp32's greedy continuation of every prompt, `steps` tokens, by Jacobi iteration from
    `guess` (b, steps) token ids (None: zeros) over a fixed-length buffer (module docstring).
    → {"buffer": (b, n + steps) prompt then continuation, "verified": (b,) tokens of each
    continuation proved to be fp32's greedy decode (steps unless `rounds` ran out), "rounds"}"""
    ids = np.asarray(ids, np.int32)
    b, n = ids.shape
    cont = np.zeros((b, steps), np.int32) if guess is None else np.asarray(guess, np.int32)
    if cont.shape != (b, steps):
        raise ValueError(f"greedy_reference: guess must have shape {(b, steps)}, got {cont.shape}")
    verified = np.zeros(b, np.int64)
    for round_ in range(1, rounds + 1):
        predicted = argmax_all(model, np.concatenate([ids, cont], axis=1), "fp32",
                               batch)[:, n - 1:-1]  # the token after each position
        first = _first_mismatch(cont, predicted)
        verified = np.minimum(first + 1, steps)  # the mismatching token, replaced, is fp32's
        if (first == steps).all():
            return {"buffer": np.concatenate([ids, cont], axis=1), "verified": verified,
                    "rounds": round_}
        keep = np.arange(steps)[None] < first[:, None]
        cont = np.where(keep, cont, predicted)  # the prefix stays; past it, the forward's guess
    return {"buffer": np.concatenate([ids, cont], axis=1), "verified": verified, "rounds": rounds}


def first_divergence(model, buffer, prompt_tokens: int, verified, precision,
                     batch: int = BATCH) -> list[int | None]:
    """Per prompt, the first step where `precision`'s greedy continuation leaves fp32's (buffer:
    greedy_reference's), None when it follows all `verified` tokens (module docstring)."""
    n = prompt_tokens
    predicted = argmax_all(model, buffer, precision, batch)[:, n - 1:-1]
    first = _first_mismatch(buffer[:, n:], predicted)
    return [int(f) if f < v else None for f, v in zip(first, verified, strict=True)]


def transformers_guess(model, ids, steps: int):
    """Hugging Face transformers' fp32 greedy decode of the same checkpoint (with its KV cache:
    seconds where squash_sim's fixed buffer would take minutes), as a guess for
    greedy_reference; None when transformers or the checkpoint's GGUF is not at hand."""
    try:
        import torch
        from transformers import AutoModelForCausalLM
    except ImportError:
        return None
    from squash_sim import models

    path = {"gemma3-270m": models.gguf_path, "smollm2-135m": lambda: models.smollm2_path()[0]}
    if model.name not in path:
        return None
    file = path[model.name]()
    hf = AutoModelForCausalLM.from_pretrained(str(file.parent), gguf_file=file.name,
                                              torch_dtype=torch.float32)
    hf.eval()
    tokens = []
    with torch.no_grad():
        out = hf(torch.as_tensor(np.asarray(ids), dtype=torch.long), use_cache=True)
        for _ in range(steps):
            token = out.logits[:, -1].argmax(-1)
            tokens.append(token.numpy())
            out = hf(token[:, None], past_key_values=out.past_key_values, use_cache=True)
    return np.stack(tokens, axis=1).astype(np.int32)


def _logit_distance(logits, reference) -> tuple[float, float]:
    """max and median |logits − reference| in fp32 spacings at the reference."""
    unit = np.asarray(floats.spacing(jnp.asarray(reference), "fp32"))
    delta = np.abs(logits.astype(np.float64) - reference) / unit
    return float(delta.max()), float(np.median(delta))


def run(model, policies=POLICIES, *, prompts: int = len(PROMPTS),
        prompt_tokens: int = PROMPT_TOKENS, steps: int = STEPS, greedy_prompts: int | None = None,
        rounds: int = ROUNDS, guess: str = "transformers", progress=None) -> dict:
    """The parity table of `model` (a loaded model) for `policies` (fp32 is the reference, run
    whether listed or not): last-token statistics over `prompts` prompts of `prompt_tokens`
    tokens, greedy divergence over the first `greedy_prompts` (default all) for `steps` tokens.
    guess: "transformers" (transformers_guess, when installed) or "none". → a JSON-able dict,
    one row per policy; `table` renders it."""
    checks.loaded_model("precision_parity", "model", model)
    checks.integer("precision_parity", "steps", steps, 1, 4096)
    checks.integer("precision_parity", "rounds", rounds, 1, 4096)
    greedy_prompts = prompts if greedy_prompts is None else greedy_prompts
    checks.integer("precision_parity", "greedy_prompts", greedy_prompts, 0, prompts)
    if guess not in ("transformers", "none"):
        raise ValueError(f"precision_parity: guess must be 'transformers' or 'none', got {guess!r}")
    policies = [str(get_precision(p)) for p in policies]  # parsed (and checked) first
    say = progress or (lambda message: None)
    ids = prompt_ids(model, prompts, prompt_tokens)
    started = time.perf_counter()
    reference = last_logits(model, ids, "fp32")
    seconds = time.perf_counter() - started
    out = {"model": model.name, "prompts": prompts, "prompt_tokens": prompt_tokens,
           "steps": steps, "greedy_prompts": greedy_prompts, "rows": []}
    greedy = None
    if greedy_prompts:
        started = time.perf_counter()
        guessed = transformers_guess(model, ids[:greedy_prompts], steps) if guess != "none" \
            else None
        say(f"fp32 greedy reference ({'transformers guess' if guessed is not None else 'no guess'})")
        greedy = greedy_reference(model, ids[:greedy_prompts], steps, guessed, rounds)
        out["reference"] = {"guess": "transformers" if guessed is not None else "none",
                            "rounds": greedy["rounds"],
                            "verified": greedy["verified"].tolist(),
                            "continuations": greedy["buffer"][:, prompt_tokens:].tolist(),
                            "seconds": time.perf_counter() - started}
    out["rows"].append(_row("fp32", reference, reference, greedy, None, seconds))
    for policy in policies:
        if policy == "fp32":
            continue
        say(f"{policy}")
        started = time.perf_counter()
        try:
            logits = last_logits(model, ids, policy)
            diverged = None if greedy is None else first_divergence(
                model, greedy["buffer"], prompt_tokens, greedy["verified"], policy)
        except FloatingPointError as error:  # e.g. unscaled fp8 storage: no verdict
            out["rows"].append({"policy": policy, "status": "overflow", "error": str(error),
                                "seconds": time.perf_counter() - started})
            continue
        out["rows"].append(_row(policy, logits, reference, greedy, diverged,
                                time.perf_counter() - started))
    out["load"] = list(os.getloadavg())
    return out


def _row(policy, logits, reference, greedy, diverged, seconds) -> dict:
    top = np.argmax(logits, axis=-1) == np.argmax(reference, axis=-1)
    row = {"policy": policy, "status": "ok", "seconds": seconds, "top1": int(top.sum())}
    if not np.all(np.isfinite(logits)):
        return {**row, "status": "non-finite logits"}
    row["max"], row["median"] = _logit_distance(logits, reference)
    if greedy is not None:
        row["first_divergence"] = [None] * len(greedy["verified"]) if diverged is None \
            else diverged
    return row


def _divergence_cell(row, result) -> str:
    firsts = row.get("first_divergence")
    if firsts is None:
        return "–"
    hit = sorted(f for f in firsts if f is not None)
    if not hit:
        return f"none in {len(firsts)}"
    median = np.median([f if f is not None else np.inf for f in firsts])
    median = "> " + str(result["steps"]) if np.isinf(median) else f"{median:g}"
    return f"{len(hit)}/{len(firsts)} diverge; first at {hit[0]}, median {median}"


def table(results) -> str:
    """Markdown: one row per policy of each result of `run` (several runs: several sizes)."""
    lines = ["| model | policy | prompts × tokens | max Δ (fp32 spacings) | median Δ | top-1 = fp32 "
             "| greedy: prompts × steps | first divergence | seconds |",
             "|---|---|---|---|---|---|---|---|---|"]
    for result in results:
        size = f"{result['prompts']} × {result['prompt_tokens']}"
        greedy = f"{result['greedy_prompts']} × {result['steps']}" if result["greedy_prompts"] \
            else "–"
        for row in result["rows"]:
            if row["status"] != "ok":
                cells = [row["status"], "–", "–", "–"]
            else:
                cells = [f"{row['max']:.3g}", f"{row['median']:.3g}",
                         f"{row['top1']}/{result['prompts']}", _divergence_cell(row, result)]
            lines.append(f"| {result['model']} | `{row['policy']}` | {size} | {cells[0]} | "
                         f"{cells[1]} | {cells[2]} | {greedy} | {cells[3]} | "
                         f"{row['seconds']:.1f} |")
    return "\n".join(lines)
