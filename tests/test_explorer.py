"""The collapse explorer (squash_sim.explorer): its data, and the page in a real browser.

The site is built once from a tiny "star" of settings (a base setting and one change per
control), so every control has two values to switch between and the build stays a few
compilations. The browser is Debian's headless Chromium driven by Playwright (no browser
download); the page is opened from file:// with every non-file request aborted and recorded.
Under CI (CI set) a missing Chromium or Playwright fails the test rather than skipping it.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from squash_sim import explorer, floats
from squash_sim.analysis import mechanism

# A path through the settings that changes one control at a time; storage-only policies are
# cheap to compile, so only the policy and accumulation steps compile a "-pure" forward.
BASE = ("bf16", "storage", explorer.STORAGE_ACCUMULATION, "none", 0)
STAR = [BASE, ("fp16", "storage", explorer.STORAGE_ACCUMULATION, "none", 0),
        ("bf16", "pure", "sequential", "none", 0),
        ("bf16", "pure", "fp32 accumulator", "none", 0),
        ("bf16", "storage", explorer.STORAGE_ACCUMULATION, "rope", 0),
        ("bf16", "storage", explorer.STORAGE_ACCUMULATION, "none", 1)]
GRID = explorer.Grid(formats=("bf16", "fp16"), positionals=("none", "rope"), seeds=(0, 1),
                     max_len=32, accumulations=("sequential", "fp32 accumulator"))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("explorer")
    explorer.build(out, GRID, settings=STAR)
    text = (out / "data.js").read_text()
    data = json.loads(text[text.index("=") + 1:].rstrip().rstrip(";"))
    return out, data


def test_site_is_self_contained_and_holds_every_setting(site):
    out, data = site
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["index.html", "data.js", "explorer.js", "explorer.css", "uPlot.iife.min.js",
         "uPlot.min.css", "uPlot.LICENSE.txt"])
    html = (out / "index.html").read_text() + (out / "explorer.js").read_text()
    assert "http://" not in html and "https://" not in html  # nothing fetched from outside
    assert set(data["runs"]) == {explorer.key(*s) for s in STAR}
    assert data["meta"]["lengths"] == [16, 32]
    base = data["runs"][explorer.key(*BASE)]
    assert len(base["l1"]) == 32 and base["spacing"] == 2 ** -7
    assert data["runs"][explorer.key(*STAR[1])]["spacing"] == 2 ** -10
    for at in base["at"].values():  # the last row of attention sums to about 1
        assert abs(sum(at["attention"]) - 1) < 0.05


def test_distances_are_the_collapse_experiments(site):
    """The explorer's record of bf16-pure is the collapse experiment's sweep, bit for bit (an
    ordered policy fixes every bit), and its read-out is the one definition's (judge) of it."""
    from squash_sim import presets
    from squash_sim.analysis import collapse

    _, data = site
    record = data["runs"][explorer.key(*STAR[2])]
    result = collapse.run(presets.get("paper-fig10"), "bf16-pure", max_len=32, seed=0)
    assert record["l1"] == explorer._sig(result.l1)
    assert record["status"] == [str(x) for x in result.status]
    found = collapse.judge(result.n, result.bit_identical, result.status)
    at = record["at"]["32"]
    assert (at["lasting"], at["first_identical"], at["identical_share"], at["max_len"]) == (
        found.n_star, found.first_identical, found.share, found.max_n)


def test_running_sums_are_the_accumulators_sums():
    """The softmax running sum of the bf16-pure setting equals an independent float-by-float
    sequential bf16 sum (ml_dtypes) of the same terms; the stall rule sees a sum of ones stop
    at 256 in bf16 (an independent fact: 256 + 1 rounds back to 256)."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    terms = np.linspace(0.5, 1.0, 40, dtype=np.float32)
    terms = terms.astype(ml_dtypes.bfloat16).astype(np.float32)
    sums = explorer.sums(terms[None].repeat(40, 0) * np.tri(40, dtype=np.float32),
                          np.zeros((40, 40), np.float32), np.zeros(40, np.float32),
                          explorer.precision_of("bf16", "pure", "sequential"))[0]
    total, expected = ml_dtypes.bfloat16(0), []
    for t in terms:
        total = ml_dtypes.bfloat16(np.float32(total) + t)
        expected.append(float(total))
    np.testing.assert_array_equal(np.asarray(sums), expected)
    ones = np.arange(1, 401, dtype=np.float64)
    running = np.minimum(ones, 256)  # a bf16 sum of ones
    assert mechanism.first_stall(running, ones, floats.BF16) == 256
    assert mechanism.first_stall(ones, ones, floats.BF16) is None
    # a mutant: a few unchanged last steps whose lost terms the format could not hold
    late = ones.copy()
    late[-1] = late[-2]
    assert mechanism.first_stall(late * 0.001, ones * 0.001, floats.BF16) is None


def test_cli_rejects_an_out_that_is_a_file_before_any_work(tmp_path, capsys):
    from squash_sim import cli

    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(SystemExit) as exit_:
        cli.main(["explore", "--out", str(target)])
    assert exit_.value.code == 2 and "is an existing file" in capsys.readouterr().err


def _chromium():
    path = shutil.which("chromium") or "/usr/bin/chromium"
    why = None
    if not os.path.exists(path):
        why = "Debian's chromium is not installed (apt-get install chromium)"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        why = why or "playwright (Python) is not installed (pip install '.[test]')"
        sync_playwright = None
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"the browser test must run in CI: {why}")
        pytest.skip(why)
    return path, sync_playwright


def test_page_in_a_real_browser_offline(site):
    out, data = site
    path, sync_playwright = _chromium()
    outside, errors = [], []

    folder = out.resolve().as_uri() + "/"

    def route(request_route):  # only files inside the site's folder may load
        url = request_route.request.url
        if url.startswith(folder):
            request_route.continue_()
        else:
            outside.append(url)
            request_route.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.route("**/*", route)
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("requestfailed", lambda r: errors.append(f"failed: {r.url}"))
            page.goto((out / "index.html").as_uri())
            page.wait_for_function("document.body.dataset.redraws === '1'")
            page.check('input[name="policy"][value="storage"]')  # the page opens on "pure"
            page.wait_for_function("document.body.dataset.redraws === '2'")
            redraws = 2

            def readout(name):
                return page.locator(f"#ro-{name}").inner_text()

            def check(setting, n):
                record = data["runs"][explorer.key(*setting)]
                at = record["at"][str(n)]
                assert readout("key") == explorer.key(*setting)
                assert page.locator("#verdict").inner_text() == at["verdict"]
                assert readout("lasting") == ("—" if at["lasting"] is None else str(at["lasting"]))
                last = record["l1"][n - 1]  # zero distances are drawn as marks, not on the line
                shown = readout("drawn-distance-last")
                assert shown == "—" if not last else float(shown) == last
                assert int(readout("drawn-identical")) == record["status"][:n].count(
                    "bit-identical")
                assert int(readout("drawn-attention-count")) == len(at["attention"])
                assert float(readout("drawn-attention-last")) == at["attention"][-1]
                assert float(readout("drawn-softmax-last")) == at["softmax"]["sum"][-1]
                assert float(readout("drawn-wv-last")) == at["wv"]["sum"][-1]
                return (readout("drawn-distance-last"), readout("drawn-attention-last"),
                        readout("drawn-softmax-last"), readout("drawn-wv-last"), readout("key"))

            shown = check(BASE, 32)
            steps = [  # (how to change one control, the setting it shows, the sweep length)
                (lambda: page.select_option("#format", "fp16"), STAR[1], 32),
                (lambda: page.select_option("#format", "bf16"), BASE, 32),
                (lambda: page.check('input[name="policy"][value="pure"]'), STAR[2], 32),
                (lambda: page.select_option("#accumulation", "fp32 accumulator"), STAR[3], 32),
                (lambda: page.select_option("#accumulation", "sequential"), STAR[2], 32),
                (lambda: page.check('input[name="policy"][value="storage"]'), BASE, 32),
                (lambda: page.select_option("#positional", "rope"), STAR[4], 32),
                (lambda: page.select_option("#positional", "none"), BASE, 32),
                (lambda: page.select_option("#seed", "1"), STAR[5], 32),
                (lambda: page.select_option("#seed", "0"), BASE, 32),
                (lambda: page.eval_on_selector(
                    "#n", "e => { e.value = '0'; e.dispatchEvent(new Event('input')); }"), BASE, 16),
            ]
            for change, setting, n in steps:
                change()
                redraws += 1
                page.wait_for_function(f"document.body.dataset.redraws === '{redraws}'")
                now = check(setting, n)
                assert now != shown, f"{setting}, n {n}: nothing drawn changed"
                shown = now
            timings = page.evaluate("window.explorerTimings")
            assert len(timings) == redraws
            assert max(timings) <= 100, f"a redraw took {max(timings):.1f} ms"
            print(f"redraws: {len(timings)}, max {max(timings):.1f} ms, "
                  f"median {sorted(timings)[len(timings) // 2]:.1f} ms")
            if os.environ.get("SQUASH_SIM_EXPLORER_SCREENSHOT"):
                page.screenshot(path=os.environ["SQUASH_SIM_EXPLORER_SCREENSHOT"])
        finally:
            browser.close()
    assert errors == []
    assert outside == []


def _result(identical, status=None):
    from squash_sim import presets
    from squash_sim.analysis.collapse import CollapseResult
    from squash_sim.precision import get as get_precision

    identical = np.asarray(identical, bool)
    n = np.arange(1, len(identical) + 1)
    return CollapseResult(n, np.where(identical, 0.0, 1.0 / n), 1.0 / n, identical,
                          presets.get("paper-fig10"), get_precision("bf16"), 8, 0, 0.0,
                          status=None if status is None else np.asarray(status))


def test_read_out_and_verdict_sentences():
    """The page's fields and sentence come from the one definition (judge): a tail from 11 in a
    40-sweep is lasting (40 ≥ 2·11); a tail over the last eighth is not called; an overflowed
    pair is never a collapse."""
    lasting = _result([0] * 5 + [1] + [0] * 4 + [1] * 30).collapse  # N = 40, tail from 11
    assert explorer.page_fields(lasting) == {
        "status": "collapse", "lasting": 11, "first_identical": 6, "identical_share": 31 / 40,
        "max_len": 40, "reason": ""}
    late = _result([0] * 35 + [1] * 5).collapse  # identical only over the last eighth
    assert (explorer.page_fields(late)["status"], late.n_star, late.first_identical) == (
        "no collapse", None, 36)
    status = ["distinct"] * 39 + ["overflow"]
    broken = _result([0] * 20 + [1] * 20, status).collapse
    assert (explorer.page_fields(broken)["status"], broken.n_star) == ("overflow", None)
    text = explorer.verdict("bf16", "pure", "sequential", lasting, 381, None)
    assert text == ("bf16, every op rounded, sequential sums: identical from n = 11 to the end "
                    "of the sweep (n = 40); the softmax sum stopped growing at key 381, the "
                    "weights·values sum kept growing.")
    assert "no collapse is read" in explorer.verdict("fp8_e4m3fn", "storage", "fp32 (XLA)",
                                                     broken, None, None)
    assert "12% of pairs identical (the first at n = 36)" in explorer.verdict(
        "bf16", "storage", "fp32 (XLA)", late, None, None)
