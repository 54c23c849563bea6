"""Attend first, consolidate later (../shared/spec/interventions.md) on any loaded model (Gemma 3
270M, SmolLM2-135M, a checkpoint path): one-shot capital questions, interventions at every layer
k, and the country switch.

The set is built per model: squash_sim/data/capitals.csv lists countries and capitals; a pair is
used when its capital is one token of that model's vocabulary (" Paris") and that clean model
answers it (greedy next token after
"Q: What is the capital of X? A:", one shot "Q: What is the capital of Peru? A: Lima"). Prompts
are kept at the common token length so that the country sits at the same position in every
prompt (a batch needs no padding; inject writes one position).

  * sweeps      random / freeze / skip_attention (and windowed controls) at every k: accuracy
                (greedy answer == capital) and P(capital), mean ± std over seeds;
  * switch      inject the state of country X (from X's clean run, same layer k, the country's
                position) into the run for country Y. Like the paper's figure, the crossover
                counts greedy answers: the first k from which more prompts answer Y's capital
                than X's (k/L). The probability form (mean P(Y's capital) > mean P(X's capital))
                is kept beside it, labelled.
  * baseline    the same sweeps on a randomly initialised model of the same shape (no answers:
                KL to its own clean run and top-1 agreement).
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.resources

import jax
import jax.numpy as jnp
import numpy as np

from squash_sim import checks
from squash_sim import interventions as iv
from squash_sim.analysis.onset import first_from
from squash_sim.analysis.sweep import last_logits, sweep
from squash_sim.model import traceable_forward

SHOT = ("Peru", "Lima")
PAPER_CROSSOVER = (0.53, 0.69)  # block ≈ 17–22 of 32 on 7B models (interventions.md)
# The paper's own claim for random/freeze: manipulating the earlier tokens in the final 30–50 % of
# layers costs little, i.e. accuracy holds from k/L ≈ 0.5–0.7 on (it states no skip number; its
# skip experiments are the same claim).
PAPER_COSTS_LITTLE_FROM = (0.5, 0.7)


def template(country: str) -> str:
    return (f"Q: What is the capital of {SHOT[0]}? A: {SHOT[1]}\n"
            f"Q: What is the capital of {country}? A:")


def pairs() -> list[tuple[str, str]]:
    """(country, capital) from the data file shipped with the package."""
    text = importlib.resources.files("squash_sim.data").joinpath("capitals.csv").read_text()
    return [(r["country"], r["capital"]) for r in csv.DictReader(text.splitlines())]


@dataclasses.dataclass
class CapitalSet:
    countries: list[str]
    capitals: list[str]
    tokens: np.ndarray  # (b, n) one-shot prompts, BOS first
    answers: np.ndarray  # (b,) capital token ids
    country_position: int  # index of the (one-token) country in every prompt
    rejected: dict  # country → why it is not in the set


def build_set(model, limit: int | None = 30) -> CapitalSet:
    """The prompts the clean model answers correctly (see the module doc), at most `limit`."""
    checks.loaded_model("capitals", "model", model)
    if limit is not None:
        checks.integer("capitals", "limit", limit)
    candidates, rejected = [], {}
    for country, capital in pairs():
        if country == SHOT[0]:
            continue
        answer = model.encode(" " + capital, add_bos=False)
        if len(answer) != 1:
            rejected[country] = f"capital {capital!r} is {len(answer)} tokens"
            continue
        candidates.append((country, capital, model.encode(template(country)), int(answer[0])))
    if not candidates:
        raise ValueError(f"capitals: no capital of squash_sim/data/capitals.csv is one token of "
                         f"{model.name}'s vocabulary")
    length = np.bincount([len(c[2]) for c in candidates]).argmax()
    for country, _, ids, _ in candidates:
        if len(ids) != length:
            rejected[country] = f"prompt is {len(ids)} tokens, not {length} (multi-token country)"
    kept = [c for c in candidates if len(c[2]) == length]
    tokens = np.stack([c[2] for c in kept]).astype(np.int32)
    logits = np.asarray(model.forward(tokens, logits="last").logits)[:, -1]  # (b, vocab)
    correct = logits.argmax(-1) == np.array([c[3] for c in kept])
    for c, ok in zip(kept, correct, strict=True):
        if not ok:
            rejected[c[0]] = "the clean model answers something else"
    kept = [c for c, ok in zip(kept, correct, strict=True) if ok][:limit]
    if len(kept) < 2:
        raise ValueError(f"capitals: {model.name} answers {len(kept)} of the one-token capital "
                         "questions; the sweeps and the switch need at least 2")
    position = len(model.encode(template("X").rsplit(" X?", 1)[0] + " X")) - 1
    return CapitalSet([c[0] for c in kept], [c[1] for c in kept],
                      np.stack([c[2] for c in kept]).astype(np.int32),
                      np.array([c[3] for c in kept]), position, rejected)


def _check_set(capital_set) -> None:
    if not isinstance(capital_set, CapitalSet):
        raise TypeError(f"capitals: capital_set must be a CapitalSet (build_set(model)), got "
                        f"{type(capital_set).__name__}")
    if len(capital_set.countries) < 2:
        raise ValueError("capitals: capital_set must hold at least two questions (the clean model "
                         f"answered {len(capital_set.countries)} correctly)")


def sweeps(params, config, capital_set: CapitalSet, kinds=("random", "freeze", "skip_attention"),
           seeds=(0, 1, 2), window: int | None = None, with_answers: bool = True,
           progress=None) -> dict:
    """kind → analysis.sweep.SweepResult over every k (accuracy = top-1 agreement with the clean,
    correct answer)."""
    _check_set(capital_set)
    if isinstance(kinds, str):
        raise TypeError(f"capitals: kinds must be a list of intervention kinds, got {kinds!r}")
    for kind in kinds:
        checks.choice("capitals", "kinds", kind, [k for k in iv.KINDS if k != "inject"])
    checks.integers("capitals", "seeds", seeds, 0, 2**32 - 1)
    if window is not None:
        checks.integer("capitals", "window", window)
    checks.flag("capitals", "with_answers", with_answers)
    out = {}
    for kind in kinds:
        if progress:
            progress(f"capitals: {kind} sweep{f' (window {window})' if window else ''}")
        out[kind] = sweep((params, config), capital_set.tokens, kind=kind,
                          seeds=seeds if kind in ("random", "shuffle", "angle") else (0,),
                          answers=capital_set.answers if with_answers else None,
                          window=window)
    return out


@dataclasses.dataclass
class SwitchResult:
    layers: np.ndarray  # (K,)
    n_layers: int
    p_original: np.ndarray  # (K, pairs) P(Y's capital) with X's state injected
    p_injected: np.ndarray  # (K, pairs) P(X's capital)
    answers_original: np.ndarray  # (K, pairs) bool: the greedy answer is Y's capital
    answers_injected: np.ndarray  # (K, pairs) bool: the greedy answer is X's capital

    @property
    def crossover(self) -> int | None:
        """Greedy form (the paper's figure): first k from which more prompts answer the original
        capital than the injected one (None: never)."""
        return first_from(self.answers_original.mean(-1) > self.answers_injected.mean(-1),
                          self.layers)

    @property
    def crossover_probability(self) -> int | None:
        """Probability form: first k from which mean P(original) > mean P(injected)."""
        return first_from(self.p_original.mean(-1) > self.p_injected.mean(-1), self.layers)

    def rows(self) -> list[dict]:
        return [{"k": int(k), "k/L": float(k / self.n_layers),
                 "greedy_original": float(self.answers_original[i].mean()),
                 "greedy_injected": float(self.answers_injected[i].mean()),
                 "p_original": float(self.p_original[i].mean()),
                 "p_injected": float(self.p_injected[i].mean())}
                for i, k in enumerate(self.layers)]


def transitions(sweeps: dict, n_layers: int) -> dict:
    """kind → first k from which accuracy (top-1 agreement with the clean, correct answer) is
    ≥ 50 % on average over seeds and prompts (None: never)."""
    return {kind: first_from(r.top1_agrees.mean(axis=(1, 2)) >= 0.5, r.layers)
            for kind, r in sweeps.items()}


def comparison_rows(model: str, n_layers: int, sweeps: dict, switch: SwitchResult) -> list[dict]:
    """One row per metric: ours as k and k/L beside the paper's number for that same metric (the
    switch against the switch figure; random/freeze/skip against "the final 30–50 % of layers
    cost little"). Rows of several models side by side: concatenate."""
    def depth(k):
        return None if k is None else round(k / n_layers, 3)

    paper_little = "≥ {:.2f}–{:.2f} (final 30–50 % of layers cost little)".format(
        *PAPER_COSTS_LITTLE_FROM)
    rows = [{"model": model, "L": n_layers, "metric": f"{kind}: accuracy ≥ 50 % from k",
             "k": k, "k/L": depth(k), "paper k/L": paper_little}
            for kind, k in transitions(sweeps, n_layers).items()]
    paper_switch = "{:.2f}–{:.2f} (block ≈ 17–22 of 32)".format(*PAPER_CROSSOVER)
    rows.append({"model": model, "L": n_layers, "metric": "switch crossover (greedy answers)",
                 "k": switch.crossover, "k/L": depth(switch.crossover), "paper k/L": paper_switch})
    rows.append({"model": model, "L": n_layers,
                 "metric": "switch crossover (probability form)",
                 "k": switch.crossover_probability, "k/L": depth(switch.crossover_probability),
                 "paper k/L": "— (the paper counts greedy answers)"})
    return rows


def switch(params, config, capital_set: CapitalSet, progress=None) -> SwitchResult:
    """Inject country X's state (X = the next country in the set) into Y's run at every k."""
    _check_set(capital_set)
    run = traceable_forward(config, logits="none")
    tokens = jnp.asarray(capital_set.tokens)
    source_order = np.roll(np.arange(len(capital_set.countries)), -1)  # Y ← X = next country
    position = capital_set.country_position
    layers = np.arange(config.n_layers + 1)
    iv.inject(layers, np.zeros(config.d_model), position).check(config, *tokens.shape)
    if progress:
        progress(f"capitals: switch over {layers.size} layers × {len(source_order)} pairs")
    clean = jax.jit(run)(params, tokens).hidden  # (b, L+1, n, d)
    sources = clean[source_order][:, :, position]  # (b, L+1, d): X's state at every layer
    last = jnp.full((tokens.shape[0],), tokens.shape[1] - 1)
    original = jnp.asarray(capital_set.answers)
    injected = original[source_order]

    @jax.jit
    def all_layers(params, tokens, sources):
        # params as they are: the forward stacks the layers for its scan, and XLA hoists that
        # copy out of the map (tests/test_layer_scan.py)
        def at(layer):
            intervention = iv.inject(layer, sources[:, layer], position)
            final = run(params, tokens, intervention=intervention).final
            logits = last_logits(params, config, final, last)  # (b, vocab)
            p = jax.nn.softmax(logits, axis=-1)
            answer = jnp.argmax(logits, axis=-1)
            return (jnp.take_along_axis(p, original[:, None], 1)[:, 0],
                    jnp.take_along_axis(p, injected[:, None], 1)[:, 0],
                    answer == original, answer == injected)
        return jax.lax.map(at, jnp.asarray(layers, jnp.int32))

    out = [np.asarray(a) for a in all_layers(params, tokens, sources)]
    return SwitchResult(layers, config.n_layers, *out)
