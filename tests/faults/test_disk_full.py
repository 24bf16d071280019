"""A full disk: writes are refused with 507 (or 503) problem+json, nothing is corrupted,
and once there is room again everything acknowledged is intact.

Two ways to run out of space:

* ``tmpfs``: the data directory on a 2 MiB tmpfs (needs ``mount``, i.e. root); the
  ciphertext blobs fill it first (``ENOSPC`` from a file write), then SQLite's WAL
  (``SQLITE_FULL``).  Room comes back with ``mount -o remount,size=16m``.
* ``fsize``: ``RLIMIT_FSIZE`` on the server process (works anywhere): the WAL hits the
  limit and SQLite reports an I/O error (503 ``unavailable``).  Room comes back by
  restarting without the limit.

Either way the server is stopped while the disk is full (its final checkpoint and WAL
fold fail), restarted with room, and must then verify completely.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import resource
import signal
import sqlite3
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from protocol.crypto import Rng
from protocol.receipt import Promise
from server.services import auth as auth_service
from server.services import checkpoints
from server.services import relay as relay_module
from server.services.blobs import BlobStore
from tests.faults.counters import bump
from tests.faults.procs import serving
from tests.faults.workload import (
    Template,
    build_template,
    check_store,
    login_all,
    verify_log,
)
from tests.server.harness import Harness

BODY = "x" * 48 * 1024
FSIZE_LIMIT = 384 * 1024


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return build_template(tmp_path_factory.mktemp("disk-template"))


@contextmanager
def tiny_tmpfs(path: Path) -> Iterator[Callable[[str], None]]:
    """A 2 MiB tmpfs at ``path``; yields a function that resizes it."""
    path.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(path)],
            check=True,
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here ({exc}); the fsize variant covers this")

    def resize(size: str) -> None:
        subprocess.run(
            ["mount", "-o", f"remount,size={size}", str(path)],
            check=True,
            capture_output=True,
            timeout=10,
        )

    try:
        yield resize
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True, timeout=10)


def _limit_file_size() -> None:
    # In the child, before exec: writes past the limit fail with EFBIG instead of
    # killing the process with SIGXFSZ.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE_LIMIT, FSIZE_LIMIT))


async def _fill(h: Harness, statuses: Counter[str], acked: list[Promise]) -> None:
    """Write until the disk is full, and then some: drafts, receipts, a login."""
    sender = h.people["n-adv"]
    refused = 0
    drafts = []
    for i in range(120):
        sealed = h.seal(sender, "plenary", BODY + str(i))
        resp = await h.post_draft(sender, sealed)
        body = await resp.read()
        if resp.status == 200:
            promise = Promise.from_json(json.loads(body)["promise"])
            acked.append(promise)
            drafts.append((sealed, promise.index))
            continue
        sender.counter -= 1  # not logged: the next draft reuses the counter
        _refusal(resp.status, resp.content_type, body, "draft", statuses)
        refused += 1
        if refused >= 3:
            break
    assert refused >= 3, f"the disk never filled: {statuses}"
    # Small writes still find room for a while; go on until they are refused too.
    refused = 0
    for person in ("s-adv", "s-head", "n-head", "med"):
        for sealed, index in drafts:
            me = h.people[person]
            resp = await h.post_receipts(me, [h.receipt(me, sealed, index)])
            body = await resp.read()
            if resp.status == 200:
                acked.extend(Promise.from_json(p) for p in json.loads(body)["promises"])
                continue
            _refusal(resp.status, resp.content_type, body, "receipt", statuses)
            refused += 1
            if refused >= 3:
                break
        if refused >= 3:
            break
    # A login stores a token: refused too, never a 500.
    h.tokens.pop(h.people["obs"].device, None)
    try:
        await h.token(h.people["obs"])
        statuses["login:200"] += 1
    except AssertionError as exc:
        assert "507" in str(exc) or "503" in str(exc), exc
        statuses["login:refused"] += 1


def _refusal(status: int, ctype: str, body: bytes, what: str, statuses: Counter[str]) -> None:
    if status == 500:
        bump("500s seen")
    assert status in (503, 507), (what, status, body[:300])
    assert ctype == "application/problem+json"
    problem = json.loads(body)
    assert problem["code"] == ("insufficient_storage" if status == 507 else "unavailable")
    assert b"Traceback" not in body
    statuses[f"{what}:{status}"] += 1


async def _recover_and_verify(
    template: Template, data: Path, acked: list[Promise], seed: str
) -> None:
    async with serving(data) as served:
        async with template.attach(served.url, data, seed) as h:
            health = await h.ok("GET", "/healthz")
            assert health["read_only"] is False, served.stderr()
            verified = await verify_log(h, acked, before=None)
            check_store(data, template.init.log_key)
            # And it writes again, where the log left off.
            await h.sync()
            sender = h.people["n-adv"]
            sender.counter = h.require_ledger().counters.get(sender.device, 0)
            resp = await h.post_draft(sender, h.seal(sender, "plenary", "room again"))
            assert resp.status == 200, await resp.text()
            promise = Promise.from_json((await resp.json())["promise"])
            assert promise.index == len(verified.entries)
        assert await served.stop() == 0
    check_store(data, template.init.log_key, stopped=True)


async def test_disk_full_on_tmpfs(template: Template, tmp_path: Path) -> None:
    with tiny_tmpfs(tmp_path / "fs") as resize:
        data = template.clone(tmp_path / "fs" / "data")
        statuses: Counter[str] = Counter()
        acked: list[Promise] = []
        async with serving(data) as served:
            async with template.attach(served.url, data, "tmpfs") as h:
                await login_all(h)
                await _fill(h, statuses, acked)
                health = await h.ok("GET", "/healthz")
                assert health["read_only"] is False  # full is not broken
                assert (await h.request("GET", "/v1/inbox", person=h.people["s-adv"])).status == 200
            bump("faults injected")
            assert await served.stop() == 0  # stopping on a full disk is clean too
        assert statuses["draft:507"] >= 1, statuses  # a draft's commit hit SQLITE_FULL
        assert statuses["receipt:507"] >= 1, statuses  # SQLite hit SQLITE_FULL
        resize("16m")
        await _recover_and_verify(template, data, acked, "tmpfs-after")


async def test_file_size_limit(template: Template, tmp_path: Path) -> None:
    data = template.clone(tmp_path / "data")
    statuses: Counter[str] = Counter()
    acked: list[Promise] = []
    async with serving(data, preexec_fn=_limit_file_size) as served:
        async with template.attach(served.url, data, "fsize") as h:
            await login_all(h)
            await _fill(h, statuses, acked)
            assert (await h.ok("GET", "/healthz"))["read_only"] is False
        # SQLite reports EFBIG as an I/O error, not as a full disk: 503.
        assert statuses["draft:503"] >= 1, statuses
        bump("faults injected")
        assert await served.stop() == 0
    await _recover_and_verify(template, data, acked, "fsize-after")


async def test_short_writes_never_publish_a_truncated_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: ``write_file_atomically`` trusted one ``os.write`` to write it all;
    on a nearly full disk a short write published a truncated ``checkpoint.txt``, and
    the next start went read-only."""
    real_write = os.write
    calls = Counter[str]()

    def short_write(fd: int, data: bytes | memoryview) -> int:
        calls["write"] += 1
        if calls["write"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, bytes(data)[:7])

    monkeypatch.setattr(os, "write", short_write)
    target = tmp_path / "checkpoint.txt"
    target.write_bytes(b"old\n")
    with pytest.raises(OSError, match="No space"):
        checkpoints.write_file_atomically(target, b"a checkpoint note of some length\n")
    assert target.read_bytes() == b"old\n"  # the old file stands, whole
    assert not (tmp_path / "checkpoint.txt.tmp").exists()
    calls.clear()
    calls["write"] = -1000  # no more failures
    checkpoints.write_file_atomically(target, b"a checkpoint note of some length\n")
    assert target.read_bytes() == b"a checkpoint note of some length\n"


async def test_regression_enospc_storing_a_blob_answered_500(
    talks: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = talks
    sender = h.people["n-adv"]
    await h.token(sender)
    blobs = sorted(p.name for p in h.settings.blob_dir.iterdir())

    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    # Ciphertexts above DB_CIPHERTEXT_MAX stream to a file (_persist); make this one such.
    monkeypatch.setattr(relay_module, "DB_CIPHERTEXT_MAX", 0)
    monkeypatch.setattr(BlobStore, "_persist", full)
    before = h.counts()
    resp = await h.post_draft(sender, h.seal(sender, "plenary", "no room"))
    body = await resp.json()
    assert (resp.status, body["code"]) == (507, "insufficient_storage"), body
    assert h.counts() == before
    assert sorted(p.name for p in h.settings.blob_dir.iterdir()) == blobs
    assert not list((h.settings.blob_dir / "tmp").iterdir())


async def test_regression_storage_error_storing_a_token_answered_500(
    talks: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = talks

    def broken(*args: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(auth_service, "insert_token_txn", broken)
    h.tokens.clear()
    with pytest.raises(AssertionError, match="503"):
        await h.token(h.people["obs"])


async def test_regression_checkpoint_stored_but_unpublished_was_signed_again(
    tmp_path: Path, rng: Rng, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Writing ``checkpoint.txt`` failed (a full disk) after the checkpoint was stored:
    the checkpointer signed the same size again, hit the stored row's key, and left the
    file stale until the log grew.  It must publish the stored checkpoint instead."""
    real = checkpoints.write_file_atomically
    failures = [OSError(errno.ENOSPC, "No space left on device")]

    def flaky(path: Path, data: bytes) -> None:
        if failures:
            raise failures.pop()
        real(path, data)

    monkeypatch.setattr(checkpoints, "write_file_atomically", flaky)
    async with Harness.start(tmp_path, rng) as h:
        await h.found()
        assert not failures  # the founding checkpoint was stored, its file write failed
        for _ in range(100):
            if h.settings.checkpoint_path.exists():
                break
            await asyncio.sleep(0.02)
        cp, _, note = await h.checkpoint(1)
        assert h.settings.checkpoint_path.read_bytes() == note
    assert "UNIQUE constraint" not in caplog.text


async def test_writes_resume_on_their_own_once_the_full_disk_has_room(
    template: Template, tmp_path: Path
) -> None:
    """Disk full, then room made while the server runs: the very same process accepts
    drafts, receipts and logins again (no restart, no read-only), signs a checkpoint
    over them, and everything acknowledged before and after verifies."""
    with tiny_tmpfs(tmp_path / "fs") as resize:
        data = template.clone(tmp_path / "fs" / "data")
        statuses: Counter[str] = Counter()
        acked: list[Promise] = []
        async with serving(data) as served:
            async with template.attach(served.url, data, "resume") as h:
                await login_all(h)
                await _fill(h, statuses, acked)
                bump("faults injected")
                assert statuses["draft:507"] >= 1, statuses
                resize("32m")  # the operator frees space; the server is not touched
                await h.sync()
                sender = h.people["n-adv"]
                sender.counter = h.require_ledger().counters.get(sender.device, 0)
                resumed = None
                for attempt in range(50):  # bounded: the first write normally succeeds
                    sealed = h.seal(sender, "plenary", f"room again {attempt}")
                    resp = await h.post_draft(sender, sealed)
                    if resp.status == 200:
                        resumed = Promise.from_json((await resp.json())["promise"])
                        break
                    sender.counter -= 1
                    await asyncio.sleep(0.1)
                assert resumed is not None, "writes did not resume after space was freed"
                acked.append(resumed)
                reader = h.people["s-adv"]
                resp = await h.post_receipts(reader, [h.receipt(reader, sealed, resumed.index)])
                assert resp.status == 200, await resp.text()
                acked.extend(Promise.from_json(p) for p in (await resp.json())["promises"])
                h.tokens.pop(h.people["obs"].device, None)
                await h.token(h.people["obs"])  # a login stores a token again
                health = await h.ok("GET", "/healthz")
                assert health["read_only"] is False
                await h.sync()
                await h.checkpoint(h.require_ledger().size)
                verified = await verify_log(h, acked, before=None)
                assert len(verified.entries) == h.require_ledger().size
            assert await served.stop() == 0
        check_store(data, template.init.log_key, stopped=True)
