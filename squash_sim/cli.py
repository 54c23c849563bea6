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


def cmd_collapse(args) -> int:
    from squash_sim import plotting, results
    from squash_sim.experiments import collapse

    base = presets.get(args.preset)
    positionals = args.positional or [base.positional]
    runs = {}
    for index, positional in enumerate(positionals, 1):
        config = base.replace(positional=positional,
                              max_len=max(base.max_len or 0, args.max_len + args.prompt_len + 1)
                              if positional == "learned" else base.max_len)
        _progress(f"[{index}/{len(positionals)}] {args.preset}, positional={positional}, "
                  f"precision={args.precision}: one forward pass over "
                  f"{args.prompt_len + args.max_len + 1} positions")
        result = collapse.run(config, args.precision, max_len=args.max_len,
                              prompt_len=args.prompt_len, seed=args.seed)
        _progress(f"      done in {result.seconds:.1f} s; decay exponent "
                  f"{_fmt(result.decay_exponent())}, collapse length {result.collapse_length}")
        runs[positional] = result

    eps = floats.BF16.eps
    print(f"\nRepresentational collapse (Theorem B.3): ‖y_n − y*_(n+1)‖₁ for prompt + n ones vs "
          f"n + 1 ones\npreset {args.preset}, precision {args.precision}, prompt {args.prompt_len} "
          f"random tokens, seed {args.seed}; bf16 spacing 2^-7 = {eps:.6f}\n")
    header = f"{'n':>7}" + "".join(f" | {p:>24}" for p in runs)
    print(header + "\n" + "-" * len(header))
    for n in [n for n in _SHOW_N if n <= args.max_len]:
        cells = []
        for result in runs.values():
            d = result.l1[n - 1]
            mark = " ==" if result.bit_identical[n - 1] else ""
            cells.append(f"{d:11.4e} ({d / eps:8.3g}·ε){mark:>3}")
        print(f"{n:>7}" + "".join(f" | {c:>24}" for c in cells))
    print("\n(ε = bf16 spacing; '==' marks bit-identical float32 outputs)")

    out = Path(args.out)
    rows = [{"positional": p, **row} for p, r in runs.items() for row in r.table()]
    results.write_csv(out / "collapse.csv", rows)
    results.write_json(out / "collapse.json", {
        "experiment": "collapse (Theorem B.3)", "preset": args.preset,
        "precision": str(args.precision), "max_len": args.max_len, "prompt_len": args.prompt_len,
        "seed": args.seed, "squash_sim": __version__,
        "summary": {p: {"decay_exponent": r.decay_exponent(), "collapse_length": r.collapse_length,
                        "seconds": r.seconds, "l1_at_max_len": float(r.l1[-1])}
                    for p, r in runs.items()},
    })
    figure = plotting.collapse_figure(
        {p: r for p, r in runs.items()},
        f"Representational collapse: {args.preset}, {args.precision}")
    for suffix in args.formats:
        results.write_figure(out / f"collapse.{suffix}", figure)
    print(f"\nwrote {out / 'collapse.csv'}, collapse.json, "
          + ", ".join(f"collapse.{s}" for s in args.formats))
    return 0


def cmd_real_collapse(args) -> int:
    from squash_sim import plotting, results
    from squash_sim.experiments import real_collapse
    from squash_sim.models import gemma3_270m

    _progress("loading Gemma 3 270M (first time: assembling and dequantizing, ~1 min)")
    model = gemma3_270m()
    runs = []
    for precision in args.precision:
        result = real_collapse.run(model, args.prompt, precision, max_len=args.max_len,
                                   seed=args.seed, progress=_progress)
        _progress(f"      done in {result.seconds:.1f} s")
        runs.append(result)
    print(f"\nGemma 3 270M, prompt {args.prompt!r}: final-layer last-token ‖y_n − y*_(n+1)‖₁ "
          f"('==' marks bit-identical outputs)\n")
    header = f"{'n':>6}" + "".join(f" | {r.precision:>18}" for r in runs)
    print(header + "\n" + "-" * len(header))
    for n in sorted({int(n) for n in runs[0].n if n in real_collapse.PAPER_N or n == args.max_len}):
        cells = []
        for r in runs:
            i = int(np.flatnonzero(r.n == n)[0])
            cells.append(f"{r.l1[i]:12.4e}{' ==' if r.bit_identical[i] else '   '}")
        print(f"{n:>6}" + "".join(f" | {c:>18}" for c in cells))
    out = Path(args.out)
    stem = f"real_collapse_{args.prompt}"
    results.write_csv(out / f"{stem}.csv", [row for r in runs for row in r.rows()])
    results.write_json(out / f"{stem}.json", {
        "experiment": "real-model collapse (Figure 5 analogue)", "model": "gemma3-270m Q4_K_M",
        "prompt": args.prompt, "max_len": args.max_len, "seed": args.seed,
        "summary": {r.precision: {"bit_identical_lengths": int(r.bit_identical.sum()),
                                  "first_bit_identical_n": (int(r.n[r.bit_identical][0])
                                                            if r.bit_identical.any() else None),
                                  "l1_at_max_len": float(r.l1[-1]), "tokens": r.tokens,
                                  "seconds": r.seconds} for r in runs}})
    figure = plotting.real_collapse_figure(runs, f"Gemma 3 270M: {args.prompt}")
    for suffix in args.formats:
        results.write_figure(out / f"{stem}.{suffix}", figure)
    print(f"\nwrote {out / (stem + '.csv')}, {stem}.json, "
          + ", ".join(f"{stem}.{s}" for s in args.formats))
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="squash-sim",
        description="Numerically check 'Transformers need glasses!' on a JAX decoder-only "
                    "Transformer.")
    parser.add_argument("--version", action="version", version=f"squash_sim {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    collapse = commands.add_parser(
        "collapse", help="representational collapse sweep (Theorem B.3), one forward pass",
        description="Distance between the last-token outputs of prompt + n ones and prompt + "
                    "(n+1) ones, for n = 1..max-len, from ONE forward pass (the prefix property). "
                    "Prints a table, writes collapse.csv, collapse.json and a figure.")
    collapse.add_argument("--preset", default="tiny", choices=presets.names(),
                          help="model shape (default: tiny)")
    collapse.add_argument("--positional", type=_positionals, default=None,
                          help="positional encoding(s): comma list of "
                               f"{', '.join(POSITIONALS)}, or 'all' (default: the preset's)")
    collapse.add_argument("--precision", type=_precision, default=get_precision("fp32"),
                          help="precision policy: fp32, fp64, bf16, bf16-pure, fp16, "
                               "fp8_e4m3fn-pure, e5m7, ... (default: fp32)")
    collapse.add_argument("--max-len", type=_positive_int, default=1024,
                          help="largest n swept (default: 1024)")
    collapse.add_argument("--prompt-len", type=int, default=8,
                          help="random prompt tokens before the ones (default: 8)")
    collapse.add_argument("--seed", type=int, default=0, help="parameter and prompt seed")
    collapse.add_argument("--out", default="out/collapse", help="output folder")
    collapse.add_argument("--formats", type=lambda s: s.split(","), default=["png"],
                          help="figure formats, comma list of png, svg, pdf (default: png)")
    collapse.set_defaults(run=cmd_collapse)

    real = commands.add_parser(
        "real", help="experiments on a real LLM (Gemma 3 270M; needs the gemma extra)",
        description="Experiments on Gemma 3 270M, run through squash_sim's own forward.")
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
    real_collapse.add_argument("--out", default="out/real", help="output folder")
    real_collapse.add_argument("--formats", type=lambda s: s.split(","), default=["png"],
                               help="figure formats: png, svg, pdf (default: png)")
    real_collapse.set_defaults(run=cmd_real_collapse)

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
    for suffix in getattr(args, "formats", []):
        if suffix not in ("png", "svg", "pdf"):
            parser.error(f"--formats: unknown figure format {suffix!r}; use png, svg or pdf")
    try:
        return args.run(args)
    except (ValueError, TypeError, FloatingPointError, ImportError) as err:
        print(f"squash-sim {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
