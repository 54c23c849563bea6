"""Run the examples as notebooks: jupytext reads each percent-format script as a notebook,
nbclient executes it in a Jupyter kernel (figures inline), nbconvert writes HTML.

    python examples/notebooks.py            docs/examples/NN_*.ipynb, .html at full size (generated)
    python examples/notebooks.py --small    the tests' size (seconds per example)

The tests execute every example this way at the small size."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent
DOCS = EXAMPLES.parent / "docs" / "examples"


def execute(path: Path, *, small: bool, timeout: int = 600):
    """The example at `path` as an executed notebook (nbformat NotebookNode)."""
    import jupytext
    from nbclient import NotebookClient

    notebook = jupytext.read(path)
    previous = os.environ.get("SQUASH_SIM_EXAMPLE_SMALL")
    os.environ["SQUASH_SIM_EXAMPLE_SMALL"] = "1" if small else "0"  # the kernel inherits it
    try:
        NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        if previous is None:
            os.environ.pop("SQUASH_SIM_EXAMPLE_SMALL", None)
        else:
            os.environ["SQUASH_SIM_EXAMPLE_SMALL"] = previous
    return notebook


def main(argv=None) -> int:
    import nbformat
    from nbconvert import HTMLExporter

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="the tests' small size")
    parser.add_argument("--out", type=Path, default=DOCS, help=f"folder (default: {DOCS})")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for path in sorted(EXAMPLES.glob("[0-9][0-9]_*.py")):
        print(f"executing {path.name}", flush=True)
        notebook = execute(path, small=args.small)
        nbformat.write(notebook, args.out / f"{path.stem}.ipynb")
        page, _ = HTMLExporter(template_name="classic").from_notebook_node(notebook)
        (args.out / f"{path.stem}.html").write_text(page)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
