"""Fixtures: a running app on a real SQLite file, with or without standard talks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from protocol.crypto import Rng
from tests.server.harness import Harness


@pytest.fixture
async def bare(tmp_path: Path, rng: Rng) -> AsyncIterator[Harness]:
    """An initialised but unfounded server."""
    async with Harness.start(tmp_path, rng) as h:
        yield h


@pytest.fixture
async def talks(tmp_path: Path, rng: Rng) -> AsyncIterator[Harness]:
    """A server with the standard talks (see :meth:`Harness.standard_talks`)."""
    async with Harness.start(tmp_path, rng) as h:
        await h.standard_talks()
        yield h
