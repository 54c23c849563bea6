import os
import shutil
import sys
import tempfile

from hypothesis import HealthCheck, settings

sys.path.insert(0, os.path.dirname(__file__))  # the independent references live beside the tests
# One compilation cache for this test run, never the user's: the controller makes it, the
# pytest-xdist workers and every CLI/proofs_check subprocess inherit it, so a program one of them
# compiled (the same model, policy and shapes) is loaded by the others instead of compiled again.
_RUN_CACHE = None
if "SQUASH_SIM_COMPILE_CACHE" not in os.environ:
    _RUN_CACHE = os.environ["SQUASH_SIM_COMPILE_CACHE"] = tempfile.mkdtemp(
        prefix="squash-sim-test-jax-")


def pytest_configure(config):
    from squash_sim import _xla_flags

    if _xla_flags.enable_compilation_cache():  # this process too (the in-process tests)
        import jax

        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)  # the costly ones


def pytest_unconfigure(config):
    if _RUN_CACHE and not hasattr(config, "workerinput"):  # the process that made it
        shutil.rmtree(_RUN_CACHE, ignore_errors=True)


# "ci": deterministic (derandomized), no deadline (first calls compile). Selected by .ci/run with
# HYPOTHESIS_PROFILE=ci; "dev" keeps Hypothesis' random exploration for local runs.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
