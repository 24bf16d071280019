"""Adversarial fixtures: a real server per test, started from one prepared set of talks.

Building talks takes a few dozen signed writes, so it is done once per session
(:func:`template`) and each test starts a real server (``server.app.running``, on
loopback) on a fresh copy of that data directory (:class:`World`).  The template log::

    0  genesis (mediator med, quorum 1)        7  channel plenary (north, south, med)
    1  delegation north, head n-head           8  channel north-med (north, med)
    2  delegation south, head s-head           9  channel south-med (south, med)
    3  member n-adv (north)                    10 draft D1, n-adv -> plenary
    4  member s-adv (south)                    11 receipt: s-adv received D1
    5  staff aud (auditor)                     12 draft D2, n-adv -> plenary
    6  staff obs (observer)                    13 draft N1, n-head -> north-med

Clients are the real :class:`~client.api.DocketClient` with the participants' keys and a
pinned genesis, pointed at the server or at a malicious :class:`~tests.adversarial.proxy.Proxy`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import json
import os
import shutil
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from client.api import DocketClient
from client.auditor import AuditReport, AuditState, audit_log
from client.cli import run
from client.errors import Alarm
from client.keystore import create_keystore
from protocol import crypto
from protocol.encoding import b64e, canonical, parse
from protocol.envelope import SealedDraft
from protocol.genesis import Genesis
from protocol.ledger import Ledger
from protocol.records import sign_record
from server.app import running
from server.datadir import InitResult, load_identity
from tests.adversarial.proxy import LogView, Proxy
from tests.helpers import make_rng
from tests.server.harness import Harness, Person

PASSPHRASE = "adversarial passphrase"
D1, R1, D2, N1 = 10, 11, 12, 13


@dataclass(frozen=True, slots=True)
class Template:
    """The prepared talks: a stopped server's data directory and who is who."""

    data: Path
    init: InitResult
    genesis: Genesis
    people: dict[str, Person]
    sealed: dict[str, SealedDraft]


async def _build(tmp: Path) -> Template:
    rng = make_rng("docket/adversarial/template")
    sealed: dict[str, SealedDraft] = {}
    async with Harness.start(tmp, rng) as h:
        await h.standard_talks()
        na, sa, nh = h.people["n-adv"], h.people["s-adv"], h.people["n-head"]
        sealed["D1"] = h.seal(na, "plenary", "proposal one")
        p1 = await h.send(na, sealed["D1"])
        resp = await h.post_receipts(sa, [h.receipt(sa, sealed["D1"], p1.index)])
        assert resp.status == 200, await resp.text()
        sealed["D2"] = h.seal(na, "plenary", "proposal two")
        await h.send(na, sealed["D2"])
        sealed["N1"] = h.seal(nh, "north-med", "north only")
        p3 = await h.send(nh, sealed["N1"])
        assert (p1.index, p3.index) == (D1, N1)
        await h.checkpoint(N1 + 1)
        assert h.genesis is not None
        return Template(
            data=h.settings.data,
            init=h.init,
            genesis=h.genesis,
            people=dict(h.people),
            sealed=sealed,
        )


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """Build the talks once (in a loop of its own; only files and keys survive it)."""
    return asyncio.run(_build(tmp_path_factory.mktemp("adversarial-template")))


@pytest.fixture(autouse=True)
def client_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKET_KDF", "fast")
    monkeypatch.setenv("DOCKET_PASSPHRASE", PASSPHRASE)
    monkeypatch.delenv("DOCKET_HOME", raising=False)


@dataclass(slots=True)
class CliResult:
    code: int
    data: Any
    err: str


@dataclass
class World:
    """One test's real server, the harness driving it, and the clients and proxies."""

    tmp: Path
    template: Template
    data: Path
    h: Harness
    stack: contextlib.AsyncExitStack
    servers: dict[Path, contextlib.AsyncExitStack] = field(default_factory=dict)
    clients: list[DocketClient] = field(default_factory=list)
    proxies: list[Proxy] = field(default_factory=list)
    homes: int = 0
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.h.base

    @property
    def genesis(self) -> Genesis:
        return self.template.genesis

    def person(self, member: str) -> Person:
        return self.h.people[member]

    # -- servers -------------------------------------------------------------------------

    async def start_server(self, data: Path) -> str:
        """Serve ``data`` on a free loopback port; return its URL."""
        stack = contextlib.AsyncExitStack()
        url = await stack.enter_async_context(
            running(Harness.make_settings(data, port=0, shutdown_timeout=0.5))
        )
        self.servers[data] = stack
        return str(url)

    async def stop_server(self, data: Path) -> None:
        await self.servers.pop(data).aclose()

    async def restart(self) -> str:
        """Stop and restart the main server (after its store was edited); new URL."""
        await self.stop_server(self.data)
        self.h.base = await self.start_server(self.data)
        self.tokens.clear()
        return self.h.base

    # -- clients and proxies ------------------------------------------------------------

    def client(
        self, member: str, *, url: str | None = None, keystore: bool = False, **kwargs: Any
    ) -> DocketClient:
        """A real client for ``member`` with a pinned genesis (a fresh home)."""
        person = self.person(member)
        self.homes += 1
        home = self.tmp / "homes" / f"{member}-{self.homes}"
        if keystore:
            create_keystore(home, PASSPHRASE, os.urandom, keys=person.keys)
        server = url or self.url
        DocketClient.init_home_state(home, person.device, server)
        client = DocketClient(home, server=server, keys=person.keys, timeout=10.0, **kwargs)
        client.state.pin_genesis(self.genesis)
        client.state.set("member", member)
        self.clients.append(client)
        return client

    async def proxy(self, upstream: str | None = None) -> Proxy:
        """A malicious proxy in front of ``upstream`` (default: the main server)."""
        proxy = Proxy(upstream or self.url)
        await proxy.start()
        self.proxies.append(proxy)
        return proxy

    def log_key(self) -> crypto.SigningKey:
        """The server's checkpoint key (a compromised server signs with it)."""
        return load_identity(self.data)[0]

    def view(self, entries: Sequence[bytes]) -> LogView:
        """A consistent rewritten log signed with the server's own key."""
        return LogView(
            entries, key=self.log_key(), origin=self.genesis.origin, log_name=self.genesis.log_name
        )

    # -- the real log ---------------------------------------------------------------------

    async def get(self, path: str, *, url: str | None = None) -> bytes:
        """A GET as the mediator on the real server (or the one at ``url``)."""
        base = url or self.url
        token = self.tokens.get(base)
        if token is None:
            token = self.tokens[base] = await login(base, self.person("med"), self.genesis)
        async with (
            aiohttp.ClientSession() as session,
            session.get(base + path, headers={"Authorization": f"Bearer {token}"}) as resp,
        ):
            body = await resp.read()
            assert resp.status == 200, body[:300]
            return body

    async def entries(self, url: str | None = None) -> list[bytes]:
        """Every entry of the server's log up to its latest checkpoint, raw."""
        size = int((await self.get("/v1/log/checkpoint", url=url)).split(b"\n")[1])
        out: list[bytes] = []
        while len(out) < size:
            body = parse(
                await self.get(f"/v1/log/entries?start={len(out)}&end={size}", url=url),
                max_size=1 << 26,
            )
            out.extend(canonical(item["entry"]) for item in body["entries"])
        return out

    async def note(self, size: int | None = None, *, url: str | None = None) -> bytes:
        """The server's checkpoint note (latest, or at ``size``)."""
        return await self.get(
            "/v1/log/checkpoint" + ("" if size is None else f"?size={size}"), url=url
        )

    async def send(self, member: str, channel: str, text: str) -> int:
        """A draft sent by the harness (protocol level); returns its log index."""
        h = self.h
        person = self.person(member)
        ledger = h.require_ledger()
        person.counter = ledger.counters.get(person.device, 0)
        promise = await h.send(person, h.seal(person, channel, text))
        return promise.index

    # -- audit and CLI --------------------------------------------------------------------

    @staticmethod
    def audit(
        entries: Sequence[bytes], notes: Sequence[bytes], previous: AuditState | None = None
    ) -> AuditReport:
        """The real auditor over what a (malicious) server served."""
        return audit_log(
            entries,
            pinned_talks=World.talks(entries),
            checkpoints=notes,
            previous=previous,
            workers=1,
        )

    @staticmethod
    def talks(entries: Sequence[bytes]) -> bytes:
        return Genesis.from_bytes(entries[0]).talks_id

    async def cli(self, client: DocketClient, *args: str) -> CliResult:
        """Run ``docket --json ARGS`` on ``client``'s home in a worker thread (it runs
        its own event loop; the servers keep running in this one)."""

        def go() -> CliResult:
            out, err = io.StringIO(), io.StringIO()
            with redirect_stdout(out), redirect_stderr(err):
                code = run(["--home", str(client.home), "--json", *args])
            lines = out.getvalue().strip().splitlines()
            return CliResult(code, json.loads(lines[-1]) if lines else None, err.getvalue())

        await client.close()  # the CLI opens the home itself
        return await asyncio.to_thread(go)


async def login(base: str, person: Person, genesis: Genesis) -> str:
    """Challenge-response login of ``person`` at the server ``base``; the bearer token."""
    device = b64e(person.device)
    async with aiohttp.ClientSession() as session:
        async with session.post(
            base + "/v1/auth/challenge", data=canonical({"device": device})
        ) as resp:
            challenge = parse(await resp.read())["challenge"]
        signed = sign_record(
            person.keys.signing,
            crypto.CTX_AUTH,
            {
                "challenge": challenge,
                "device": device,
                "origin": genesis.origin,
                "talks": b64e(genesis.talks_id),
            },
        )
        body = {"challenge": challenge, "device": device, "sig": signed["sig"]}
        async with session.post(base + "/v1/auth/token", data=canonical(body)) as resp:
            return str(parse(await resp.read())["token"])


def alarm_names(client: DocketClient) -> list[str]:
    """Names of the alarms ``client`` recorded."""
    return [a.name for a in client.state.alarms()]


def alarm_at(report: AuditReport, index: int) -> list[str]:
    """Codes of the audit alarms naming the entry at ``index``."""
    return [a.code for a in report.alarms if a.index == index]


@contextlib.contextmanager
def expect_alarm(name: str, index: int | None = None) -> Iterator[list[Alarm]]:
    """Expect the block to raise the client alarm ``name`` (at ``index`` if given)."""
    caught: list[Alarm] = []
    with pytest.raises(Alarm) as info:
        yield caught
    caught.append(info.value)
    assert info.value.name == name, str(info.value)
    if index is not None:
        assert info.value.index == index, str(info.value)


@pytest.fixture
async def world(template: Template, tmp_path: Path, rng: crypto.Rng) -> AsyncIterator[World]:
    """A real server on a copy of the template talks, and a harness attached to it."""
    data = tmp_path / "data"
    shutil.copytree(template.data, data)
    (data / "server.lock").unlink(missing_ok=True)
    async with contextlib.AsyncExitStack() as stack:
        session = await stack.enter_async_context(aiohttp.ClientSession())
        people = {k: dataclasses.replace(p) for k, p in template.people.items()}
        h = Harness(
            session=session,
            base="",
            settings=Harness.make_settings(data),
            init=template.init,
            rng=rng,
            people=people,
            genesis=template.genesis,
            ledger=Ledger(template.genesis),
        )
        w = World(tmp=tmp_path, template=template, data=data, h=h, stack=stack)
        try:
            h.base = await w.start_server(data)
            await h.sync()
            for person in people.values():
                person.counter = h.require_ledger().counters.get(person.device, 0)
            yield w
        finally:
            for client in w.clients:
                await client.close()
            for proxy in w.proxies:
                await proxy.close()
            for server in list(w.servers.values()):
                await server.aclose()
