"""Fault tests: the robustness counters (:mod:`tests.faults.counters`), in-process talks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from protocol.crypto import Rng
from tests.faults.counters import summary
from tests.server.harness import Harness


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    line = summary()
    if line is not None:
        terminalreporter.write_line(line)


@pytest.fixture
async def talks(tmp_path: Path, rng: Rng) -> AsyncIterator[Harness]:
    """An in-process server with the standard talks (tests/server/harness.py)."""
    async with Harness.start(tmp_path, rng) as h:
        await h.standard_talks()
        yield h
