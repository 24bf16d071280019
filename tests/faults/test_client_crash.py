"""A client that crashes between fetching drafts and sending their receipts catches up.

``docket inbox`` fetches every new draft addressed to its device, verifies and caches
it, then sends ``received`` receipts in one batch.  Killed anywhere in between, the next
run must finish the job: every draft ends with exactly one ``received`` receipt from the
device, none lost, none logged twice.

Two crash points:

* **after fetching** (a real ``SIGKILL`` of ``python -m client.cli inbox`` once its
  state file holds some fetched drafts and no receipt was sent);
* **after posting the receipts, before noting them** (in-process: the post succeeds,
  then the client dies before its state records it), rerun at once, before the server
  has checkpointed the receipts.  The rerun used to sign fresh receipts for drafts it had
  already answered and fail with ``409 duplicate``; it now waits for the next
  checkpoint and sends only what is missing.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from client.api import DocketClient
from client.cli import run
from protocol.receipt import Promise
from tests.client.serverproc import ServerProc, start_server
from tests.faults.counters import bump
from tests.faults.procs import REPO

PASSPHRASE = "correct horse battery staple"
DRAFTS = 8


def cli(home: Path, *args: str) -> Any:
    """``docket --json`` in-process; the parsed answer (exit 0 required)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = run(["--home", str(home), "--json", *args])
    assert code == 0, (args, err.getvalue(), out.getvalue())
    text = out.getvalue().strip()
    return json.loads(text.splitlines()[-1]) if text else None


@dataclass
class Setup:
    server: ServerProc
    med: Path
    head: Path


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    monkeypatch.setenv("DOCKET_KDF", "fast")
    monkeypatch.setenv("DOCKET_PASSPHRASE", PASSPHRASE)
    monkeypatch.delenv("DOCKET_HOME", raising=False)
    server = start_server(tmp_path / "server")
    try:
        med, head = tmp_path / "med", tmp_path / "head"
        founded = cli(
            med, "--server", server.url, "talks", "found", "--token", server.token,
            "--log-key", server.log_key, "--origin", server.origin, "--title", "Crash talks",
            "--member", "med", "--name", "The Mediator",
        )  # fmt: skip
        code = cli(med, "invite", "nh", "--role", "head", "--delegation", "north")["code"]
        fp = cli(head, "join", code, "--name", "North Head", "--talks", founded["fingerprint"])
        cli(med, "delegation", "create", "north", "--name", "North", "--head", "nh",
            "--fingerprint", fp["fingerprint"])  # fmt: skip
        cli(med, "channel", "create", "plenary", "--name", "Plenary", "--kind", "plenary",
            "--delegation", "north", "--member", "med")  # fmt: skip
        yield Setup(server=server, med=med, head=head)
    finally:
        server.stop()


def _send(setup: Setup, n: int, tag: str) -> None:
    for i in range(n):
        cli(setup.med, "send", "plenary", "--text", f"{tag} draft {i}")


def _fetched(home: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{home / 'state.sqlite'}?mode=ro", uri=True, timeout=1)
    except sqlite3.Error:
        return 0
    try:
        return int(conn.execute("SELECT count(*) FROM drafts").fetchone()[0])
    except sqlite3.Error:
        return 0
    finally:
        conn.close()


def _receipts_by_draft(setup: Setup) -> dict[int, list[str]]:
    """``draft index -> kinds`` of every receipt logged by the head's device."""
    conn = sqlite3.connect(f"file:{setup.server.data / 'docket.db'}?mode=ro", uri=True)
    try:
        out: dict[int, list[str]] = {}
        for draft_idx, kind in conn.execute("SELECT draft_idx, kind FROM receipts ORDER BY idx"):
            out.setdefault(int(draft_idx), []).append(str(kind))
        drafts = [int(i) for (i,) in conn.execute("SELECT idx FROM drafts")]
    finally:
        conn.close()
    for index in drafts:
        out.setdefault(index, [])
    return out


def _exactly_once(setup: Setup) -> None:
    receipts = _receipts_by_draft(setup)
    lost = [i for i, kinds in receipts.items() if kinds != ["received"]]
    bump("items checked", len(receipts))
    bump("items lost", len([i for i, kinds in receipts.items() if not kinds]))
    assert not lost, f"drafts without exactly one received receipt: {receipts}"


def test_inbox_killed_after_fetching_catches_up(setup: Setup) -> None:
    _send(setup, DRAFTS, "first")
    proc = subprocess.Popen(
        [sys.executable, "-m", "client.cli", "--home", str(setup.head), "--json", "inbox"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while _fetched(setup.head) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    fetched = _fetched(setup.head)
    assert fetched > 0, "the inbox was killed before it fetched anything"
    assert proc.returncode == -signal.SIGKILL, "the inbox finished before it was killed"
    bump("faults injected")
    unanswered = [i for i, kinds in _receipts_by_draft(setup).items() if not kinds]
    assert unanswered, "the inbox was killed only after it had sent its receipts"
    got = cli(setup.head, "inbox")
    assert len(got["items"]) == DRAFTS
    _exactly_once(setup)
    assert cli(setup.head, "inbox")["receipts_sent"] == 0


def test_regression_inbox_rerun_after_dying_past_its_receipts_failed_409(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    _send(setup, DRAFTS, "second")
    post = DocketClient._post_receipts
    fetch = DocketClient._fetch_checkpoint
    seen: list[Any] = []

    async def post_then_die(self: DocketClient, receipts: Any) -> list[Promise]:
        await post(self, receipts)
        raise KeyboardInterrupt  # the process dies before it notes what it sent

    async def remember(self: DocketClient, size: int | None = None) -> Any:
        got = await fetch(self, size)
        seen.append(got)
        return got

    monkeypatch.setattr(DocketClient, "_post_receipts", post_then_die)
    monkeypatch.setattr(DocketClient, "_fetch_checkpoint", remember)
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        assert run(["--home", str(setup.head), "--json", "inbox"]) != 0
    bump("faults injected")
    stale = seen[0]  # from before the receipts: the server has not checkpointed them yet
    calls = 0

    async def lagging(self: DocketClient, size: int | None = None) -> Any:
        nonlocal calls
        calls += 1
        return stale if size is None and calls <= 2 else await fetch(self, size)

    monkeypatch.setattr(DocketClient, "_post_receipts", post)
    monkeypatch.setattr(DocketClient, "_fetch_checkpoint", lagging)
    got = cli(setup.head, "inbox")
    assert calls > 2
    assert len(got["items"]) == DRAFTS
    _exactly_once(setup)
