"""Slow clients are cut off by the deadlines while everybody else is served.

Raw sockets play the attackers (a request head or body trickling in a byte at a time,
an upload that stalls or never ends, an idle connection) against a real server with
small deadlines; a well-behaved client keeps checking ``/healthz`` meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from protocol.crypto import Rng
from protocol.envelope import encode_upload
from tests.abuse.conftest import live
from tests.faults.counters import bump
from tests.server.harness import Harness

HEADER_TIMEOUT = 0.6
BODY_TIMEOUT = 0.5
UPLOAD_TIMEOUT = 1.0
SLOW = 30
"""Attacking connections at once."""
TICK = 0.1
"""Seconds between the bytes a slow client sends (a byte per second, sped up)."""


@pytest.fixture
async def server(tmp_path: Path, rng: Rng) -> AsyncIterator[Harness]:
    async with live(
        tmp_path,
        rng,
        header_timeout=HEADER_TIMEOUT,
        body_timeout=BODY_TIMEOUT,
        upload_timeout=UPLOAD_TIMEOUT,
    ) as h:
        for person in h.people.values():
            await h.token(person)
        yield h


def _addr(h: Harness) -> tuple[str, int]:
    host, port = h.base.split("://", 1)[1].rsplit(":", 1)
    return host, int(port)


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Whether the server closes the connection within ``seconds`` (reading all)."""
    try:
        async with asyncio.timeout(seconds):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return True


class Health:
    """A well-behaved client polling ``/healthz``; keeps every latency."""

    def __init__(self, h: Harness) -> None:
        self.h = h
        self.latencies: list[float] = []
        self.statuses: list[int] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            resp = await self.h.request("GET", "/healthz")
            await resp.read()
            self.latencies.append(time.monotonic() - started)
            self.statuses.append(resp.status)
            await asyncio.sleep(0.05)

    async def __aenter__(self) -> Health:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._task is not None
        await self._task
        assert self.statuses and set(self.statuses) == {200}, self.statuses
        assert max(self.latencies) < 0.5, max(self.latencies)


async def _trickle(writer: asyncio.StreamWriter, data: bytes, stop: asyncio.Event) -> None:
    for i in range(len(data)):
        if stop.is_set():
            return
        try:
            writer.write(data[i : i + 1])
            await writer.drain()
        except ConnectionError:
            return
        await asyncio.sleep(TICK)


async def test_trickled_request_heads_are_cut_off(server: Harness) -> None:
    h = server
    host, port = _addr(h)
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n"
    async with Health(h):
        conns = [await asyncio.open_connection(host, port) for _ in range(SLOW)]
        stop = asyncio.Event()
        tricklers = [asyncio.create_task(_trickle(w, head, stop)) for _, w in conns]
        started = time.monotonic()
        closed = await asyncio.gather(*(_closed_within(r, HEADER_TIMEOUT + 2) for r, _ in conns))
        elapsed = time.monotonic() - started
        stop.set()
        await asyncio.gather(*tricklers)
        for _, w in conns:
            w.close()
    bump("bad inputs tried", SLOW)
    assert all(closed), "a trickling request head was never cut off"
    assert elapsed < HEADER_TIMEOUT + 2


async def test_idle_connections_are_closed(server: Harness) -> None:
    h = server
    host, port = _addr(h)
    async with Health(h):
        # Connected, never a byte; and kept alive after one answer.
        silent = [await asyncio.open_connection(host, port) for _ in range(SLOW)]
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, _ = await _read_response(reader)
        assert status == 200
        results = await asyncio.gather(
            *(_closed_within(r, HEADER_TIMEOUT + 2) for r, _ in [*silent, (reader, writer)])
        )
        for _, w in [*silent, (reader, writer)]:
            w.close()
    assert all(results)


async def _slow_post(
    h: Harness, path: str, head_extra: str, prefix: bytes, rest: bytes, total: int
) -> tuple[int, bytes, float]:
    """Send the head and ``prefix`` at once, then ``rest`` a byte per tick."""
    host, port = _addr(h)
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {total}\r\n{head_extra}\r\n").encode()
        + prefix
    )
    await writer.drain()
    stop = asyncio.Event()
    trickler = asyncio.create_task(_trickle(writer, rest, stop))
    started = time.monotonic()
    try:
        async with asyncio.timeout(UPLOAD_TIMEOUT + BODY_TIMEOUT + 3):
            status, _, body = await _read_response(reader)
    finally:
        stop.set()
        await trickler
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    bump("bad inputs tried")
    return status, body, time.monotonic() - started


def _stored(h: Harness) -> tuple[dict[str, int], list[str], list[str]]:
    blobs = sorted(p.name for p in h.settings.blob_dir.iterdir() if p.is_file())
    tmp = sorted(p.name for p in (h.settings.blob_dir / "tmp").iterdir())
    return h.counts(), blobs, tmp


async def test_trickled_json_body_times_out(server: Harness) -> None:
    h = server
    token = await h.token(h.people["med"])
    body = json.dumps({"delegation": None, "member": "slow", "role": "auditor"}).encode()
    before = _stored(h)
    async with Health(h):
        status, answer, elapsed = await _slow_post(
            h,
            "/v1/invitations",
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n",
            b"",
            body,
            len(body),
        )
    assert status == 408, answer
    assert json.loads(answer)["code"] == "timeout"
    assert elapsed < BODY_TIMEOUT + 1.5
    assert _stored(h) == before


async def test_trickled_and_stalled_uploads_time_out(server: Harness) -> None:
    h = server
    sender = h.people["n-adv"]
    token = await h.token(sender)
    before = _stored(h)
    auth = f"Authorization: Bearer {token}\r\nContent-Type: application/octet-stream\r\n"
    async with Health(h):
        # The ciphertext trickles in: every byte in time, the whole too slow.
        sealed = h.seal(sender, "plenary", "z" * 200)
        sender.counter -= 1
        upload = encode_upload(sealed)
        cut = len(upload) - len(sealed.ciphertext)
        status, answer, elapsed = await _slow_post(
            h, "/v1/drafts", auth, upload[:cut], upload[cut:], len(upload)
        )
        assert status == 408, answer
        assert json.loads(answer)["code"] == "timeout"
        assert elapsed < UPLOAD_TIMEOUT + 1.5
        # The meta part arrives, then nothing more.
        status, answer, elapsed = await _slow_post(
            h, "/v1/drafts", auth, upload[:cut], b"", len(upload)
        )
        assert status == 408, answer
        assert elapsed < BODY_TIMEOUT + 1.5
        # The meta part itself trickles.
        status, answer, _ = await _slow_post(
            h, "/v1/drafts", auth, upload[:2], upload[2:cut], len(upload)
        )
        assert status == 408, answer
    assert _stored(h) == before
    # The same draft sent properly is accepted.
    await h.send(sender, h.seal(sender, "plenary", "z" * 200))


async def test_regression_stalled_download_held_its_connection_forever(
    tmp_path: Path, rng: Rng, caplog: pytest.LogCaptureFixture
) -> None:
    """A recipient that asked for a ciphertext and never read it kept the connection,
    the response and the open file for as long as it liked (no deadline applied to
    sending); enough of them exhaust the server's file descriptors."""
    size = 16 * 1024 * 1024
    async with live(
        tmp_path, rng, header_timeout=HEADER_TIMEOUT, upload_timeout=UPLOAD_TIMEOUT,
        max_draft=2 * size,
    ) as h:  # fmt: skip
        sender = h.people["n-adv"]
        sealed = h.seal(sender, "plenary", "q" * size)
        promise = await h.send(sender, sealed)
        token = await h.token(h.people["s-adv"])
        host, port = _addr(h)
        async with Health(h):
            stalled = []
            for _ in range(5):
                reader, writer = await asyncio.open_connection(host, port)
                writer.write(
                    f"GET /v1/drafts/{promise.index}/ciphertext HTTP/1.1\r\nHost: x\r\n"
                    f"Authorization: Bearer {token}\r\n\r\n".encode()
                )
                stalled.append((reader, writer))
            await asyncio.sleep(UPLOAD_TIMEOUT + 1.0)  # never reading
        bump("bad inputs tried", len(stalled))
        for reader, writer in stalled:
            got = 0
            async with asyncio.timeout(10):
                while chunk := await reader.read(1 << 20):
                    got += len(chunk)
            writer.close()
            assert got < size, "the stalled download was never cut off"
        # A reader that reads gets the whole ciphertext, twice on one kept-alive
        # connection (the deadline must not break the response it guards).
        for _ in range(2):
            resp = await h.request(
                "GET", f"/v1/drafts/{promise.index}/ciphertext", person=h.people["s-adv"]
            )
            assert resp.status == 200
            assert await resp.read() == sealed.ciphertext
    assert "Unhandled exception" not in caplog.text
