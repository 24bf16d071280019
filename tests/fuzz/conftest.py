"""Print the robustness counters (see :mod:`tests.faults.counters`) once per run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.acts_family import registered
from tests.faults.counters import summary


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    line = summary()
    if line is not None:
        terminalreporter.write_line(line)


@pytest.fixture(autouse=True)
def tally_family() -> Iterator[None]:
    """The act route is fuzzed with a kind of the test family (:mod:`tests.acts_family`)."""
    for _ in registered():
        yield
