"""Shared fixtures: deterministic randomness and one Hypothesis profile for the suite."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from hypothesis import settings

from protocol.crypto import Rng
from tests.helpers import make_rng

# No per-example deadline: the suite runs beside other jobs, and a slow example is not a
# failure.  HYPOTHESIS_PROFILE=thorough runs ten times as many examples.
settings.register_profile("default", deadline=None)
settings.register_profile("thorough", deadline=None, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(name="make_rng")
def make_rng_fixture() -> Callable[[bytes | str], Rng]:
    """The :func:`tests.helpers.make_rng` factory, for tests that need several streams."""
    return make_rng


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> Rng:
    """A deterministic rng seeded with the test's node id: reruns see the same bytes."""
    return make_rng(request.node.nodeid)
