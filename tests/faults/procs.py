"""``docket-server serve`` as a real process for fault and abuse tests.

The server runs exactly as an operator runs it (``python -m server.cli serve --port 0``)
so that SIGKILL, a full disk or a damaged file hit the real thing.  Every wait is
bounded; a process a test forgot is killed on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0
_LISTEN_RE = re.compile(r"listening on (https?://\S+)\n")

BASE_ENV = {
    "PYTHONPATH": str(REPO),
    "PYTHONUNBUFFERED": "1",
    "DOCKET_LOG_LEVEL": "warning",
    "DOCKET_CHECKPOINT_INTERVAL": "0.05",
    "DOCKET_SHUTDOWN_TIMEOUT": "2",
    "DOCKET_RATE": "100000",
    "DOCKET_RATE_BURST": "100000",
    "DOCKET_IP_RATE": "100000",
    "DOCKET_IP_BURST": "100000",
}


class ServerExited(AssertionError):
    """The server exited before it listened (``returncode``, ``stderr`` attached)."""

    def __init__(self, returncode: int | None, stderr: str) -> None:
        super().__init__(f"server exited with {returncode}: {stderr[-2000:]}")
        self.returncode = returncode
        self.stderr = stderr


@dataclass
class Served:
    """A running server: its process, the URL it printed and its stderr file."""

    proc: asyncio.subprocess.Process
    url: str
    log: Path

    @property
    def host_port(self) -> tuple[str, int]:
        host, port = self.url.split("://", 1)[1].rsplit(":", 1)
        return host, int(port)

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    async def wait(self, timeout: float = 20.0) -> int:
        """Wait for the process to exit; its return code (``-9`` after SIGKILL)."""
        return await asyncio.wait_for(self.proc.wait(), timeout)

    async def kill(self) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
        return await self.wait()

    async def stop(self) -> int:
        """SIGTERM (a clean shutdown), falling back to SIGKILL after a bounded wait."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return await self.wait(20)
            except TimeoutError:
                return await self.kill()
        return await self.wait()


def server_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a server process: the test defaults, then ``env``."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("DOCKET_")}
    full.update(BASE_ENV)
    full.update(env or {})
    return full


async def start(
    data: Path,
    *,
    env: Mapping[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> Served:
    """Start ``serve`` on ``data``; return once it printed its URL.

    Raises :class:`ServerExited` if the process exits first (e.g. refused to start).
    """
    log = data.parent / f"server-{time.monotonic_ns()}.log"
    with log.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "server.cli",
            "serve",
            "--data",
            str(data),
            "--port",
            "0",
            cwd=REPO,
            env=server_env(env),
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
            preexec_fn=preexec_fn,
        )
    assert proc.stdout is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT)).decode()
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    match = _LISTEN_RE.fullmatch(line)
    if match is None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 10)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise ServerExited(proc.returncode, line + log.read_text(errors="replace"))
    return Served(proc=proc, url=match.group(1), log=log)


@contextlib.asynccontextmanager
async def serving(
    data: Path,
    *,
    env: Mapping[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> AsyncIterator[Served]:
    """:func:`start`, and SIGKILL on the way out if the test did not stop it."""
    served = await start(data, env=env, preexec_fn=preexec_fn)
    try:
        yield served
    finally:
        if served.proc.returncode is None:
            served.proc.kill()
            await served.proc.wait()
