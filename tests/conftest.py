"""Test-wide settings.

Hypothesis runs a fixed, derandomized set of examples by default so CI is reproducible;
``HYPOTHESIS_PROFILE=explore`` searches many more random examples locally.
"""

import os

from hypothesis import settings

settings.register_profile("ci", max_examples=8, deadline=None, derandomize=True)
settings.register_profile("explore", max_examples=150, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
