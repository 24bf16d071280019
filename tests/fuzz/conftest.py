"""Print the robustness counters (see :mod:`tests.faults.counters`) once per run."""

from __future__ import annotations

import pytest

from tests.faults.counters import summary


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    line = summary()
    if line is not None:
        terminalreporter.write_line(line)
