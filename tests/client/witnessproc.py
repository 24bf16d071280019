"""Run the witness daemon as a subprocess on loopback, exactly as an operator would.

``python -m client.witnessd init`` then ``serve --port 0``; every wait is bounded.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

START_TIMEOUT = 30.0
_LISTEN_RE = re.compile(r"listening on (http://[0-9.]+:[0-9]+)")


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
        proc = subprocess.Popen(
            [sys.executable, "-m", "client.witnessd", "serve", "--home", str(self.home),
             "--port", str(self.port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        self.proc = proc
        self.output = output = []
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
                raise RuntimeError("witness did not start: " + " | ".join(output[-5:]))
        if not found:
            proc.wait(timeout=5)
            raise RuntimeError("witness exited: " + " | ".join(output[-5:]))
        self.url = found[0]
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a bounded wait."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, as a crash or power loss would leave it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=15)
