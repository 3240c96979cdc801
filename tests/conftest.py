"""Test configuration: hypothesis profiles.

``ci`` (selected by ``.ci/run`` and ``make test`` through HYPOTHESIS_PROFILE) is derandomized,
has no deadline and runs at least 300 state-machine examples; ``dev`` is quicker.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=300,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True)
settings.register_profile(
    "dev", deadline=None, max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
