"""The report: a verdict table first, a table of contents, then one section per experiment and the
claim table.

One Jinja2 template (templates/report.md.j2) writes the Markdown; markdown-it-py turns that same
Markdown into the HTML page, with the figures embedded as base64 PNG so the file can be mailed or
opened offline. The terminal shows each section's Markdown as it is computed."""

from __future__ import annotations

import base64
import dataclasses
import importlib.resources
import math
import re
from pathlib import Path

import jinja2
from markdown_it import MarkdownIt

from squash_sim import results

# Every verdict word, explained once (the report prints this list under the verdict table).
VERDICTS = {
    "holds": "every checked instance (or measurement) satisfies the statement, and all of them "
             "lie inside the statement's hypotheses.",
    "holds, assumption not met on k of N": "no instance inside the hypotheses breaks the "
             "statement, but k of the N drawn instances lie outside them (e.g. ALiBi's unbounded "
             "logits, a positional term added to the residual stream). Those k are shown with "
             "what was observed; they are never counted as passes.",
    "erratum": "the paper's printed form of a statement fails with its printed constant and the "
               "corrected form (theory.md) holds: an erratum of the paper, not a failure of the "
               "result; the failing instance is linked and replays like a counterexample.",
    "violated": "at least one instance that meets every assumption breaks the statement; the "
                "shrunk counterexample is linked and replays with `python -m proofs_check "
                "--replay FILE`.",
    "overflow": "a number the verdict would rest on overflowed or is not finite; no verdict is "
                "drawn from it.",
    "not reproducible": "the paper's text does not pin the experiment down enough to reproduce "
                        "its figure; what the stated protocol gives is reported.",
    "not judged": "no instance lies inside the statement's hypotheses (or the sweep is too short "
                  "to decide it): nothing is claimed either way.",
    "measured": "there is no statement to decide (a real model, a profile the theory does not "
                "bound): the numbers are reported as measured.",
}


def verdict_word(word: str) -> str:
    """The glossary key of a verdict ('holds, assumption not met on 3 of 32' → its family)."""
    return "holds, assumption not met on k of N" if word.startswith("holds, assumption") else word


@dataclasses.dataclass
class Verdict:
    """One row of the verdict table: a claim or an experiment, decided."""

    paper: str  # the paper's reference, e.g. "Theorem B.3 [4.2]"
    statement: str  # one line
    verdict: str  # a key of VERDICTS ("holds, assumption not met on 3 of 32" for that family)
    key_number: str  # the number the verdict rests on, in words
    theory: str = ""  # anchor in squash_sim/theory.md (a claim module's name)
    counterexample: str | None = None  # path relative to the report folder
    section: str = ""  # filled in from the section that carries the row
    mechanism: str = ""  # what produced a reported collapse (analysis.mechanism.Mechanism.label())
    latex: str = ""  # the statement as LaTeX (claim modules' LATEX): shown as mathematics

    def __post_init__(self):
        if verdict_word(self.verdict) not in VERDICTS:
            raise ValueError(f"Verdict: unknown verdict {self.verdict!r}; known: {list(VERDICTS)}")


def decide(*, violations: int, assumption_failures: int, instances: int,
           finite: bool = True) -> str:
    """The verdict word from counts: overflow before anything else, then violations, then the
    instances outside the hypotheses."""
    if not finite:
        return "overflow"
    if violations:
        return "violated"
    if instances and assumption_failures >= instances:
        return "not judged"
    if assumption_failures:
        return f"holds, assumption not met on {assumption_failures} of {instances}"
    return "holds"


def headline(rows: list[Verdict]) -> str:
    """The report's first sentence, from the verdict rows: whether every result holds where its
    hypotheses hold, which printed variants are errata, and what is only measured."""
    if not rows:
        return "No section of this run decides a statement."
    families = {}
    for v in rows:
        families.setdefault(verdict_word(v.verdict).split(",")[0], []).append(v)
    holds = families.get("holds", [])
    errata = families.get("erratum", [])
    bad = families.get("violated", []) + families.get("overflow", [])
    decided = len(holds) + len(bad)
    names = lambda group: ", ".join(dict.fromkeys(v.paper.split(" — ")[0].split(" (")[0]
                                                  for v in group))  # noqa: E731
    if bad:
        text = (f"{len(bad)} of {decided} results do not hold: {names(bad)} "
                f"({', '.join(dict.fromkeys(v.verdict for v in bad))}); see the table")
    elif holds:
        text = (f"All {len(holds)} results hold wherever their hypotheses hold" if len(holds) > 1
                else "The result holds wherever its hypotheses hold")
        outside = [v for v in holds if v.verdict != "holds"]
        if outside:
            text += f" ({len(outside)} of them with instances outside their hypotheses, shown)"
    else:
        text = "No result was decided"
    if errata:
        many = len(errata) > 1
        text += (f"; {len(errata)} printed variant{'s' if many else ''} of {names(errata)} "
                 f"fail{'' if many else 's'} with the printed constant{'s' if many else ''} and "
                 f"hold{'' if many else 's'} with the corrected one{'s' if many else ''}: "
                 f"{'errata' if many else 'an erratum'}")
    rest = {word: len(group) for word, group in families.items()
            if word not in ("holds", "erratum", "violated", "overflow")}
    if rest:
        text += "; " + ", ".join(f"{count} {word}" for word, count in rest.items())
    return text + "."


def mathml(latex: str) -> str:
    """LaTeX → inline MathML (latex2mathml: pure Python, no JavaScript in the page), its text
    escaped so that Markdown leaves it alone inside a table cell. '' when it cannot convert."""
    try:
        from latex2mathml.converter import convert
        markup = convert(latex)
    except Exception:  # an unsupported macro: the caller falls back to the plain statement
        return ""
    escape = {c: f"&#{ord(c)};" for c in "\\`*_[]|~"}
    return re.sub(r">([^<]+)<", lambda m: ">" + "".join(escape.get(c, c) for c in m.group(1))
                  + "<", markup.replace("\n", " "))


def _pieces(latex: str) -> list[tuple[bool, str]]:
    """LaTeX cut at its top-level \\text{…} groups: [(is_text, content)] in order. MathML does not
    break lines, so the page sets the words as text (they wrap) between the formulas."""
    pieces, start, i, depth = [], 0, 0, 0
    while i < len(latex):
        if depth == 0 and latex.startswith("\\text{", i):
            end, level = i + len("\\text{"), 1
            while end < len(latex) and level:
                level += {"{": 1, "}": -1}.get(latex[end], 0) if latex[end - 1] != "\\" else 0
                end += 1
            pieces += [(False, latex[start:i]), (True, latex[i + len("\\text{"):end - 1])]
            i = start = end
            continue
        depth += {"{": 1, "}": -1}.get(latex[i], 0)
        i += 2 if latex[i] == "\\" else 1
    pieces.append((False, latex[start:]))
    spacing = re.compile(r"^(\s|\\[ ,;:!]|\\q?quad|~)*$")
    return [(text, piece) for text, piece in pieces if not spacing.match(piece)]


def _statement(v: Verdict, html: bool) -> str:
    """A verdict row's statement: mathematics where the row has LaTeX (MathML on the page, its
    words as text between the formulas so the cell can wrap, each formula scrolling sideways
    when wider than the column; $…$ in report.md, pipes written as \\vert so the table
    survives), else the plain text."""
    if v.latex:
        if html:
            pieces = _pieces(v.latex)
            formulas = {piece: mathml(piece) for text, piece in pieces if not text}
            if all(formulas.values()):
                return " ".join(_escape(re.sub(r"\\([%&_#$])", r"\1", piece)) if text else
                                f'<span class="formula">{formulas[piece]}</span>'
                                for text, piece in pieces)
        else:
            tex = v.latex.replace("\\|", "\\Vert ").replace("|", "\\vert ")
            return "$" + " ".join(tex.split()) + "$"
    return _cell(v.statement)


def all_finite(*values) -> bool:
    """True when every number (scalars or nested lists/arrays of them) is finite."""
    import numpy as np

    for value in values:
        if value is None:
            continue
        array = np.asarray(value, dtype=float)
        if not np.all(np.isfinite(array)):
            return False
    return True


@dataclasses.dataclass
class Section:
    key: str  # file stem and anchor, e.g. "collapse"
    title: str
    reference: str  # claim module names of squash_sim/theory.md, e.g. "theorem_b3"
    summary: list[str]  # Markdown paragraphs / "- " bullet lines with the measured numbers
    table: list[dict] = dataclasses.field(default_factory=list)  # a small headline table
    figures: list[Path] = dataclasses.field(default_factory=list)
    data: list[Path] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    verdicts: list[Verdict] = dataclasses.field(default_factory=list)
    reused: bool = False  # taken from an earlier run whose inputs were the same

    def markdown(self) -> str:
        """This section alone, as the report writes it (figures not embedded)."""
        return _environment().get_template("section.md.j2").render(
            s=self, theory="theory.md", html=False)

    def print(self) -> None:
        text = "\n".join(line for line in self.markdown().splitlines()
                         if not line.startswith("<a id="))  # anchors are for the page only
        print("\n" + text.strip())
        written = [p.name for p in self.data + self.figures]
        if written:
            folder = (self.data or self.figures)[0].parent
            print(f"\nwrote {', '.join(written)} in {folder}")

    def to_json(self, root: Path) -> dict:
        """A JSON-safe copy with paths relative to root (how the resumable report stores it)."""
        record = dataclasses.asdict(self)
        record["figures"] = [Path(p).relative_to(root).as_posix() for p in self.figures]
        record["data"] = [Path(p).relative_to(root).as_posix() for p in self.data]
        record.pop("reused")
        return record

    @classmethod
    def from_json(cls, record: dict, root: Path) -> Section:
        record = dict(record)
        record["figures"] = [root / p for p in record["figures"]]
        record["data"] = [root / p for p in record["data"]]
        record["verdicts"] = [Verdict(**v) for v in record.get("verdicts", [])]
        return cls(**record)


# -- rendering ----------------------------------------------------------------------------------

def _cell(value) -> str:
    """One table cell: floats to 4 significant digits, None as a dash, '|' escaped for tables."""
    if isinstance(value, float):
        text = f"{value:.4g}" if math.isfinite(value) else f"{value} (not finite)"
    else:
        text = "—" if value is None else str(value)
    return _escape(text)


def _escape(text: str) -> str:
    """Plain text for a Markdown table cell: formulas such as x*_{n+1} must not turn into
    emphasis, links or raw HTML, and '|' must not end the cell."""
    for char in "\\`*_[]|":
        text = text.replace(char, "\\" + char)
    return text.replace("<", "&lt;").replace("\n", " ")


def _columns(rows: list[dict]) -> list[str]:
    """Every column of a table whose rows may have different keys, in first-seen order."""
    return list(dict.fromkeys(key for row in rows for key in row))


def _badge(verdict: str, html: bool) -> str:
    if not html:
        return f"**{verdict}**"
    family = verdict_word(verdict).split(",")[0].replace(" ", "-")
    return f'<span class="verdict v-{family}">{verdict}</span>'


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("squash_sim", "templates"),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["cell"] = _cell
    env.globals.update(columns=_columns, badge=_badge, verdicts=VERDICTS, statement=_statement)
    return env


def markdown(sections: list[Section], title: str, preamble: list[str], *,
             theory: str = "theory.md", html: bool = False) -> str:
    """The whole report as Markdown. html=True writes the variant markdown-it turns into the page
    (coloured verdict badges, theory.html links)."""
    rows = [v for s in sections for v in s.verdicts]
    preamble = [line.replace("](theory.md", f"]({theory}") for line in preamble]
    return _environment().get_template("report.md.j2").render(
        sections=sections, title=title, preamble=preamble, rows=rows, theory=theory, html=html,
        headline=headline(rows))


STYLE = """
body{font-family:system-ui,sans-serif;font-size:18px;max-width:1250px;margin:1.5em auto;
     padding:0 1em;line-height:1.45;color:#111}
h1{font-size:1.9em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:16px;margin:.8em 0}
td,th{border:1px solid #bbb;padding:4px 8px;vertical-align:top}
th{background:#eef}tbody tr:nth-child(even){background:#fafafa}
img{max-width:100%;border:1px solid #eee}code{background:#f2f2f2;padding:0 .2em}
.verdict{font-weight:bold;padding:1px 6px;border-radius:4px}
.v-holds{background:#d6f5d6}.v-violated{background:#ffc9c9}.v-overflow{background:#ffd8a8}
.v-not-reproducible{background:#e9ecef}.v-measured{background:#dbe4ff}
.v-erratum{background:#fff3bf;font-style:italic}math{font-size:1.15em}
.headline{font-size:1.15em;font-weight:600;border-left:6px solid #009E73;padding:.4em .8em;
          background:#f3faf6}
nav ul{columns:2}
.verdicts table{table-layout:fixed;width:100%}.verdicts td{overflow-wrap:break-word}
.verdicts th:nth-child(1){width:3%}.verdicts th:nth-child(2){width:12%}
.verdicts th:nth-child(3){width:36%}.verdicts th:nth-child(4){width:11%}
.verdicts th:nth-child(5){width:21%}.verdicts th:nth-child(6){width:10%}
.verdicts th:nth-child(7){width:7%}
.formula{display:inline-block;max-width:100%;overflow-x:auto;overflow-y:hidden;
         padding:.3em .6em .5em 0;vertical-align:middle;box-sizing:border-box}
.verdicts math{font-size:1em}
"""


def _embed_images(root: Path):
    """A markdown-it image rule that inlines PNG files under root as data URIs."""
    def render(self, tokens, index, options, env):
        token = tokens[index]
        source = token.attrGet("src") or ""
        path = root / source
        if source.endswith(".png") and path.is_file():
            token.attrSet("src", "data:image/png;base64,"
                          + base64.b64encode(path.read_bytes()).decode())
        return self.image(tokens, index, options, env)
    return render


def html_page(markdown_text: str, title: str, root: Path) -> str:
    parser = MarkdownIt("commonmark", {"html": True}).enable("table")
    parser.add_render_rule("image", _embed_images(root))
    body = parser.render(markdown_text)
    return _environment().get_template("page.html.j2").render(title=title, style=STYLE, body=body)


def theory_source():
    """The theory the report links (squash_sim/theory.md), read as package data so that a wheel
    install ships it too; the documentation site includes the same file (docs/theory.md)."""
    return importlib.resources.files("squash_sim") / "theory.md"


def write(sections: list[Section], out: Path, title: str, preamble: list[str]) -> tuple[Path, Path]:
    """report.md (figures linked) and report.html (figures embedded) under out, with the theory
    beside them (theory.md and theory.html) so every link resolves inside the folder."""
    out = Path(out)
    relative = [dataclasses.replace(s, figures=[p.relative_to(out) for p in s.figures],
                                    data=[p.relative_to(out) for p in s.data]) for s in sections]
    text = theory_source().read_text(encoding="utf-8")
    results.write_text(out / "theory.md", text)
    results.write_text(out / "theory.html", html_page(text, "squash_sim: the theory it checks", out))
    md = results.write_text(out / "report.md", markdown(relative, title, preamble))
    page = results.write_text(out / "report.html", html_page(
        markdown(relative, title, preamble, theory="theory.html", html=True), title, out))
    return md, page
