"""Annexes end to end against a real ``docket-server``: sent as streams, saved only when
every check passes, resumed without resending, and every tampering refused."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from client.api import DocketClient
from client.errors import NetworkError, ServerError, UsageError, VerificationError
from client.transport import Transport
from protocol import annex
from tests.client.conftest import PASSPHRASE
from tests.client.serverproc import start_server
from tests.client.test_e2e import Talks, cli, ok

CHUNK = annex.MIN_CHUNK


@pytest.fixture(scope="module")
def talks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Talks]:
    mp = pytest.MonkeyPatch()
    mp.setenv("DOCKET_KDF", "fast")
    mp.setenv("DOCKET_PASSPHRASE", PASSPHRASE)
    mp.delenv("DOCKET_HOME", raising=False)
    base = tmp_path_factory.mktemp("annex")
    server = start_server(base / "server")
    try:
        homes = {m: base / "homes" / m for m in ("med", "nh", "sh", "obs")}
        founded = ok(
            cli(homes["med"], "--server", server.url, "talks", "found", "--token", server.token,
                "--log-key", server.log_key, "--origin", server.origin, "--title", "Annexes",
                "--member", "med", "--name", "The Mediator", "--quorum", "2", "--rule",
                "count", "--no-fresh-quorum")
        )  # fmt: skip
        t = Talks(server, homes, founded["fingerprint"], founded["talks"])
        for head, delegation in (("nh", "north"), ("sh", "south")):
            code = ok(cli(homes["med"], "invite", head, "--role", "head", "--delegation",
                          delegation))["code"]  # fmt: skip
            fp = ok(cli(homes[head], "join", code, "--name", head, "--talks", t.fingerprint))[
                "fingerprint"
            ]
            ok(cli(homes["med"], "delegation", "create", delegation, "--name", delegation,
                   "--head", head, "--fingerprint", fp))  # fmt: skip
        code = ok(cli(homes["med"], "invite", "obs", "--role", "observer"))["code"]
        ok(cli(homes["obs"], "join", code, "--name", "obs", "--talks", t.fingerprint))
        ok(cli(homes["med"], "enrol", "obs"))
        ok(cli(homes["med"], "channel", "create", "plenary", "--name", "Plenary", "--kind",
               "plenary", "--delegation", "north", "--delegation", "south",
               "--member", "med"))  # fmt: skip
        ok(cli(homes["med"], "channel", "create", "north-med", "--name", "North", "--kind",
               "bilateral", "--delegation", "north", "--member", "med"))  # fmt: skip
        yield t
    finally:
        server.stop()
        mp.undo()


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKET_PASSPHRASE", PASSPHRASE)


def annex_file(tmp_path: Path, size: int, seed: bytes = b"a") -> Path:
    path = tmp_path / f"annex-{seed.decode()}-{size}.bin"
    with path.open("wb") as fh:
        block = hashlib.sha256(seed).digest() * 128
        left = size
        while left:
            fh.write(block[: min(left, len(block))])
            left -= min(left, len(block))
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def client(t: Talks, who: str) -> DocketClient:
    c = DocketClient(t.home(who), passphrase=PASSPHRASE)
    c.annexes.chunk_size = CHUNK
    return c


def chunk_dir(t: Talks, upload: str) -> Path:
    return t.server.data / "blobs" / "annex" / upload


async def send(t: Talks, path: Path, channel: str = "plenary") -> int:
    async with client(t, "nh") as c:
        await c.sync()
        sent, manifest = await c.send_annex(channel, path, title=path.name)
        assert manifest.chunks == annex.chunk_count(path.stat().st_size, CHUNK)
        return sent.index


def test_cli_sends_an_annex_and_the_reader_saves_exactly_the_file(
    talks: Talks, tmp_path: Path
) -> None:
    path = annex_file(tmp_path, 2 * annex.CHUNK_SIZE + 123)
    sent = ok(cli(talks.home("nh"), "send", "plenary", str(path), "--annex"))
    assert sent["annex"] == {"chunks": 3, "length": path.stat().st_size}
    read = ok(cli(talks.home("sh"), "read", str(sent["index"]), "--save", str(tmp_path / "out")))
    assert read["file"]["size"] == path.stat().st_size
    [saved] = read["saved"]
    assert digest(Path(saved)) == digest(path)
    assert not list((tmp_path / "out").glob(".*.part"))


def test_an_empty_file_is_one_final_chunk(talks: Talks, tmp_path: Path) -> None:
    path = annex_file(tmp_path, 0)
    index = asyncio.run(send(talks, path))

    async def save() -> None:
        async with client(talks, "sh") as c:
            await c.sync()
            manifest = await c.save_annex(index, tmp_path / "empty.bin")
            assert (manifest.chunks, manifest.length) == (1, 0)

    asyncio.run(save())
    assert (tmp_path / "empty.bin").read_bytes() == b""


def _upload_of(t: Talks, index: int) -> str:
    import sqlite3

    conn = sqlite3.connect(t.server.data / "docket.db")
    try:
        (upload,) = conn.execute("SELECT id FROM annexes WHERE draft_idx = ?", (index,)).fetchone()
    finally:
        conn.close()
    return str(upload)


def _save_refused(t: Talks, index: int, dest: Path) -> None:
    async def save() -> None:
        async with client(t, "sh") as c:
            await c.sync()
            with pytest.raises(VerificationError) as info:
                await c.save_annex(index, dest)
            assert info.value.code == "annex_tampered"

    asyncio.run(save())
    assert not dest.exists()
    assert not list(dest.parent.glob(f".{dest.name}.part"))


def test_server_reordering_annex_chunks_is_caught(talks: Talks, tmp_path: Path) -> None:
    index = asyncio.run(send(talks, annex_file(tmp_path, 3 * CHUNK, b"r")))
    folder = chunk_dir(talks, _upload_of(talks, index))
    first, second = (folder / "0").read_bytes(), (folder / "1").read_bytes()
    (folder / "0").write_bytes(second)
    (folder / "1").write_bytes(first)
    _save_refused(talks, index, tmp_path / "reordered.bin")


def test_server_truncating_an_annex_chunk_is_caught(talks: Talks, tmp_path: Path) -> None:
    index = asyncio.run(send(talks, annex_file(tmp_path, 2 * CHUNK + 10, b"t")))
    last = chunk_dir(talks, _upload_of(talks, index)) / "2"
    last.write_bytes(last.read_bytes()[:-5])
    _save_refused(talks, index, tmp_path / "truncated.bin")


def test_server_substituting_a_chunk_from_another_annex_is_caught(
    talks: Talks, tmp_path: Path
) -> None:
    one = asyncio.run(send(talks, annex_file(tmp_path, 2 * CHUNK, b"x")))
    two = asyncio.run(send(talks, annex_file(tmp_path, 2 * CHUNK, b"y")))
    target = chunk_dir(talks, _upload_of(talks, one)) / "1"
    target.write_bytes((chunk_dir(talks, _upload_of(talks, two)) / "1").read_bytes())
    _save_refused(talks, one, tmp_path / "substituted.bin")


def test_annex_is_not_readable_outside_the_channel(talks: Talks, tmp_path: Path) -> None:
    index = asyncio.run(send(talks, annex_file(tmp_path, CHUNK, b"n"), channel="north-med"))

    async def fetch() -> None:
        async with client(talks, "sh") as c:
            transport = c.core.transport()
            with pytest.raises(ServerError) as hidden:
                await transport.request("GET", f"/v1/drafts/{index}/annex/0", raw=True)
            with pytest.raises(ServerError) as missing:
                await transport.request("GET", "/v1/drafts/999999/annex/0", raw=True)
            seen = [(e.value.status, e.value.code, e.value.detail) for e in (hidden, missing)]
            assert seen[0] == seen[1] == (404, "not_found", "no such draft")

    asyncio.run(fetch())


class _CutOnce:
    """Make the ``at``-th chunk upload fail once as a dropped connection would, after
    running ``before`` (to change the file between the two attempts)."""

    def __init__(self, at: int, before: Any = None) -> None:
        self.at, self.before, self.puts, self.cut = at, before, 0, False
        self.real = Transport.request
        self.acked_before_resume: set[str] = set()
        self.sent_in_resume: list[str] = []
        self.resuming = False

    def method(self) -> Any:
        async def request(transport: Transport, method: str, path: str, **kw: Any) -> Any:
            return await self(transport, method, path, **kw)

        return request

    async def __call__(self, transport: Transport, method: str, path: str, **kw: Any) -> Any:
        if method == "PUT":
            if self.puts == self.at and not self.cut:
                self.cut = True
                if self.before is not None:
                    self.before()
                raise NetworkError("connection reset by peer")
            self.puts += 1
            if self.resuming:
                self.sent_in_resume.append(path)
            answer = await self.real(transport, method, path, **kw)
            if not self.resuming:
                self.acked_before_resume.add(path)
            return answer
        if method == "GET" and path.startswith("/v1/annexes/"):
            self.resuming = True  # the resume asks what the server holds
        return await self.real(transport, method, path, **kw)


def test_an_interrupted_upload_resumes_without_resending_acknowledged_chunks(
    talks: Talks, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = annex_file(tmp_path, 8 * CHUNK + 1, b"u")
    cut = _CutOnce(at=6)  # past the first window: some chunks are acknowledged by then
    monkeypatch.setattr(Transport, "request", cut.method())

    async def go() -> tuple[int, int]:
        async with client(talks, "nh") as c:
            await c.sync()
            sent, _ = await c.send_annex("plenary", path, title="resumed")
            return sent.index, c.annexes.resumed

    index, resumed = asyncio.run(go())
    monkeypatch.undo()
    assert cut.cut
    # Chunks in flight at the cut may or may not have reached the server; every chunk
    # it acknowledged before the cut is skipped on resume, never sent again.
    assert cut.resuming
    assert cut.acked_before_resume
    assert not cut.acked_before_resume & set(cut.sent_in_resume)
    assert resumed >= len(cut.acked_before_resume)
    assert len(cut.sent_in_resume) + resumed == 9

    async def save() -> None:
        async with client(talks, "sh") as c:
            await c.sync()
            await c.save_annex(index, tmp_path / "resumed.bin")

    asyncio.run(save())
    assert digest(tmp_path / "resumed.bin") == digest(path)


def test_a_resumed_upload_of_a_changed_file_is_refused(
    talks: Talks, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = annex_file(tmp_path, 8 * CHUNK, b"c")

    def change() -> None:  # every chunk: whichever the server holds no longer matches
        size = path.stat().st_size
        with path.open("r+b") as fh:
            fh.write(hashlib.sha256(b"changed").digest() * (size // 32))
            fh.flush()
            os.fsync(fh.fileno())

    monkeypatch.setattr(Transport, "request", _CutOnce(at=6, before=change).method())

    async def go() -> None:
        async with client(talks, "nh") as c:
            await c.sync()
            with pytest.raises(UsageError) as info:
                await c.send_annex("plenary", path, title="changed")
            assert info.value.code == "annex_changed"

    asyncio.run(go())
