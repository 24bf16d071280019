"""Abuse tests: the robustness counters, and a real server (``running``) with small limits.

``running`` (server/app.py) is what ``docket-server serve`` runs, header deadline
included, which aiohttp's test server does not apply; the harness drives it over
loopback like any client.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from protocol.crypto import Rng
from server.app import running
from server.datadir import init_data_dir
from tests.faults.counters import summary
from tests.server.harness import ORIGIN, Harness


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    line = summary()
    if line is not None:
        terminalreporter.write_line(line)


@contextlib.asynccontextmanager
async def live(tmp_path: Path, rng: Rng, **overrides: Any) -> AsyncIterator[Harness]:
    """A real server on loopback with the standard talks and ``overrides`` settings."""
    data = tmp_path / "data"
    init = init_data_dir(data, ORIGIN)
    settings = Harness.make_settings(data, port=0, **overrides)
    # A connection per request: with tiny deadlines a kept-alive connection may be
    # closed by the server just as the client reuses it (a race of any HTTP/1.1 client).
    connector = aiohttp.TCPConnector(force_close=True)
    async with running(settings) as url, aiohttp.ClientSession(connector=connector) as session:
        h = Harness(session=session, base=url, settings=settings, init=init, rng=rng)
        await h.standard_talks()
        yield h
