import os
import sys

from hypothesis import HealthCheck, settings

sys.path.insert(0, os.path.dirname(__file__))  # the independent references live beside the tests
# CLI/proofs_check entry points called in-process must not fill the user's compilation cache.
os.environ.setdefault("SQUASH_SIM_COMPILE_CACHE", "0")

# "ci": deterministic (derandomized), no deadline (first calls compile). Selected by .ci/run with
# HYPOTHESIS_PROFILE=ci; "dev" keeps Hypothesis' random exploration for local runs.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
