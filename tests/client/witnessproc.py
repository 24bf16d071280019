"""Run the witness daemon as a subprocess on loopback, exactly as an operator would.

``python -m client.witnessd init`` then ``serve --port 0``; every wait is bounded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.client.serverproc import START_TIMEOUT, spawn_listening, stop_process


def witness_init(home: Path, witness_id: str, *args: str) -> dict[str, Any]:
    """``init --json`` a witness home; return what it printed."""
    done = subprocess.run(
        [sys.executable, "-m", "client.witnessd", "init", "--home", str(home),
         "--id", witness_id, "--json", *args],
        capture_output=True,
        timeout=START_TIMEOUT,
        check=True,
    )  # fmt: skip
    info: dict[str, Any] = json.loads(done.stdout)
    return info


@dataclass
class WitnessProc:
    """A running ``serve`` of one witness home."""

    home: Path
    port: int = 0
    url: str = ""
    proc: subprocess.Popen[bytes] | None = None
    output: list[str] = field(default_factory=list)

    def start(self) -> WitnessProc:
        """Start serving (on the same port as before when restarted)."""
        self.proc, self.url, self.output = spawn_listening(
            [sys.executable, "-m", "client.witnessd", "serve", "--home", str(self.home),
             "--port", str(self.port)],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            what="witness",
        )  # fmt: skip
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a bounded wait."""
        if self.proc is not None:
            stop_process(self.proc)

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, as a crash or power loss would leave it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=15)
