"""The README keeps its word: it stays a short front door, its Python runs verbatim (every
```python block, in order, in one namespace), and every local link in it resolves."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_is_a_short_front_door_whose_local_links_resolve():
    assert len(README.splitlines()) <= 150
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README)
    local = [link for link in links if not link.startswith(("http:", "https:", "mailto:"))]
    assert local and [link for link in local if not (ROOT / link).exists()] == []


def test_every_python_block_of_the_readme_runs_verbatim():
    blocks = re.findall(r"^```python\n(.*?)^```", README, flags=re.MULTILINE | re.DOTALL)
    assert blocks
    namespace: dict = {"__name__": "readme"}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        for block in blocks:
            exec(compile(block, "README.md", "exec"), namespace)
    text = printed.getvalue()
    # What the prose under the taste says it prints: fp32 never identical, bf16-pure at 542.
    assert "     fp32: " in text and "first bit-identical pair: n = none" in text
    assert "bf16-pure: " in text and "first bit-identical pair: n = 542" in text
