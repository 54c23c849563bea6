"""Redraw time of the collapse explorer on a built site, in Debian's headless Chromium.

    squash-sim explore --out site
    python benchmarks/bench_explorer.py site [screenshot-prefix]

Opens site/index.html from file:// (network cut), steps every control through every value it
offers (and the sweep length through its grid), and prints the redraw times the page measures
(from the change to the end of uPlot's draw); with a prefix it also saves the three screenshots of
the lecture demo (docs/explorer.md) at 1280×720.
"""

from __future__ import annotations

import pathlib
import statistics
import sys

from playwright.sync_api import sync_playwright


def main(site: str, shots: str | None = None) -> None:
    index = pathlib.Path(site).resolve() / "index.html"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file://")
                   else r.abort())
        page.goto(index.as_uri())
        count = 1
        page.wait_for_function("document.body.dataset.redraws === '1'")

        def wait():
            nonlocal count
            count += 1
            page.wait_for_function(f"document.body.dataset.redraws === '{count}'")

        if shots:  # the lecture demo: bf16 every op rounded; its stall; fp32 accumulation
            page.screenshot(path=f"{shots}1.png")
            page.select_option("#accumulation", "fp32 accumulator")
            wait()
            page.screenshot(path=f"{shots}2.png")
            page.select_option("#accumulation", "sequential")
            wait()
        for select in ("#format", "#accumulation", "#positional", "#seed"):
            values = page.eval_on_selector(select, "e => [...e.options].map(o => o.value)")
            for value in values[1:] + values[:1]:
                page.select_option(select, value)
                wait()
        for policy in ("storage", "pure"):
            page.check(f'input[name="policy"][value="{policy}"]')
            wait()
        top = int(page.eval_on_selector("#n", "e => e.max"))
        for step in list(range(top)) + [top]:
            page.eval_on_selector("#n", f"e => {{ e.value = '{step}'; "
                                        f"e.dispatchEvent(new Event('input')); }}")
            wait()
        timings = page.evaluate("window.explorerTimings")
        browser.close()
    print(f"{len(timings)} redraws: median {statistics.median(timings):.1f} ms, "
          f"second largest {sorted(timings)[-2]:.1f} ms, "
          f"max {max(timings):.1f} ms (first draw {timings[0]:.1f} ms)")


if __name__ == "__main__":
    main(*sys.argv[1:3])
