"""The demo's child processes: the server and the witness daemons, started and stopped.

Each service is a real subprocess (``python -m server.cli``, ``python -m
client.witnessd``), never an import: the demo drives them the way an operator would.
A service is started on port 0 and its URL is read from the ``listening on
http://HOST:PORT`` line it prints; after that its output is drained into a log file in
the demo's working directory, so a full pipe never blocks it.  Stopping is SIGTERM, a
bounded wait, then SIGKILL.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from client.errors import NetworkError
from protocol.encoding import b64d
from protocol.errors import ProtocolError

START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
_LISTEN_RE = re.compile(r"listening on (http://[0-9.]+:[0-9]+)")


async def run_json(argv: list[str], *, env: dict[str, str], what: str) -> Any:
    """Run a one-shot command that prints JSON (``init --json``); return the value."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=START_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise NetworkError(f"{what} did not finish in {START_TIMEOUT:.0f} s") from None
    if proc.returncode != 0:
        raise NetworkError(f"{what} failed: {err.decode(errors='replace').strip()[:300]}")
    try:
        return json.loads(out.decode("utf-8", errors="replace"))
    except ValueError as exc:
        raise NetworkError(f"cannot read what {what} printed: {exc}") from exc


class Service:
    """One long-running child process that announces its URL on its output."""

    def __init__(self, name: str, log: Path) -> None:
        self.name = name
        self.log = log
        self.url = ""
        self.proc: asyncio.subprocess.Process | None = None
        self._drain_task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The port it listens on (after :meth:`start`)."""
        return int(self.url.rsplit(":", 1)[1]) if self.url else 0

    async def start(self, argv: list[str], *, env: dict[str, str]) -> str:
        """Spawn ``python argv...`` and wait for its ``listening on`` line; return the URL."""
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
        )
        try:
            self.url = await asyncio.wait_for(self._listening(), timeout=START_TIMEOUT)
        except TimeoutError:
            raise NetworkError(f"the {self.name} did not start in {START_TIMEOUT:.0f} s") from None
        return self.url

    def _output(self) -> asyncio.StreamReader:
        if self.proc is None or self.proc.stdout is None:
            raise NetworkError(f"the {self.name} is not running")
        return self.proc.stdout

    async def _listening(self) -> str:
        stdout = self._output()
        seen: list[str] = []
        while True:
            line = await stdout.readline()
            if not line:
                raise NetworkError(
                    f"the {self.name} exited before listening: " + " | ".join(seen[-3:])
                )
            text = line.decode("utf-8", errors="replace").strip()
            seen.append(text)
            match = _LISTEN_RE.search(text)
            if match:
                # Keep draining its output so it never blocks on a full pipe.
                self._drain_task = asyncio.get_running_loop().create_task(self._drain())
                return match.group(1)

    async def _drain(self) -> None:
        stdout = self._output()
        with self.log.open("ab") as log:
            while line := await stdout.readline():
                log.write(line)

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit within :data:`STOP_TIMEOUT`."""
        proc = self.proc
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), timeout=STOP_TIMEOUT)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._drain_task is not None:
            try:
                await asyncio.wait_for(self._drain_task, timeout=STOP_TIMEOUT)
            except (TimeoutError, OSError):
                self._drain_task.cancel()


@dataclass(frozen=True, slots=True)
class WitnessHome:
    """A witness daemon's identity, as ``python -m client.witnessd init --json`` printed it."""

    id: str
    home: Path
    name: str
    key: bytes


async def init_witness(
    home: Path, witness_id: str, *, origin: str, log_key: str, env: dict[str, str]
) -> WitnessHome:
    """``python -m client.witnessd init`` for one log; the daemon's name and public key."""
    what = f"witness init ({witness_id})"
    value = await run_json(
        [
            "-m",
            "client.witnessd",
            "init",
            "--home",
            str(home),
            "--id",
            witness_id,
            "--log",
            f"{origin}={log_key}",
            "--json",
        ],
        env=env,
        what=what,
    )
    try:
        (log,) = [item for item in value["logs"] if item["origin"] == origin]
        name = log["name"]
        key = b64d(value["key"], length=32, what="witness key")
    except (ValueError, KeyError, TypeError, ProtocolError) as exc:
        raise NetworkError(f"cannot read what {what} printed: {exc}") from exc
    if not isinstance(name, str):
        raise NetworkError(f"{what} printed an invalid witness name")
    return WitnessHome(id=witness_id, home=home, name=name, key=key)


def witness_serve_argv(home: Path, port: int = 0) -> list[str]:
    """The arguments of ``python -m client.witnessd serve`` for ``home`` on loopback."""
    return ["-m", "client.witnessd", "serve", "--home", str(home), "--port", str(port)]
