"""Hypothesis profiles for tests that use squash_sim, loaded by plain `pytest` (no conftest).

Installed as a pytest plugin (the `pytest11` entry point in pyproject.toml), so in any project
where squash_sim is installed `pytest` starts with the profile "squash_sim":

    squash_sim      deadline off (the first call of a jitted function compiles: seconds, against
                    Hypothesis's 200 ms deadline, then FlakyFailure) and the too_slow health check
                    off; otherwise Hypothesis's defaults (random exploration, example database)
    squash_sim-ci   the same, derandomised (the same examples on every run), no example database,
                    failing examples printed as reproduction blobs: for CI

Select the CI profile with Hypothesis's own option, `pytest --hypothesis-profile=squash_sim-ci`,
or with the environment variable SQUASH_SIM_HYPOTHESIS_PROFILE=squash_sim-ci. A profile your own
conftest.py loads, an explicit --hypothesis-profile and @settings on a test all take precedence:
the plugin only chooses the starting profile. (It is process-wide: Hypothesis tests in the same run
that do not use squash_sim start from it too.) Outside pytest, call register_profiles() and
hypothesis.settings.load_profile("squash_sim") yourself.
"""

from __future__ import annotations

import os

PROFILES = ("squash_sim", "squash_sim-ci")
ENVIRONMENT = "SQUASH_SIM_HYPOTHESIS_PROFILE"


def register_profiles() -> None:
    """Register both profiles with Hypothesis (idempotent)."""
    from hypothesis import HealthCheck, settings

    relaxed = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
    settings.register_profile("squash_sim", **relaxed)
    settings.register_profile("squash_sim-ci", derandomize=True, database=None, print_blob=True,
                              **relaxed)


def _load_starting_profile() -> None:
    from hypothesis import settings

    name = os.environ.get(ENVIRONMENT, "squash_sim")
    if name not in PROFILES:
        raise ValueError(f"{ENVIRONMENT} must be one of {PROFILES}, got {name!r}")
    settings.load_profile(name)


# At import, which pytest does for pytest11 plugins before it reads any conftest.py: a conftest
# that loads its own profile, and Hypothesis's --hypothesis-profile (applied in its
# pytest_configure), both come later and win.
try:
    register_profiles()
    _load_starting_profile()
except ImportError:  # Hypothesis not installed: nothing to configure
    pass
