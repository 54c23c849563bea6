"""The report: a verdict table first, a table of contents, then one section per experiment and the
claim table.

One Jinja2 template (templates/report.md.j2) writes the Markdown; markdown-it-py turns that same
Markdown into the HTML page, with the figures embedded as base64 PNG so the file can be mailed or
opened offline. The terminal shows each section's Markdown as it is computed."""

from __future__ import annotations

import base64
import dataclasses
import math
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
    theory: str = ""  # anchor in docs/theory.md (a claim module's name)
    counterexample: str | None = None  # path relative to the report folder
    section: str = ""  # filled in from the section that carries the row
    mechanism: str = ""  # what produced a reported collapse (analysis.mechanism.Mechanism.label())

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
    reference: str  # claim module names of docs/theory.md, e.g. "theorem_b3"
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
    env.globals.update(columns=_columns, badge=_badge, verdicts=VERDICTS)
    return env


def markdown(sections: list[Section], title: str, preamble: list[str], *,
             theory: str = "theory.md", html: bool = False) -> str:
    """The whole report as Markdown. html=True writes the variant markdown-it turns into the page
    (coloured verdict badges, theory.html links)."""
    rows = [v for s in sections for v in s.verdicts]
    preamble = [line.replace("](theory.md", f"]({theory}") for line in preamble]
    return _environment().get_template("report.md.j2").render(
        sections=sections, title=title, preamble=preamble, rows=rows, theory=theory, html=html)


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
nav ul{columns:2}
.verdicts td:nth-child(3){min-width:15em}.verdicts td:nth-child(5){min-width:13em}
.verdicts td:nth-child(4){min-width:8em}
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


def theory_source() -> Path | None:
    """docs/theory.md of the repository this package runs from (None for a wheel install)."""
    path = Path(__file__).resolve().parents[1] / "docs" / "theory.md"
    return path if path.is_file() else None


def write(sections: list[Section], out: Path, title: str, preamble: list[str]) -> tuple[Path, Path]:
    """report.md (figures linked) and report.html (figures embedded) under out, with the theory
    beside them (theory.md and theory.html) so every link resolves inside the folder."""
    out = Path(out)
    relative = [dataclasses.replace(s, figures=[p.relative_to(out) for p in s.figures],
                                    data=[p.relative_to(out) for p in s.data]) for s in sections]
    source = theory_source()
    if source is not None:
        text = source.read_text()
        results.write_text(out / "theory.md", text)
        results.write_text(out / "theory.html",
                           html_page(text, "squash_sim: the theory it checks", out))
    md = results.write_text(out / "report.md", markdown(relative, title, preamble))
    page = results.write_text(out / "report.html", html_page(
        markdown(relative, title, preamble, theory="theory.html", html=True), title, out))
    return md, page
