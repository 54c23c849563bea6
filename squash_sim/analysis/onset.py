"""The one threshold rule the experiments share: from which point on does a property hold."""

from __future__ import annotations

import numpy as np


def first_from(holds, values) -> int | None:
    """The first of `values` from which `holds` is true for every later value too (the first value
    if it always holds; None if it fails at the last). holds, values: (N,) aligned, ascending."""
    fails = np.flatnonzero(~np.asarray(holds, bool))
    if fails.size == 0:
        return int(values[0])
    return int(values[fails[-1] + 1]) if fails[-1] + 1 < len(values) else None
