"""`squash-sim`: the command line. It only wires: experiments compute, plotting draws, results
write."""

from __future__ import annotations

import argparse
import contextlib
import math
import re
import signal
import stat
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from squash_sim import __version__, _xla_flags, checks, presets
from squash_sim.config import POSITIONALS
from squash_sim.precision import get as get_precision


def _progress(message: str) -> None:
    if _INTERRUPTED:  # a Ctrl-C that landed where Python drops it (see _catch_interrupts)
        raise KeyboardInterrupt
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


_INTERRUPTED: list[bool] = []


@contextlib.contextmanager
def _catch_interrupts():
    """Ctrl-C raises KeyboardInterrupt wherever Python happens to be, e.g. inside JAX's garbage-
    collection callback, where it is printed as an "Exception ignored" traceback and dropped (the
    run went on). So: remember it, keep such drops silent, and raise it again at the next
    progress line, where main turns it into one line and exit 130."""
    def on_sigint(signum, frame):
        _INTERRUPTED.append(True)
        raise KeyboardInterrupt

    def unraisable(report):
        if not issubclass(report.exc_type, KeyboardInterrupt):
            previous_hook(report)

    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is signal.SIG_IGN):  # e.g. a `cmd &` job: ignored
        yield
        return
    previous_handler = signal.signal(signal.SIGINT, on_sigint)
    previous_hook, sys.unraisablehook = sys.unraisablehook, unraisable
    try:
        yield
        if _INTERRUPTED:  # dropped where nothing asked again (the run went on): stop now
            raise KeyboardInterrupt
    finally:
        signal.signal(signal.SIGINT, previous_handler)
        sys.unraisablehook = previous_hook
        _INTERRUPTED.clear()


# Upper bounds of the sizes a command accepts: beyond them a run would not fit a workstation's
# memory (hidden states of n positions) or overflow the int32 positions, long after starting.
MAX_LEN = 2**20
MAX_COUNT = 10_000  # seeds, layers, examples, questions
SEED_MAX = 2**63 - 1  # JAX keys take int64 seeds; NumPy any int >= 0


# What every command's exit status means (printed under `squash-sim --help`; each one is tested).
EXIT_STATUS = ("exit status: 0 done; 1 `check` found a violation (or a --mutant was not refuted, "
               "or a --replay did not reproduce); 2 bad arguments or input, one line on stderr, "
               "nothing run; 130 interrupted (files already written are whole).")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: `squash-sim collapse: error: ... (see --help)`, exit 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _int_in(low: int, high: int, what: str = "an integer"):
    """An argparse type: an int in low..high (a plain int, not 1e3 or 1.5)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what} in {low}..{high}, got "
                                             f"{text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected {what} in {low}..{high}, got {value}")
        return value
    parse.__name__ = what
    return parse


def _path(text: str) -> Path:
    """A path the system can name, checked before anything opens it (checks.path: no NUL byte,
    no over-long path or name, encodable; a 5,000-character --out or a 300-character folder
    name used to raise OSError inside argparse)."""
    try:
        return checks.path("squash-sim", "path", text).expanduser()
    except (ValueError, TypeError) as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("squash-sim: ")) from None


def _real_model(text: str) -> str:
    """--model of the real-model commands: a known name or a checkpoint path the run can use
    (checked before any work: a GGUF regular file, or a Hugging Face folder with config.json,
    *.safetensors and the tokenizer.json every experiment encodes its prompts with)."""
    from squash_sim.models import NAMES

    if text in NAMES:
        return text
    path = _path(text)
    try:
        info = path.stat()
    except OSError:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(NAMES)} or the path of a "
                                         f"GGUF file or Hugging Face directory, got "
                                         f"{checks.shorten(text)}") from None
    if stat.S_ISDIR(info.st_mode):
        missing = [name for name in ("config.json", "tokenizer.json")
                   if not (path / name).is_file()]
        if not any(path.glob("*.safetensors")):
            missing.append("*.safetensors")
        if missing:
            raise argparse.ArgumentTypeError(
                f"{checks.shorten(text)} is not a usable Hugging Face folder: it has no "
                f"{', '.join(missing)} (the experiments encode text prompts, so tokenizer.json "
                f"is needed)")
    elif not stat.S_ISREG(info.st_mode):
        raise argparse.ArgumentTypeError(f"{checks.shorten(text)} is not a regular file (a FIFO or a "
                                         f"device is never opened); give a GGUF file")
    return text


def _positive_int(text: str) -> int:
    """A count (seeds, examples, window, ...): 1..MAX_COUNT."""
    return _int_in(1, MAX_COUNT, "a positive integer")(text)


_length = _int_in(1, MAX_LEN, "a positive integer")
_seed = _int_in(0, SEED_MAX, "a seed")


def _positive_ints(text: str) -> list[int]:
    values = [t.strip() for t in text.split(",")]
    if not text.strip() or not all(values):
        raise argparse.ArgumentTypeError(f"expected a comma list of positive integers, got "
                                         f"{text!r}")
    return [_int_in(1, 256, "a positive integer")(v) for v in values]


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _out_folder(text: str) -> str:
    """--out: a folder that is or can be created and written, checked before any work (an
    existing file or an impossible path used to fail only after the whole computation). Nothing
    is created here: a rejected run writes nothing."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a folder, got an empty path")
    path = _path(text)
    try:
        if path.exists() and not path.is_dir():
            raise argparse.ArgumentTypeError(
                f"{checks.shorten(text)} is an existing file; give a folder")
        existing = path
        while not existing.exists():
            if existing.is_symlink():  # a dangling link: mkdir would fail on it
                raise argparse.ArgumentTypeError(f"{checks.shorten(str(existing))} is a broken symbolic "
                                                 f"link")
            existing = existing.parent
    except OSError as err:  # e.g. a component that is a file, or no permission to look
        raise argparse.ArgumentTypeError(f"cannot use {checks.shorten(text)}: "
                                         f"{err.strerror or err}") from None
    if not existing.is_dir():
        raise argparse.ArgumentTypeError(f"cannot create {checks.shorten(text)}: "
                                         f"{checks.shorten(str(existing))} is a file")
    try:  # the honest test (os.access says yes to root on a read-only file system)
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise argparse.ArgumentTypeError(f"cannot write in {str(existing)!r}: "
                                         f"{err.strerror or err}") from None
    return text


def _precisions(text: str) -> list:
    return [_precision(p.strip()) for p in text.split(",")]


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


def _float_formats(text: str) -> tuple[str, ...]:
    """--float-formats: a comma list of the accumulation table's formats."""
    from squash_sim.experiments.accumulation_collapse import FORMATS

    names = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [n for n in names if n not in FORMATS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown float format(s) {bad or text!r}; use a comma "
                                         f"list of {', '.join(FORMATS)}")
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
    elif args.protocol == "figure9":
        section = runs.softmax_tv(out, seeds=args.seeds, formats=args.formats, progress=_progress)
    else:
        section = runs.attention_collapse(
            out, figure=args.protocol, positionals=args.positional, seeds=args.seeds,
            max_n=args.max_len if args.max_len_given else None, variance=args.variance,
            precision=args.precision[0], formats=args.formats, progress=_progress)
    section.print()
    return 0


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


def cmd_report(args) -> int:
    from squash_sim import runs

    start = time.perf_counter()
    md, page, _ = runs.report(Path(args.out), size=args.size, real=args.real,
                              claims_table=not args.no_claims, examples=args.examples,
                              fresh=args.fresh, formats=args.formats, progress=_progress,
                              interrupted=lambda: bool(_INTERRUPTED))
    print(f"\nwrote {md} and {page} (self-contained) in {time.perf_counter() - start:.0f} s")
    return 0


def cmd_explore(args) -> int:
    from squash_sim import explorer

    start = time.perf_counter()
    grid = explorer.FULL if args.full else explorer.DEFAULT
    with explorer.Progress(interrupted=lambda: bool(_INTERRUPTED)) as progress:
        files = explorer.build(Path(args.out), grid, progress=progress)
    index = Path(args.out).resolve() / "index.html"
    print(f"wrote {len(files)} files to {args.out} in {time.perf_counter() - start:.0f} s; open "
          f"{index.as_uri()} (works offline, no Python needed)")
    return 0


def cmd_real_collapse(args) -> int:
    from squash_sim import runs

    runs.real_collapse(Path(args.out), prompt=args.prompt, precisions=args.precision,
                       max_len=args.max_len, seed=args.seed, compare_global=args.compare_global,
                       formats=args.formats, model=args.model, progress=_progress).print()
    return 0


def cmd_real_parity(args) -> int:
    from squash_sim import runs

    runs.precision_parity(Path(args.out), model=args.model, policies=args.precision,
                          prompts=args.prompts, prompt_tokens=args.prompt_tokens,
                          steps=args.steps, greedy_prompts=args.greedy_prompts, guess=args.guess,
                          formats=args.formats, progress=_progress).print()
    return 0


def cmd_intervene(args) -> int:
    from squash_sim import runs

    runs.intervene(Path(args.out), kind=args.kind, model=args.model, seeds=args.seeds,
                   seed=args.seed, window=args.window, theta=args.theta,
                   exclude_bos=args.exclude_bos, formats=args.formats, progress=_progress).print()
    return 0


def cmd_check(args) -> int:
    try:
        from proofs_check.runner import main as check_main
    except ModuleNotFoundError as err:  # proofs_check ships beside squash_sim; Hypothesis does not
        if (err.name or "").startswith("proofs_check"):
            print("squash-sim check: proofs_check is not installed", file=sys.stderr)
            return 2
        raise
    return check_main(args.check_args, prog="squash-sim check")


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _common(parser, out: str, *, preset: str | None = None, positional: bool = False,
            max_len: int | None = None, seeds: int | None = None, precision: bool = True) -> None:
    """The options every experiment command shares (those that apply to it)."""
    if preset:
        parser.add_argument("--preset", default=preset, choices=presets.names(),
                            help=f"model shape (default: {preset})")
    if positional:
        parser.add_argument("--positional", type=_positionals, default=None,
                            help=f"positional encoding(s): comma list of {', '.join(POSITIONALS)}, "
                                 "or 'all' (default: the preset's / the figure's)")
    if precision:
        parser.add_argument("--precision", type=_precisions, default=[get_precision("fp32")],
                            help="precision policy, or a comma list of them drawn on one figure "
                                 "(--protocol model): fp32, fp64, bf16, bf16-pure, fp16, "
                                 "fp8_e4m3fn-pure, e5m7, bf16-pure+pairwise, ... (default: fp32)")
    if max_len:
        parser.add_argument("--max-len", type=_length, default=max_len,
                            help=f"largest n swept, up to {MAX_LEN} (default: {max_len})")
    parser.add_argument("--seed", type=_seed, default=0, help="parameter and prompt seed")
    if seeds:
        parser.add_argument("--seeds", type=_positive_int, default=seeds,
                            help=f"number of seeds averaged (default: {seeds})")
    _outputs(parser, out)


def _outputs(parser, out: str, formats_note: str = "") -> None:
    """--out and --formats, which every command that writes files has."""
    parser.add_argument("--out", type=_out_folder, default=out,
                        help=f"output folder (default: {out})")
    parser.add_argument("--formats", type=_formats, default=["png"],
                        help=f"figure formats, comma list of png, svg, pdf (default: png"
                             f"{formats_note})")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="squash-sim",
        description="Numerically check 'Transformers need glasses!' on a JAX decoder-only "
                    "Transformer.",
        epilog=EXIT_STATUS)
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
                          choices=["model", "figure10", "figure8", "figure9"],
                          help="model (default): a preset swept in one forward pass; figure10, "
                               "figure8, figure9: the paper's protocols (see above)")
    collapse.add_argument("--variance", default="1/d", choices=["1/d", "1"],
                          help="figure10/8: variance of q, k, v (default 1/d: matches the "
                               "paper's read-offs)")
    _common(collapse, "out/collapse", preset="tiny", positional=True, max_len=1024, seeds=5)
    collapse.add_argument("--prompt-len", type=_int_in(0, MAX_LEN, "an integer"), default=8,
                          help="random prompt tokens before the ones (default: 8)")
    collapse.set_defaults(run=cmd_collapse)

    precision = commands.add_parser(
        "precision", help="collapse lengths per float format and policy (Corollary B.10)",
        description="First n from which n and n + 1 ones give bit-identical outputs, for fp16, "
                    "bf16, fp8 (storage and -pure), a mantissa sweep at 8 exponent bits and a "
                    "ladder of bf16 rounding points; against the estimates from the fp32 curve.")
    _common(precision, "out/precision", preset="paper-fig10", max_len=2048,
            precision=False)  # no --precision: it would be ignored
    precision.add_argument("--mantissa-bits", type=_mantissas, default=None,
                           help="comma list of mantissa widths (default: 2,3,4,5,6,7,8,10,12,16,23)")
    precision.set_defaults(run=_section_command(
        "precision", preset="preset", max_len="max_len", seed="seed",
        mantissa_bits="mantissa_bits"))

    accumulation = commands.add_parser(
        "accumulation", help="collapse length per format × accumulation model",
        description="n* and its mechanism (stalled accumulator or representations rounding "
                    "together) for every float format × accumulation model (sequential, "
                    "pairwise, blocks of 32/128 promoted to fp32, Kahan) and, on a preset, "
                    "hardware (storage with fp32 sums, V100/A100/H100 tensor cores bit for bit, "
                    "TPU default precision); with --model, on a real LLM with the count-ones "
                    "prompt (accumulation models only).")
    _common(accumulation, "out/accumulation", preset="paper-fig10", max_len=2048,
            precision=False)  # the command runs every format × model itself
    accumulation.add_argument("--model", type=_real_model, default=None,
                              help="a real LLM instead of the preset (gemma3-270m, smollm2-135m "
                                   "or a checkpoint path); each policy compiles for minutes")
    accumulation.add_argument("--float-formats", type=_float_formats, default=None,
                              help="comma list of formats (default: fp32,bf16,fp16,fp8_e4m3fn,"
                                   "fp8_e5m2)")
    accumulation.set_defaults(run=_section_command(
        "accumulation", preset="preset", model="model", max_len="max_len", seed="seed",
        float_formats="float_formats"))

    sensitivity = commands.add_parser(
        "sensitivity", help="over-squashing profiles ‖∂y_n/∂v_i‖ with the bound (Theorem B.5)",
        description="Exact Jacobian-block norms of the last output w.r.t. every input position, "
                    "frozen attention with the matrix-form bound, real softmax attention, and a "
                    "depth sweep. --max-len is n.")
    _common(sensitivity, "out/sensitivity", max_len=32, seeds=3,
            precision=False)  # no --precision: it would be ignored
    sensitivity.add_argument("--depths", type=_positive_ints,
                             default=[1, 2, 4, 8, 16], help="depth sweep (default: 1,2,4,8,16)")
    sensitivity.set_defaults(run=_section_command(
        "sensitivity", n="max_len", seeds="seeds", depths="depths"))

    counting = commands.add_parser(
        "counting", help="bidirectional NoPE sees only ratios (Prop B.9)",
        description="States of 0^(k n0) 1^(k n1) against k = 1 for bidirectional NoPE and the "
                    "controls (causal mask, RoPE, sinusoidal).")
    _common(counting, "out/counting", seeds=3,
            precision=False)  # no --precision: it would be ignored
    counting.set_defaults(run=_section_command("counting", seeds="seeds"))

    remedies = commands.add_parser(
        "remedies", help="the glasses: commas, interleaving, windows, positions, precision",
        description="Collapse curves with each remedy of the paper beside the plain case.")
    _common(remedies, "out/remedies", preset="paper-fig10", max_len=2048,
            precision=False)  # no --precision: it would be ignored
    remedies.set_defaults(run=_section_command(
        "remedies", preset="preset", max_len="max_len", seed="seed"))

    report = commands.add_parser(
        "report", help="the main job: every experiment + the claim table, as HTML and Markdown",
        description="Runs every experiment and proofs_check, and writes report.html "
                    "(self-contained), report.md and the data and figures under --out. Measured "
                    "on a 2-core x86-64 machine with an empty compilation cache: quick 172 s "
                    "idle, 519 s at load average 9; --real --size smoke 13 min idle. The progress "
                    "line estimates the time left from the machine's load.")
    report.add_argument("--size", default="quick", choices=["quick", "full", "smoke"],
                        help="quick (default; see above), full (the paper's sizes, n up to 65,536; "
                             "not timed), "
                             "smoke (about a minute: for tests)")
    report.add_argument("--fresh", action="store_true",
                        help="recompute every section (default: reuse sections whose inputs "
                             "are unchanged)")
    report.add_argument("--no-claims", action="store_true", help="skip the proofs_check table")
    report.add_argument("--real", action="store_true",
                        help="add the Gemma 3 270M sections: collapse with the window comparison, "
                             "interventions, copy/count tasks, sensitivity, accumulation (gemma "
                             "extra; tens of minutes on 2 cores, estimated by the progress line)")
    report.add_argument("--examples", type=_positive_int, default=None,
                        help="proofs_check instances per claim (default: each claim's own)")
    _outputs(report, "out/report", "; png is always embedded")
    report.set_defaults(run=cmd_report)

    explore = commands.add_parser(
        "explore", help="an install-free collapse explorer: a static site for teaching",
        description="Precomputes the collapse of the Figure 10 model for a grid of float "
                    "formats, policies, accumulation models, positional encodings, sweep "
                    "lengths and seeds, and writes a self-contained site (index.html, its data, "
                    "vendored uPlot) to --out: open index.html from file:// with no network and "
                    "no Python. Default grid: a few minutes on 2 cores (docs/explorer.md).")
    explore.add_argument("--out", type=_out_folder, default="out/explore",
                         help="folder for the site (default: out/explore)")
    explore.add_argument("--full", action="store_true",
                         help="the extended grid: pairwise sums, 6 more e×m formats, ALiBi, "
                              "3 seeds, sweeps to 2,048 (450 settings: an hour or more)")
    explore.set_defaults(run=cmd_explore)

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
                               choices=["count-ones", "copy", "copy-commas", "digits"],
                               help="the prompt before the ones (default: count-ones)")
    real_collapse.add_argument("--max-len", type=_length, default=2048,
                               help="largest n (default: 2048)")
    real_collapse.add_argument("--precision", type=_precisions,
                               default=[get_precision("fp32"), get_precision("bf16")],
                               help="comma list of precision policies (default: fp32,bf16)")
    real_collapse.add_argument("--seed", type=_seed, default=0, help="seed of the digits prompt")
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

    parity = real_commands.add_parser(
        "parity", help="precision parity with fp32: logits, top-1, greedy divergence",
        description="Each policy against fp32 on the same prompts: last-token logit differences "
                    "in fp32 spacings (max, median), top-1 agreement, and the first step where "
                    "its greedy continuation leaves fp32's (one teacher-forced forward per "
                    "policy). Writes JSON. A tensor-core policy's forward of a real model took "
                    "about 2 s per token on a shared 2-core machine (load 9-18): shrink "
                    "--prompts / --greedy-prompts / --steps.")
    parity.add_argument("--precision", type=_precisions, default=None,
                        help="comma list of policies (default: fp32,bf16,bf16+tc:h100,"
                             "bf16+tc:h100+scaled:e4m3)")
    parity.add_argument("--prompts", type=_int_in(1, 50, "an integer in 1..50"), default=50,
                        help="prompts for the last-token statistics (default: 50)")
    parity.add_argument("--prompt-tokens", type=_int_in(1, 12, "an integer in 1..12"), default=12,
                        help="tokens each prompt is cut to (default: 12)")
    parity.add_argument("--steps", type=_int_in(1, 1024, "an integer in 1..1024"), default=128,
                        help="greedy continuation length (default: 128)")
    parity.add_argument("--greedy-prompts", type=_int_in(0, 50, "an integer in 0..50"),
                        default=None, help="prompts whose continuation is compared (default: "
                                           "--prompts; 0: none)")
    parity.add_argument("--guess", choices=["transformers", "none"], default="transformers",
                        help="start of fp32's greedy decode: transformers' own decode (oracle "
                             "extra; default, ignored without it) or zeros (slow)")
    parity.add_argument("--model", type=_real_model, default="gemma3-270m",
                        help="smollm2-135m, gemma3-270m (default) or a GGUF / Hugging Face path")
    _outputs(parity, "out/real")
    parity.set_defaults(run=cmd_real_parity)

    capitals = real_commands.add_parser(
        "capitals", help="attend first, consolidate later: interventions on capital questions",
        description="Random / freeze / skip-attention at every layer k on one-shot capital "
                    "questions Gemma 3 270M answers, windowed controls, the country switch "
                    "(inject X over Y) and a random-init baseline. Writes CSV, JSON, a figure.")
    capitals.add_argument("--seeds", type=_positive_int, default=3,
                          help="random draws per layer k for the random intervention (default: 3)")
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
                    "intervention at every block input k (squash_sim/theory.md, section 5); on a "
                    "real model the prompts are its capital set and P(capital) is reported too.")
    intervene.add_argument("--kind", required=True,
                           choices=["random", "shuffle", "angle", "freeze", "skip-attention",
                                    "inject"],
                           help="inject: the country switch (a real --model only: gemma3-270m, "
                                "smollm2-135m or a checkpoint path)")
    intervene.add_argument("--model", default="tiny",
                           type=lambda s: s if s in presets.names() else _real_model(s),
                           help="a preset (tiny: random init, random prompts) or a real model: "
                                "smollm2-135m, gemma3-270m or a GGUF / Hugging Face path")
    intervene.add_argument("--window", type=_positive_int, default=None,
                           help="windowed variant: blocks [k, k+w) then clean restored "
                                "(random, freeze, skip-attention)")
    intervene.add_argument("--theta", type=_finite_float, default=float(np.pi / 2),
                           help="angle: rotation in radians (default π/2)")
    intervene.add_argument("--exclude-bos", action="store_true", help="spare position 0")
    intervene.add_argument("--seeds", type=_positive_int, default=3,
                           help="random draws per layer k, averaged (default: 3)")
    intervene.add_argument("--seed", type=_seed, default=0, help="tiny: parameter/prompt seed")
    _outputs(intervene, "out/intervene")
    intervene.set_defaults(run=cmd_intervene)

    check = commands.add_parser(
        "check", help="check every formal result of the paper numerically (proofs_check)",
        description="Same as `python -m proofs_check`: every claim over Hypothesis instances, a "
                    "table and JSON; exit 1 on a violation. Arguments are passed through "
                    "(e.g. `squash-sim check theorem_b5 --examples 500 --json out.json`).")
    check.add_argument("check_args", nargs=argparse.REMAINDER, help="arguments for proofs_check")
    check.set_defaults(run=cmd_check)
    return parser


# Errors a user's input can cause; anything else is a bug and keeps its traceback.
USER_ERRORS = (ValueError, TypeError, ArithmeticError, ImportError, OSError)


def _one_line(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror and isinstance(err.filename, str):
        return f"{err.strerror}: {checks.shorten(err.filename)}"  # not a 5,000-character path in full
    return (" ".join(str(err).split()) or type(err).__name__) + _install_hint(err)


def _install_hint(err: BaseException) -> str:
    """For a missing optional dependency, the extra that installs it (read from the package's
    own metadata, or pyproject.toml in a checkout): one source for what each extra holds."""
    module = (getattr(err, "name", None) or "").split(".")[0]
    if not isinstance(err, ModuleNotFoundError) or not module:
        return ""
    for extra, requirements in _extras().items():
        names = {r.split(";")[0].replace(" ", "") for r in requirements}
        names = {re.split(r"[<>=!~\[]", n)[0].lower().replace("-", "_") for n in names}
        if module.lower() in names:
            return (f" (install the '{extra}' extra: pip install 'squash_sim[{extra}]', or "
                    f"pip install \".[{extra}]\" in a checkout)")
    return ""


def _extras() -> dict[str, list[str]]:
    from importlib import metadata

    try:
        extras: dict[str, list[str]] = {}
        for line in metadata.requires("squash_sim") or []:
            name, _, marker = line.partition(";")
            found = re.search(r"extra\s*==\s*['\"]([^'\"]+)", marker)
            if found:
                extras.setdefault(found.group(1), []).append(name)
        if extras:
            return extras
    except metadata.PackageNotFoundError:
        pass
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    if not pyproject.is_file():
        return {}
    try:
        import tomllib
    except ImportError:  # Python 3.10 reads it from the installed metadata above
        return {}
    return tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]


def _kept(out: str | None, since: float) -> str:
    """What an interrupted run leaves: the files written since it started (each is whole)."""
    if not out or not Path(out).is_dir():
        return "nothing was written"
    files = sorted(p.name for p in Path(out).iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.stat().st_mtime >= since)
    if not files:
        return f"nothing was written to {out}"
    shown = ", ".join(files[:6]) + (f" and {len(files) - 6} more" if len(files) > 6 else "")
    return f"kept {len(files)} complete file(s) in {out}: {shown}"


def _combination_error(args) -> str | None:
    """Rules between options, checked before any work."""
    if args.command == "collapse" and args.protocol != "model" and len(args.precision) > 1:
        return f"--protocol {args.protocol} takes one --precision policy (a list: --protocol model)"
    if getattr(args, "real_command", None) == "parity" and args.greedy_prompts is not None \
            and args.greedy_prompts > args.prompts:
        return f"--greedy-prompts ({args.greedy_prompts}) must be at most --prompts ({args.prompts})"
    if args.command == "intervene":
        kind = args.kind.replace("-", "_")
        if args.window is not None and kind not in ("random", "freeze", "skip_attention"):
            return f"--window applies to --kind random, freeze, skip-attention, not {args.kind}"
        if kind == "inject" and args.model in presets.names():
            return ("--kind inject runs the country switch and needs a real model: --model "
                    "gemma3-270m, smollm2-135m or a checkpoint path")
    return None


def _check_replay(rest: list[str]) -> None:
    """`check --replay F`: the file must exist (its contents are proofs_check's to judge)."""
    for i, arg in enumerate(rest):
        target = rest[i + 1] if arg == "--replay" and i + 1 < len(rest) else (
            arg.split("=", 1)[1] if arg.startswith("--replay=") else None)
        if target is not None:
            try:
                _path(target)
            except argparse.ArgumentTypeError as err:
                raise ValueError(f"--replay: {err}") from None
        if target is not None and not Path(target).is_file():
            why = "is a folder" if Path(target).is_dir() else "does not exist"
            raise ValueError(f"--replay {target}: {why} (give a counterexample JSON file)")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    started = time.time() - 1  # file times may be rounded down to the second
    if argv[:1] == ["check"]:  # everything after `check` (after `--` too) is proofs_check's
        rest = argv[2:] if argv[1:2] == ["--"] else argv[1:]
        try:
            _check_replay(rest)
            return cmd_check(argparse.Namespace(check_args=rest))
        except KeyboardInterrupt:
            print("squash-sim check: interrupted; counterexamples already shrunk and written "
                  "are complete", file=sys.stderr)
            return 130
        except USER_ERRORS as err:
            print(f"squash-sim check: error: {_one_line(err)}", file=sys.stderr)
            return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    args.max_len_given = any(a == "--max-len" or a.startswith("--max-len=") for a in argv)
    command = " ".join(filter(None, ["squash-sim", args.command,
                                     getattr(args, "real_command", None)]))
    problem = _combination_error(args)
    if problem:
        print(f"{command}: error: {problem} (see {command} --help)", file=sys.stderr)
        return 2
    _xla_flags.enable_compilation_cache()  # an entry point: off with SQUASH_SIM_COMPILE_CACHE=0
    try:
        with _catch_interrupts():
            return args.run(args)
    except KeyboardInterrupt:
        print(f"{command}: interrupted; {_kept(getattr(args, 'out', None), started)} "
              f"(files are written whole or not at all)", file=sys.stderr)
        return 130
    except USER_ERRORS as err:
        print(f"{command}: error: {_one_line(err)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
