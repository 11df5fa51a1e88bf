"""Shared pytest set-up: a fast hypothesis profile and small helpers used by several files."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# Few examples and no deadline: the suite runs on a loaded 2-core machine, and timing is not
# what these tests are about. Derandomized, so every run (and CI) tries the same examples.
settings.register_profile(
    "chainrule", max_examples=25, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("chainrule")


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh, seeded generator for each test (tests never share random state)."""
    return np.random.default_rng(1234)
