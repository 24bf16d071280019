"""Start the real server as a subprocess on loopback for client end-to-end tests.

The client may not import ``server`` (import-linter), and these tests keep to the same
rule: the server runs as ``python -m server.cli`` exactly as an operator would run it.
Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT = 30.0
_LISTEN_RE = re.compile(r"listening on (http://[0-9.]+:[0-9]+)")


@dataclass
class ServerProc:
    """A running ``docket-server serve`` and what ``init`` printed."""

    url: str
    data: Path
    token: str
    log_key: str
    origin: str
    proc: subprocess.Popen[bytes]
    output: list[str]

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a bounded wait."""
        stop_process(self.proc)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after a bounded wait."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def spawn_listening(
    args: list[str], *, env: dict[str, str], what: str
) -> tuple[subprocess.Popen[bytes], str, list[str]]:
    """Start ``args`` and wait (bounded) for its ``listening on URL`` line.

    Returns the process, the URL and the list its output lines keep being added to (a
    thread reads them all, so the process never blocks on a full pipe).
    """
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    output: list[str] = []
    found: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip()
            output.append(line)
            match = _LISTEN_RE.search(line)
            if match and not found:
                found.append(match.group(1))
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT
    while not ready.wait(timeout=0.1):
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{what} did not start in time: " + " | ".join(output[-5:]))
    if not found:
        proc.wait(timeout=5)
        raise RuntimeError(f"{what} exited: " + " | ".join(output[-5:]))
    return proc, found[0], output


def server_env() -> dict[str, str]:
    env = dict(os.environ)
    # Checkpoint every 50 ms: clients wait for each write to be checkpointed.
    env["DOCKET_CHECKPOINT_INTERVAL"] = "0.05"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_server(data: Path, origin: str = "test.docket.example/talks") -> ServerProc:
    """``init`` a data directory and ``serve`` it on 127.0.0.1, port 0."""
    init = subprocess.run(
        [sys.executable, "-m", "server.cli", "init", "--data", str(data), "--origin", origin,
         "--json"],
        capture_output=True,
        timeout=START_TIMEOUT,
        env=server_env(),
        check=True,
    )  # fmt: skip
    info = json.loads(init.stdout)
    return serve_existing(data, info)


def serve_existing(data: Path, info: dict[str, str] | None = None) -> ServerProc:
    """``serve`` an initialised data directory on 127.0.0.1, port 0.  ``info`` is what
    ``init`` printed (empty strings when the caller does not need it)."""
    info = info or {"founding_token": "", "log_key": "", "origin": ""}
    proc, url, output = spawn_listening(
        [sys.executable, "-m", "server.cli", "serve", "--data", str(data), "--port", "0"],
        env=server_env(),
        what="server",
    )
    return ServerProc(
        url=url,
        data=data,
        token=info["founding_token"],
        log_key=info["log_key"],
        origin=info["origin"],
        proc=proc,
        output=output,
    )
