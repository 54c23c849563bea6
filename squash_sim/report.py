"""The report: sections (one per experiment) rendered as Markdown and as one self-contained HTML
file (figures embedded as base64 PNG, so the file can be mailed or opened offline)."""

from __future__ import annotations

import base64
import dataclasses
import html
from pathlib import Path

from squash_sim import results


@dataclasses.dataclass
class Section:
    key: str  # file stem, e.g. "collapse"
    title: str
    reference: str  # theory.md result names
    summary: list[str]  # Markdown paragraphs / bullet lines with the measured numbers
    table: list[dict] = dataclasses.field(default_factory=list)  # a small headline table
    figures: list[Path] = dataclasses.field(default_factory=list)
    data: list[Path] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    def print(self) -> None:
        print(f"\n{self.title} ({self.reference})")
        for line in self.summary:
            print(f"  {line}")
        if self.table:
            print(_text_table(self.table))
        written = [p.name for p in self.data + self.figures]
        if written:
            print(f"  wrote {', '.join(written)} in {self.data[0].parent if self.data else ''}")


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)


def _keys(rows: list[dict]) -> list[str]:
    """Every column of a table whose rows may have different keys, in first-seen order."""
    return list(dict.fromkeys(key for row in rows for key in row))


def _text_table(rows: list[dict]) -> str:
    keys = _keys(rows)
    cells = [[_cell(r.get(k)) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    line = lambda values: "  " + " | ".join(v.rjust(w) for v, w in zip(values, widths, strict=True))  # noqa: E731
    return "\n".join([line(keys), "  " + "-+-".join("-" * w for w in widths)]
                     + [line(c) for c in cells])


def _markdown_table(rows: list[dict]) -> str:
    keys = _keys(rows)
    out = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    out += ["| " + " | ".join(_cell(r.get(k)) for k in keys) + " |" for r in rows]
    return "\n".join(out)


def markdown(sections: list[Section], title: str, preamble: list[str]) -> str:
    out = [f"# {title}", "", *preamble, ""]
    for s in sections:
        out += [f"## {s.title}", f"*{s.reference}* — {s.seconds:.1f} s", ""]
        out += [*s.summary, ""]
        if s.table:
            out += [_markdown_table(s.table), ""]
        out += [f"![{s.title}]({p.as_posix()})" for p in s.figures if p.suffix == ".png"]
        if s.data:
            out += ["", "Data: " + ", ".join(f"[{p.name}]({p.as_posix()})" for p in s.data)]
        out += [""]
    return "\n".join(out)


def _html_table(rows: list[dict]) -> str:
    keys = _keys(rows)
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(r.get(k)))}</td>" for k in keys)
                   + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _inline_markdown(text: str) -> str:
    """The little Markdown the summaries use: `code` and **bold**, and '- ' bullets."""
    escaped = html.escape(text)
    parts = escaped.split("`")
    escaped = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
    parts = escaped.split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))


def html_page(sections: list[Section], title: str, preamble: list[str], root: Path) -> str:
    style = ("body{font-family:sans-serif;max-width:1000px;margin:2em auto;line-height:1.4}"
             "table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;"
             "padding:2px 6px;text-align:right}img{max-width:100%}code{background:#f4f4f4}")
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
           f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>"]
    out += [f"<p>{_inline_markdown(p)}</p>" for p in preamble]
    for s in sections:
        out.append(f"<h2 id='{s.key}'>{html.escape(s.title)}</h2><p><i>{html.escape(s.reference)}"
                   f"</i> — {s.seconds:.1f} s</p>")
        bullets = [line[2:] for line in s.summary if line.startswith("- ")]
        out += [f"<p>{_inline_markdown(line)}</p>" for line in s.summary
                if not line.startswith("- ")]
        if bullets:
            out.append("<ul>" + "".join(f"<li>{_inline_markdown(b)}</li>" for b in bullets)
                       + "</ul>")
        if s.table:
            out.append(_html_table(s.table))
        for figure in s.figures:
            if figure.suffix == ".png":
                data = base64.b64encode((root / figure).read_bytes()).decode()
                out.append(f"<p><img alt='{html.escape(s.title)}' src='data:image/png;base64,"
                           f"{data}'></p>")
        if s.data:
            out.append("<p>Data: " + ", ".join(html.escape(p.as_posix()) for p in s.data)
                       + "</p>")
    out.append("</body></html>")
    return "\n".join(out)


def write(sections: list[Section], out: Path, title: str, preamble: list[str]) -> tuple[Path, Path]:
    """report.md (figures linked) and report.html (figures embedded) under out."""
    relative = [dataclasses.replace(s, figures=[p.relative_to(out) for p in s.figures],
                                    data=[p.relative_to(out) for p in s.data]) for s in sections]
    md = results.write_text(out / "report.md", markdown(relative, title, preamble))
    page = results.write_text(out / "report.html", html_page(relative, title, preamble, out))
    return md, page
