"""The report opens with its verdict (report.headline), prints printed-variant failures as
errata, says which instances lie outside the hypotheses, and shows statements as mathematics."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from squash_sim import report, runs
from squash_sim.report import Verdict


def _rows():
    return [Verdict("Theorem B.3", "s", "holds", "k"), Verdict("Lemma B.1", "s", "holds", "k"),
            Verdict("Theorem B.5", "s", "holds, assumption not met on 2 of 4", "k"),
            Verdict("Theorem B.5 — the paper's variant printed C", "s", "erratum", "k"),
            Verdict("Theorem B.5 — the paper's variant other C", "s", "erratum", "k"),
            Verdict("Figure 8", "s", "measured", "k")]


def test_headline_says_all_hold_and_names_the_errata():
    text = report.headline(_rows())
    assert text == ("All 3 results hold wherever their hypotheses hold (1 of them with instances "
                    "outside their hypotheses, shown); 2 printed variants of Theorem B.5 fail "
                    "with the printed constants and hold with the corrected ones: errata; "
                    "1 measured.")
    broken = _rows() + [Verdict("Lemma B.6", "s", "violated", "k")]
    assert report.headline(broken).startswith("1 of 4 results do not hold: Lemma B.6 (violated)")


def test_printed_variant_failing_is_an_erratum_and_outside_instances_are_named(tmp_path):
    from proofs_check.claims import theorem_b5

    row = {"module": "theorem_b5", "claim": "theorem_b5 [variant: printed in the main text]",
           "printed_variant": True, "instances": 30, "violations": 3, "assumption_failures": 0,
           "max_tightness": 1.5, "worst_margin": -0.1,
           "summary": "fails with the printed C; holds with C·(1 + β)"}
    printed = runs._claim_verdict(row, tmp_path)
    assert printed.verdict == "erratum"
    assert printed.latex == theorem_b5.VARIANT_LATEX["printed in the main text"] != theorem_b5.LATEX
    assert runs._claim_verdict(dict(row, summary=""), tmp_path).verdict == "violated"
    outside = dict(row, printed_variant=False, claim="theorem_b3", module="theorem_b3",
                   violations=0, assumption_failures=2, instances=4,
                   not_judged={"assumption not met: additive positions": 2}, summary="")
    verdict = runs._claim_verdict(outside, tmp_path)
    assert verdict.verdict == "holds, assumption not met on 2 of 4"
    assert "outside the hypotheses: 2 additive positions" in verdict.key_number
    assert verdict.latex  # the claim module's LaTeX travels with the row


def test_statements_are_mathematics_in_the_page_and_the_markdown(tmp_path):
    from proofs_check.claims import CLAIMS

    for name, module in CLAIMS.items():  # every claim's LaTeX becomes well-formed MathML
        markup = report.mathml(module.LATEX)
        assert markup.startswith("<math"), name
        ET.fromstring(markup.replace("&#", "&amp;#"))  # well-formed XML
        assert "|" not in markup and "_" not in markup.split(">", 1)[1], name
    b5 = CLAIMS["theorem_b5"]
    row = Verdict("Theorem B.5", b5.STATEMENT, "holds", "k", latex=b5.LATEX, section="claims")
    section = report.Section("claims", "Claims", "results", ["text"], verdicts=[row])
    md, page = report.write([section], tmp_path, "T", [])
    html, text = page.read_text(), md.read_text()
    assert '<p class="headline">The result holds wherever its hypotheses hold.</p>' in html
    assert html.index("headline") < html.index("<h2>Verdicts</h2>")
    assert "<math" in html.split("<h2>Verdicts</h2>")[1] and "||dy_n" not in html
    assert "$\\left\\Vert" in text and "||dy_n" not in text
    assert "**The result holds wherever its hypotheses hold.**\n\n" in text  # its own paragraph


def test_a_statements_words_are_text_between_its_formulas():
    row = Verdict("Lemma B.2", "plain", "holds", "k",
                  latex=r"\text{mean } \delta\text{ follows } \bar\delta(n)\ \text{within 10\%}")
    html = report._statement(row, True)
    assert html.startswith("mean ") and html.endswith("within 10%")  # words that wrap
    assert html.count('<span class="formula"><math') == 2 and "\\text" not in html


def test_the_verdict_table_fits_a_1280_pixel_screen(tmp_path):
    """Every claim's statement (the widest formulas), a long key number and a long section name
    in the verdict table of report.html, opened in Chromium at 1280 × 800: nothing wider than the
    window (a formula wider than its column scrolls inside its cell)."""
    from test_explorer import _chromium

    from proofs_check.claims import CLAIMS

    rows = [Verdict(name, module.STATEMENT, "holds, assumption not met on 2 of 4",
                    "5 instances; worst margin RHS − LHS 0.217; outside the hypotheses: 1 ALiBi",
                    latex=module.LATEX, section="real_collapse_count-ones")
            for name, module in CLAIMS.items()]
    section = report.Section("real_collapse_count-ones", "Claims", "results", ["t"], verdicts=rows)
    _, page_file = report.write([section], tmp_path, "T", [])
    path, sync_playwright = _chromium()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(page_file.resolve().as_uri())
            width = page.evaluate("document.documentElement.scrollWidth")
        finally:
            browser.close()
    assert width <= 1280
