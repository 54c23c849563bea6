"""`squash-sim`: the command line. It only wires: experiments compute, plotting draws, results
write."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from squash_sim import __version__, floats, presets
from squash_sim.config import POSITIONALS
from squash_sim.precision import get as get_precision

_SHOW_N = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000,
           100_000)


def _progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _real_model(text: str) -> str:
    """--model of the real-model commands: a known name or an existing checkpoint path."""
    from squash_sim.models import NAMES

    if text in NAMES or Path(text).exists():
        return text
    raise argparse.ArgumentTypeError(f"expected one of {', '.join(NAMES)} or the path of a GGUF "
                                     f"file or Hugging Face directory, got {text!r}")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _precision(text: str):
    try:
        return get_precision(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _positionals(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    if text == "all":
        return list(POSITIONALS)
    bad = [n for n in names if n not in POSITIONALS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"positional must be 'all' or a comma list of "
                                         f"{POSITIONALS}, got {text!r}")
    return names


def _formats(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in ("png", "svg", "pdf")]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown figure format(s) {bad or text!r}; use a comma "
                                         f"list of png, svg, pdf")
    return names


def _mantissas(text: str) -> list[int]:
    try:
        bits = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma list of integers, got {text!r}") from None
    if not bits or any(b < 1 or b > 23 for b in bits):
        raise argparse.ArgumentTypeError(f"mantissa bits must lie in 1..23, got {text!r}")
    return bits


def cmd_collapse(args) -> int:
    from squash_sim import runs

    out = Path(args.out)
    if args.protocol == "model":
        section = runs.collapse(out, preset=args.preset, positionals=args.positional,
                                precision=args.precision, max_len=args.max_len,
                                prompt_len=args.prompt_len, seed=args.seed,
                                formats=args.formats, progress=_progress)
        _print_model_collapse(out / "collapse.csv", args)
    elif args.protocol == "figure9":
        section = runs.softmax_tv(out, seeds=args.seeds, formats=args.formats, progress=_progress)
    else:
        section = runs.attention_collapse(
            out, figure=args.protocol, positionals=args.positional, seeds=args.seeds,
            max_n=args.max_len if args.max_len_given else None, variance=args.variance,
            precision=args.precision, formats=args.formats, progress=_progress)
    section.print()
    return 0


def _print_model_collapse(path: Path, args) -> None:
    """The per-n table of the model sweep, read back from the CSV just written."""
    import csv

    rows = list(csv.DictReader(open(path)))
    by_positional: dict = {}
    for row in rows:
        by_positional.setdefault(row["positional"], []).append(row)
    eps = floats.BF16.eps
    print(f"\nRepresentational collapse (Theorem B.3): ‖y_n − y*_(n+1)‖₁ for prompt + n ones vs "
          f"n + 1 ones\npreset {args.preset}, precision {args.precision}, prompt {args.prompt_len} "
          f"random tokens, seed {args.seed}; bf16 spacing 2^-7 = {eps:.6f}\n")
    header = f"{'n':>7}" + "".join(f" | {p:>24}" for p in by_positional)
    print(header + "\n" + "-" * len(header))
    for n in [n for n in _SHOW_N if n <= args.max_len]:
        cells = []
        for table in by_positional.values():
            d = float(table[n - 1]["l1"])
            mark = " ==" if table[n - 1]["bit_identical"] == "True" else ""
            cells.append(f"{d:11.4e} ({d / eps:8.3g}·ε){mark:>3}")
        print(f"{n:>7}" + "".join(f" | {c:>24}" for c in cells))
    print("\n(ε = bf16 spacing; '==' marks bit-identical float32 outputs)")


def _section_command(name: str, **options):
    """A command that runs runs.<name>(out, formats, progress, **options) and prints its section;
    options map the function's keyword to the argparse attribute it is read from."""
    def command(args) -> int:
        from squash_sim import runs

        kwargs = {keyword: getattr(args, attribute) for keyword, attribute in options.items()}
        getattr(runs, name)(Path(args.out), formats=args.formats, progress=_progress,
                            **kwargs).print()
        return 0
    return command


# quick: the main job (≈ 3 min on 2 cores); full: the paper's sizes; smoke: seconds, for tests.
REPORT_SIZES = {
    "quick": dict(seeds=5, figure_n=5000, collapse_n=4096, precision_n=1024,
                  mantissa_bits=(2, 3, 4, 5, 7, 10), few_seeds=2, depths=(1, 2, 4, 8),
                  scales=(1, 2, 4), remedies_n=2048, real_n=2048, real_precisions=("fp32",)),
    "full": dict(seeds=5, figure_n=5000, collapse_n=65_536, precision_n=2048, mantissa_bits=None,
                 few_seeds=5, depths=(1, 2, 4, 8, 16, 32), scales=(1, 2, 3, 4, 8, 16),
                 remedies_n=16_384, real_n=2048, real_precisions=("fp32", "bf16")),
    "smoke": dict(seeds=2, figure_n=100, collapse_n=64, precision_n=128, mantissa_bits=(2, 3),
                  few_seeds=1, depths=(1, 2), scales=(1, 2), remedies_n=128, real_n=64,
                  real_precisions=("fp32",)),
}


def cmd_report(args) -> int:
    from squash_sim import report, runs

    out = Path(args.out)
    size = REPORT_SIZES[args.size]
    kw = {"formats": args.formats, "progress": _progress}
    steps = [
        lambda: runs.attention_collapse(out, figure="figure10", seeds=size["seeds"],
                                        max_n=size["figure_n"], **kw),
        lambda: runs.attention_collapse(out, figure="figure8", seeds=size["seeds"],
                                        max_n=2 * size["figure_n"], **kw),
        lambda: runs.softmax_tv(out, seeds=5, **kw),
        lambda: runs.collapse(out, preset="tiny", positionals=["none", "sinusoidal", "rope",
                                                               "alibi"],
                              max_len=size["collapse_n"], **kw),
        lambda: runs.precision(out, max_len=size["precision_n"],
                               mantissa_bits=size["mantissa_bits"], **kw),
        lambda: runs.sensitivity(out, n=32, seeds=size["few_seeds"], depths=size["depths"], **kw),
        lambda: runs.counting(out, seeds=size["few_seeds"], scales=size["scales"], **kw),
        lambda: runs.remedies(out, max_len=size["remedies_n"], **kw),
    ]
    if args.real:
        steps.append(lambda: runs.real_collapse(out, precisions=size["real_precisions"],
                                                max_len=size["real_n"], compare_global=True, **kw))
        steps.append(lambda: runs.capitals(out, seeds=2 if args.size != "full" else 5, **kw))
        steps.append(lambda: runs.real_tasks(out, **kw))
    if not args.no_claims:
        steps.append(lambda: runs.claims(out, examples=args.examples, **kw))
    start = time.perf_counter()
    sections = []
    for index, step in enumerate(steps, 1):
        _progress(f"report: step {index}/{len(steps)}")
        section = step()
        section.print()
        sections.append(section)
    preamble = [f"squash_sim {__version__}, size `{args.size}`, {time.perf_counter() - start:.0f} s "
                f"on this machine. Every number below was measured in this run; the data behind "
                f"each figure is beside it (CSV/JSON). Result names follow "
                f"`shared/spec/theory.md`."]
    md, page = report.write(sections, out, "squash_sim report: Transformers need glasses!",
                            preamble)
    print(f"\nwrote {md} and {page} (self-contained) in {time.perf_counter() - start:.0f} s")
    return 0


def cmd_real_collapse(args) -> int:
    from squash_sim import runs

    runs.real_collapse(Path(args.out), prompt=args.prompt, precisions=args.precision,
                       max_len=args.max_len, seed=args.seed, compare_global=args.compare_global,
                       formats=args.formats, model=args.model, progress=_progress).print()
    return 0


def cmd_intervene(args) -> int:
    """One intervention kind swept over every layer k; KL / top-1 agreement (and accuracy on the
    capital set for Gemma)."""
    import jax

    from squash_sim import interventions as iv
    from squash_sim import results
    from squash_sim.model import init_params

    real = args.model not in presets.names()
    if real:
        from squash_sim.experiments import capitals
        from squash_sim.models import load

        _progress(f"loading {args.model}")
        model = load(args.model)
        params, config = model.params, model.config
        capital_set = capitals.build_set(model)
        tokens, answers = capital_set.tokens, capital_set.answers
    else:
        config = presets.get(args.model)
        if not config.takes_tokens:
            raise ValueError(f"intervene: --model {args.model} takes vectors; use a token model")
        params = init_params(config, jax.random.key(args.seed))
        tokens = np.random.default_rng(args.seed).integers(0, config.vocab_size, (8, 32))
        answers = None
    kind = args.kind.replace("-", "_")
    if kind == "inject":  # needs a source run: the country switch on the capital set
        if not real:
            raise ValueError("intervene: --kind inject writes another prompt's state; it runs the "
                             "country switch and needs a real --model (e.g. gemma3-270m)")
        switch = capitals.switch(params, config, capital_set, progress=_progress)
        print(f"{'k':>3} {'k/L':>6} {'greedy orig.':>12} {'greedy inj.':>12} {'P(original)':>12} "
              f"{'P(injected)':>12}")
        for row in switch.rows():
            print(f"{row['k']:>3} {row['k/L']:>6.2f} {row['greedy_original']:>12.3f} "
                  f"{row['greedy_injected']:>12.3f} {row['p_original']:>12.3f} "
                  f"{row['p_injected']:>12.3f}")
        print(f"crossover k = {switch.crossover} (greedy answers); "
              f"{switch.crossover_probability} (probability form)")
        results.write_csv(Path(args.out) / f"intervene_inject_{model.name}.csv", switch.rows())
        return 0
    _progress(f"intervene: {kind} at every layer, {args.seeds} seed(s), {len(tokens)} prompts")
    result = iv.sweep((params, config), tokens, kind=kind, seeds=tuple(range(args.seeds)),
                      answers=answers, window=args.window, theta=args.theta,
                      exclude_bos=args.exclude_bos)
    rows = result.summary()
    header = f"{'k':>3} {'k/L':>6} {'KL mean':>10} {'KL std':>9} {'top-1 agree':>12}"
    print(header + ("  P(answer)" if answers is not None else ""))
    for row in rows:
        print(f"{row['k']:>3} {row['k/L']:>6.2f} {row['kl_mean']:>10.4g} {row['kl_std']:>9.3g} "
              f"{row['top1_agreement']:>12.3f}"
              + (f"  {row['answer_probability']:.3f}" if answers is not None else ""))
    out = Path(args.out)
    name = model.name if real else args.model
    stem = f"intervene_{kind}_{name}"
    results.write_csv(out / f"{stem}.csv", rows)
    results.write_json(out / f"{stem}.json", {"kind": kind, "model": name,
                                              "window": args.window, "seeds": args.seeds,
                                              "rows": rows})
    print(f"\nwrote {out / (stem + '.csv')} and {stem}.json")
    return 0


def cmd_check(args) -> int:
    try:
        from proofs_check.runner import main as check_main
    except ImportError:  # proofs_check ships beside squash_sim in the same distribution
        print("squash-sim check: proofs_check is not installed", file=sys.stderr)
        return 2
    return check_main(args.check_args)


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _common(parser, out: str, *, preset: str | None = None, positional: bool = False,
            max_len: int | None = None, seeds: int | None = None) -> None:
    """The options every experiment command shares (those that apply to it)."""
    if preset:
        parser.add_argument("--preset", default=preset, choices=presets.names(),
                            help=f"model shape (default: {preset})")
    if positional:
        parser.add_argument("--positional", type=_positionals, default=None,
                            help=f"positional encoding(s): comma list of {', '.join(POSITIONALS)}, "
                                 "or 'all' (default: the preset's / the figure's)")
    parser.add_argument("--precision", type=_precision, default=get_precision("fp32"),
                        help="precision policy: fp32, fp64, bf16, bf16-pure, fp16, "
                             "fp8_e4m3fn-pure, e5m7, ... (default: fp32)")
    if max_len:
        parser.add_argument("--max-len", type=_positive_int, default=max_len,
                            help=f"largest n swept (default: {max_len})")
    parser.add_argument("--seed", type=int, default=0, help="parameter and prompt seed")
    if seeds:
        parser.add_argument("--seeds", type=_positive_int, default=seeds,
                            help=f"number of seeds averaged (default: {seeds})")
    _outputs(parser, out)


def _outputs(parser, out: str, formats_note: str = "") -> None:
    """--out and --formats, which every command that writes files has."""
    parser.add_argument("--out", default=out, help=f"output folder (default: {out})")
    parser.add_argument("--formats", type=_formats, default=["png"],
                        help=f"figure formats, comma list of png, svg, pdf (default: png"
                             f"{formats_note})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="squash-sim",
        description="Numerically check 'Transformers need glasses!' on a JAX decoder-only "
                    "Transformer.")
    parser.add_argument("--version", action="version", version=f"squash_sim {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    collapse = commands.add_parser(
        "collapse", help="representational collapse (Theorem B.3): model sweep, Figures 8, 9, 10",
        description="--protocol model (default): distance between the last-token outputs of "
                    "prompt + n ones and prompt + (n+1) ones, n = 1..max-len, from ONE forward "
                    "pass (the prefix property). figure10 / figure8: the paper's one-layer "
                    "protocol on i.i.d. q, k, v. figure9: softmax total variation (Lemma B.2). "
                    "Prints a table, writes CSV, JSON and a figure.")
    collapse.add_argument("--protocol", default="model",
                          choices=["model", "figure10", "figure8", "figure9"])
    collapse.add_argument("--variance", default="1/d", choices=["1/d", "1"],
                          help="figure10/8: variance of q, k, v (default 1/d: matches the "
                               "paper's read-offs)")
    _common(collapse, "out/collapse", preset="tiny", positional=True, max_len=1024, seeds=5)
    collapse.add_argument("--prompt-len", type=int, default=8,
                          help="random prompt tokens before the ones (default: 8)")
    collapse.set_defaults(run=cmd_collapse)

    precision = commands.add_parser(
        "precision", help="collapse lengths per float format and policy (Corollary B.10)",
        description="First n from which n and n + 1 ones give bit-identical outputs, for fp16, "
                    "bf16, fp8 (storage and -pure), a mantissa sweep at 8 exponent bits and a "
                    "ladder of bf16 rounding points; against the estimates from the fp32 curve.")
    _common(precision, "out/precision", preset="paper-fig10", max_len=2048)
    precision.add_argument("--mantissa-bits", type=_mantissas, default=None,
                           help="comma list of mantissa widths (default: 2,3,4,5,6,7,8,10,12,16,23)")
    precision.set_defaults(run=_section_command(
        "precision", preset="preset", max_len="max_len", seed="seed",
        mantissa_bits="mantissa_bits"))

    sensitivity = commands.add_parser(
        "sensitivity", help="over-squashing profiles ‖∂y_n/∂v_i‖ with the bound (Theorem B.5)",
        description="Exact Jacobian-block norms of the last output w.r.t. every input position, "
                    "frozen attention with the matrix-form bound, real softmax attention, and a "
                    "depth sweep. --max-len is n.")
    _common(sensitivity, "out/sensitivity", max_len=32, seeds=3)
    sensitivity.add_argument("--depths", type=lambda s: [_positive_int(t) for t in s.split(",")],
                             default=[1, 2, 4, 8, 16], help="depth sweep (default: 1,2,4,8,16)")
    sensitivity.set_defaults(run=_section_command(
        "sensitivity", n="max_len", seeds="seeds", depths="depths"))

    counting = commands.add_parser(
        "counting", help="bidirectional NoPE sees only ratios (Prop B.9)",
        description="States of 0^(k n0) 1^(k n1) against k = 1 for bidirectional NoPE and the "
                    "controls (causal mask, RoPE, sinusoidal).")
    _common(counting, "out/counting", seeds=3)
    counting.set_defaults(run=_section_command("counting", seeds="seeds"))

    remedies = commands.add_parser(
        "remedies", help="the glasses: commas, interleaving, windows, positions, precision",
        description="Collapse curves with each remedy of the paper beside the plain case.")
    _common(remedies, "out/remedies", preset="paper-fig10", max_len=2048)
    remedies.set_defaults(run=_section_command(
        "remedies", preset="preset", max_len="max_len", seed="seed"))

    report = commands.add_parser(
        "report", help="the main job: every experiment + the claim table, as HTML and Markdown",
        description="Runs every experiment (quick size: a few minutes on 2 cores) and "
                    "proofs_check, and writes report.html (self-contained), report.md and the "
                    "data and figures under --out.")
    report.add_argument("--size", default="quick", choices=list(REPORT_SIZES),
                        help="quick (default, ~3 min on 2 cores), full (paper sizes), smoke "
                             "(seconds: for tests)")
    report.add_argument("--no-claims", action="store_true", help="skip the proofs_check table")
    report.add_argument("--real", action="store_true",
                        help="add the Gemma 3 270M sections: collapse with the window comparison, "
                             "interventions, copy/count tasks, sensitivity (gemma extra; ≈ 8 min)")
    report.add_argument("--examples", type=_positive_int, default=None,
                        help="proofs_check instances per claim (default: each claim's own)")
    _outputs(report, "out/report", "; png is always embedded")
    report.set_defaults(run=cmd_report)

    real = commands.add_parser(
        "real", help="experiments on a real LLM (--model: Gemma 3 270M, SmolLM2-135M or a path)",
        description="Experiments on a real LLM (Gemma 3 270M by default, SmolLM2-135M, or any "
                    "llama / gemma3 GGUF or Hugging Face directory), run through squash_sim's "
                    "own forward.")
    real_commands = real.add_subparsers(dest="real_command", required=True, metavar="EXPERIMENT")
    real_collapse = real_commands.add_parser(
        "collapse", help="prompt + n ones vs n + 1 ones (Figure 5 analogue)",
        description="Final-layer last-token distance between prompt + n ones and prompt + (n+1) "
                    "ones, n = 1..max-len in one forward pass (digits: the paper's n list), "
                    "with bit-identity per length. Writes CSV, JSON and a figure.")
    real_collapse.add_argument("--prompt", default="count-ones",
                               choices=["count-ones", "copy", "copy-commas", "digits"])
    real_collapse.add_argument("--max-len", type=_positive_int, default=2048,
                               help="largest n (default: 2048)")
    real_collapse.add_argument("--precision", type=lambda s: [_precision(p) for p in s.split(",")],
                               default=[get_precision("fp32"), get_precision("bf16")],
                               help="comma list of precision policies (default: fp32,bf16)")
    real_collapse.add_argument("--seed", type=int, default=0, help="seed of the digits prompt")
    real_collapse.add_argument("--compare-global", action="store_true",
                               help="also run a variant whose local (window 512) layers are made "
                                    "global: the window's effect made visible")
    real_collapse.add_argument("--model", type=_real_model, default="gemma3-270m",
                               help="smollm2-135m, gemma3-270m (default) or a GGUF / Hugging Face path")
    _outputs(real_collapse, "out/real")
    real_collapse.set_defaults(run=cmd_real_collapse)

    tasks = real_commands.add_parser(
        "tasks", help="copy the first / last digit, count ones (few-shot), sensitivity profile",
        description="The paper's behavioural tasks on Gemma 3 270M with few-shot prompts and "
                    "greedy answers, and the sensitivity of the last output to every input "
                    "position. Writes CSV, JSON and a figure.")
    tasks.add_argument("--seeds", type=_positive_int, default=6,
                       help="Bernoulli(0.7) strings per length for counting (default: 6)")
    tasks.add_argument("--model", type=_real_model, default="gemma3-270m",
                       help="smollm2-135m, gemma3-270m (default) or a GGUF / Hugging Face path")
    _outputs(tasks, "out/real")
    tasks.set_defaults(run=_section_command("real_tasks", seeds="seeds", model="model"))

    capitals = real_commands.add_parser(
        "capitals", help="attend first, consolidate later: interventions on capital questions",
        description="Random / freeze / skip-attention at every layer k on one-shot capital "
                    "questions Gemma 3 270M answers, windowed controls, the country switch "
                    "(inject X over Y) and a random-init baseline. Writes CSV, JSON, a figure.")
    capitals.add_argument("--seeds", type=_positive_int, default=3)
    capitals.add_argument("--window", type=_positive_int, default=3,
                          help="blocks of the windowed controls (default: 3)")
    capitals.add_argument("--limit", type=_positive_int, default=30,
                          help="capital questions used (default: 30)")
    capitals.add_argument("--model", type=_real_model, default="gemma3-270m",
                          help="smollm2-135m, gemma3-270m (default) or a GGUF / Hugging Face path")
    _outputs(capitals, "out/real")
    capitals.set_defaults(run=_section_command(
        "capitals", seeds="seeds", window="window", limit="limit", model="model"))

    intervene = commands.add_parser(
        "intervene", help="one hidden-state intervention swept over every layer k",
        description="KL(clean ‖ manipulated) and top-1 agreement at the last position for an "
                    "intervention at every block input k (interventions.md); on gemma3-270m the "
                    "prompts are the capital set and P(capital) is reported too.")
    intervene.add_argument("--kind", required=True,
                           choices=["random", "shuffle", "angle", "freeze", "skip-attention",
                                    "inject"],
                           help="inject: the country switch (real models only)")
    intervene.add_argument("--model", default="tiny",
                           type=lambda s: s if s in presets.names() else _real_model(s),
                           help="a preset (tiny: random init, random prompts) or a real model: "
                                "smollm2-135m, gemma3-270m or a GGUF / Hugging Face path")
    intervene.add_argument("--window", type=_positive_int, default=None,
                           help="windowed variant: blocks [k, k+w) then clean restored "
                                "(random, freeze, skip-attention)")
    intervene.add_argument("--theta", type=float, default=float(np.pi / 2),
                           help="angle: rotation in radians (default π/2)")
    intervene.add_argument("--exclude-bos", action="store_true", help="spare position 0")
    intervene.add_argument("--seeds", type=_positive_int, default=3)
    intervene.add_argument("--seed", type=int, default=0, help="tiny: parameter/prompt seed")
    intervene.add_argument("--out", default="out/intervene", help="output folder")
    intervene.set_defaults(run=cmd_intervene)

    check = commands.add_parser(
        "check", help="check every formal result of the paper numerically (proofs_check)",
        description="Same as `python -m proofs_check`: every claim over Hypothesis instances, a "
                    "table and JSON; exit 1 on a violation. Arguments are passed through "
                    "(e.g. `squash-sim check theorem_b5 --examples 500 --json out.json`).")
    check.add_argument("check_args", nargs=argparse.REMAINDER, help="arguments for proofs_check")
    check.set_defaults(run=cmd_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "prompt_len", 0) < 0:
        parser.error("--prompt-len must be >= 0")
    args.max_len_given = any(a == "--max-len" or a.startswith("--max-len=")
                             for a in (argv if argv is not None else sys.argv[1:]))
    try:
        return args.run(args)
    except (ValueError, TypeError, FloatingPointError, ImportError) as err:
        print(f"squash-sim {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
