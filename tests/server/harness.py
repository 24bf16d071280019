"""A small harness that runs real talks against the real app on a real SQLite file.

It plays every participant with :mod:`protocol` functions only (as a client would):
the mediator founds the talks, creates two delegations with heads and members, staff,
and channels; members seal drafts, recipients sign receipts.  It mirrors the log in a
local :class:`~protocol.ledger.Ledger` by fetching ``/v1/log/entries`` and applying
them, so every test also checks that the server's log replays.

Typical use (see ``tests/server/conftest.py``)::

    async with Harness.start(tmp_path, rng) as h:
        await h.standard_talks()
        sealed = h.seal(h.people["n-adv"], "plenary", "proposal")
        promise = await h.send(h.people["n-adv"], sealed)

The client engineer can reuse the same steps against a server on loopback: only
:meth:`Harness.request` knows about the aiohttp test client.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import ClientResponse, ClientSession
from aiohttp.test_utils import TestClient, TestServer

from protocol import crypto
from protocol.acts import Act, make_act
from protocol.checkpoint import Checkpoint, SignedNote, open_checkpoint
from protocol.encoding import JSONValue, b64d, b64e, canonical, parse
from protocol.envelope import Payload, SealedDraft, encode_upload, seal
from protocol.genesis import ExternalWitness, Genesis, WitnessPolicy, found
from protocol.keys import DeviceId, DeviceKeys
from protocol.ledger import Ledger
from protocol.merkle import LeafHash
from protocol.receipt import Promise, Receipt, make_receipt
from protocol.records import DraftId, MessageId, sign_record
from protocol.roster import ChangeArgs, RosterChange, make_change
from server.app import create_app
from server.clock import Clock, now_ms
from server.datadir import InitResult, init_data_dir
from server.settings import Settings

ORIGIN = "docket.test/talks"
TABLES = (
    "entries",
    "nodes",
    "drafts",
    "ciphertexts",
    "receipts",
    "inbox",
    "checkpoints",
    "cosignatures",
    "tokens",
    "invitations",
    "meta",
)


class HarnessError(AssertionError):
    """A request the harness expected to succeed did not."""


@dataclass(slots=True)
class Person:
    """One participant with one device."""

    member: str
    name: str
    role: str
    delegation: str | None
    keys: DeviceKeys
    counter: int = 0

    @property
    def device(self) -> DeviceId:
        return self.keys.device_id


@dataclass(slots=True)
class Harness:
    session: ClientSession
    base: str
    """The server's URL without a trailing slash; paths are appended to it."""
    settings: Settings
    init: InitResult
    rng: crypto.Rng
    people: dict[str, Person] = field(default_factory=dict)
    ledger: Ledger | None = None
    genesis: Genesis | None = None
    tokens: dict[bytes, str] = field(default_factory=dict)

    # -- lifecycle ------------------------------------------------------------------

    @staticmethod
    def make_settings(data: Path, **overrides: Any) -> Settings:
        """Settings for tests: generous rate limits, quick checkpoints."""
        values: dict[str, Any] = {
            "data": data,
            "checkpoint_interval": 0.05,
            "rate": 10_000.0,
            "rate_burst": 10_000,
            "ip_rate": 10_000.0,
            "ip_burst": 10_000,
            "shutdown_timeout": 2.0,
        }
        values.update(overrides)
        return Settings(**values)

    @classmethod
    @contextlib.asynccontextmanager
    async def start(
        cls,
        tmp_path: Path,
        rng: crypto.Rng,
        *,
        init: InitResult | None = None,
        clock: Clock = now_ms,
        **overrides: Any,
    ) -> AsyncIterator[Harness]:
        """Initialise a data directory (unless given) and run the app on it (with
        ``clock`` as the server's wall clock)."""
        data = tmp_path / "data"
        if init is None:
            init = init_data_dir(data, ORIGIN)
        settings = cls.make_settings(data, **overrides)
        client: TestClient[Any, Any] = TestClient(TestServer(create_app(settings, clock=clock)))
        try:
            await client.start_server()
            base = str(client.make_url("/")).rstrip("/")
            yield cls(session=client.session, base=base, settings=settings, init=init, rng=rng)
        finally:
            await client.close()

    @classmethod
    @contextlib.asynccontextmanager
    async def attach(
        cls, url: str, data: Path, init: InitResult, rng: crypto.Rng
    ) -> AsyncIterator[Harness]:
        """Drive a server already running at ``url`` (e.g. ``docket-server serve``)."""
        async with ClientSession() as session:
            yield cls(
                session=session,
                base=url.rstrip("/"),
                settings=cls.make_settings(data),
                init=init,
                rng=rng,
            )

    # -- HTTP -----------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        person: Person | None = None,
        body: JSONValue = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> ClientResponse:
        """Send a request (canonical JSON ``body`` or raw ``data``), as ``person``."""
        hdrs = dict(headers or {})
        if person is not None:
            hdrs["Authorization"] = f"Bearer {await self.token(person)}"
        if body is not None:
            data = canonical(body)
            hdrs.setdefault("Content-Type", "application/json")
        return await self.session.request(method, self.base + path, data=data, headers=hdrs)

    async def ok(self, method: str, path: str, **kwargs: Any) -> JSONValue:
        """A request that must answer 200 with JSON; returns the parsed body."""
        resp = await self.request(method, path, **kwargs)
        raw = await resp.read()
        if resp.status != 200:
            raise HarnessError(f"{method} {path}: {resp.status} {raw[:300]!r}")
        return parse(raw, max_size=len(raw) + 1)

    async def token(self, person: Person) -> str:
        """Log ``person`` in with challenge-response (cached)."""
        cached = self.tokens.get(person.device)
        if cached is not None:
            return cached
        token = await self.login(person.keys)
        self.tokens[person.device] = token
        return token

    async def login(self, keys: DeviceKeys) -> str:
        """The whole challenge-response dance for a device; returns the bearer token."""
        ledger = self.require_ledger()
        got = await self.ok("POST", "/v1/auth/challenge", body={"device": b64e(keys.device_id)})
        signed = sign_record(
            keys.signing,
            crypto.CTX_AUTH,
            {
                "challenge": got["challenge"],
                "device": b64e(keys.device_id),
                "origin": ORIGIN,
                "talks": b64e(ledger.talks),
            },
        )
        answer = await self.ok(
            "POST",
            "/v1/auth/token",
            body={"challenge": got["challenge"], "device": signed["device"], "sig": signed["sig"]},
        )
        return str(answer["token"])

    # -- the log mirror -------------------------------------------------------------------

    def require_ledger(self) -> Ledger:
        if self.ledger is None:
            raise HarnessError("the talks are not founded")
        return self.ledger

    async def sync(self, person: Person | None = None) -> None:
        """Apply the server's new entries to the local ledger (verifying everything)."""
        ledger = self.require_ledger()
        reader = person or self.people["med"]
        for _ in range(10_000):
            health = await self.ok("GET", "/healthz")
            if ledger.size >= int(health["size"]):
                return
            got = await self.ok(
                "GET",
                f"/v1/log/entries?start={ledger.size}&end={health['size']}",
                person=reader,
            )
            for item in got["entries"]:
                if item["index"] != ledger.size:
                    raise HarnessError("entries out of order")
                ledger.apply(canonical(item["entry"]))
        raise HarnessError("sync did not converge")  # pragma: no cover

    async def checkpoint(
        self, min_size: int | None = None, *, person: Person | None = None
    ) -> tuple[Checkpoint, SignedNote, bytes]:
        """The latest checkpoint, verified with the pinned log key, once it covers
        ``min_size`` entries (default: the whole local ledger)."""
        want = self.require_ledger().size if min_size is None else min_size
        reader = person or self.people["med"]
        for _ in range(500):
            resp = await self.request("GET", "/v1/log/checkpoint", person=reader)
            note = await resp.read()
            if resp.status != 200:
                raise HarnessError(f"checkpoint: {resp.status} {note[:300]!r}")
            cp, signed = open_checkpoint(
                note, origin=ORIGIN, log_name=ORIGIN, log_key=self.init.log_key
            )
            if cp.size >= want:
                return cp, signed, note
            await asyncio.sleep(0.01)
        raise HarnessError(f"no checkpoint of {want} entries appeared")

    # -- founding and roster ----------------------------------------------------------

    def new_person(
        self, member: str, role: str, delegation: str | None, name: str | None = None
    ) -> Person:
        return Person(
            member=member,
            name=name or member.title(),
            role=role,
            delegation=delegation,
            keys=DeviceKeys.generate(self.rng),
        )

    def make_genesis(
        self, mediator: Person, *, quorum: int = 1, external: tuple[ExternalWitness, ...] = ()
    ) -> Genesis:
        return found(
            mediator_keys=mediator.keys,
            mediator=mediator.member,
            mediator_name=mediator.name,
            origin=ORIGIN,
            title="Test talks",
            log_key=self.init.log_key,
            witness=WitnessPolicy(quorum=quorum, external=external),
            time=now_ms(),
        )

    async def found(
        self, *, quorum: int = 1, external: tuple[ExternalWitness, ...] = ()
    ) -> Promise:
        """Found the talks as mediator ``med`` (``external``: outside witnesses)."""
        mediator = self.new_person("med", "mediator", None, "The Mediator")
        genesis = self.make_genesis(mediator, quorum=quorum, external=external)
        got = await self.ok(
            "POST",
            "/v1/talks",
            body={"genesis": genesis.to_json(), "token": b64e(self.init.founding_token)},
        )
        self.people["med"] = mediator
        self.genesis = genesis
        self.ledger = Ledger(genesis)
        return Promise.from_json(got["promise"])

    def make_change(self, author: Person, op: str, args: ChangeArgs) -> RosterChange:
        return make_change(
            author=author.keys, roster=self.require_ledger().roster, op=op, args=args, time=now_ms()
        )

    async def change(self, author: Person, op: str, args: ChangeArgs) -> Promise:
        """Sign, post and mirror a roster or channel change."""
        change = self.make_change(author, op, args)
        got = await self.ok("POST", "/v1/roster", person=author, body=change.to_json())
        await self.sync()
        return Promise.from_json(got["promise"])

    def make_act(self, author: Person, kind: str, body: dict[str, JSONValue]) -> Act:
        return make_act(
            kind=kind,
            body=body,
            device=author.keys,
            talks=self.require_ledger().talks,
            roster=self.require_ledger().roster.head,
            time=now_ms(),
        )

    async def act(self, author: Person, kind: str, body: dict[str, JSONValue]) -> Promise:
        """Sign, post and mirror an act."""
        act = self.make_act(author, kind, body)
        got = await self.ok("POST", "/v1/acts", person=author, body=act.to_json())
        await self.sync()
        return Promise.from_json(got["promise"])

    async def add_delegation(self, delegation: str, head: str) -> Person:
        person = self.new_person(head, "head", delegation)
        await self.change(
            self.people["med"],
            "delegation.create",
            ChangeArgs(
                delegation=delegation,
                name=delegation.title(),
                member=head,
                member_name=person.name,
                devices=(person.keys.public,),
            ),
        )
        self.people[head] = person
        return person

    async def add_member(self, head: Person, member: str) -> Person:
        person = self.new_person(member, "member", head.delegation)
        await self.change(
            head,
            "member.enrol",
            ChangeArgs(
                delegation=head.delegation,
                member=member,
                member_name=person.name,
                devices=(person.keys.public,),
            ),
        )
        self.people[member] = person
        return person

    async def add_staff(self, member: str, role: str) -> Person:
        person = self.new_person(member, role, None)
        await self.change(
            self.people["med"],
            "staff.enrol",
            ChangeArgs(
                member=member, member_name=person.name, role=role, devices=(person.keys.public,)
            ),
        )
        self.people[member] = person
        return person

    async def add_channel(
        self, channel: str, kind: str, delegations: Sequence[str], members: Sequence[str]
    ) -> None:
        await self.change(
            self.people["med"],
            "channel.create",
            ChangeArgs(
                channel=channel,
                name=channel.title(),
                kind=kind,
                delegations=tuple(sorted(delegations)),
                members=tuple(sorted(members)),
            ),
        )

    async def standard_talks(self) -> None:
        """Mediator ``med``; delegations north (``n-head``, ``n-adv``) and south
        (``s-head``, ``s-adv``); auditor ``aud`` and observer ``obs``; channels
        ``plenary`` (both delegations and the mediator), ``north-med`` and ``south-med``
        (one delegation and the mediator)."""
        await self.found()
        north = await self.add_delegation("north", "n-head")
        south = await self.add_delegation("south", "s-head")
        await self.add_member(north, "n-adv")
        await self.add_member(south, "s-adv")
        await self.add_staff("aud", "auditor")
        await self.add_staff("obs", "observer")
        await self.add_channel("plenary", "plenary", ["north", "south"], ["med"])
        await self.add_channel("north-med", "bilateral", ["north"], ["med"])
        await self.add_channel("south-med", "bilateral", ["south"], ["med"])

    # -- drafts and receipts ------------------------------------------------------------

    def seal(
        self,
        sender: Person,
        channel: str,
        text: str,
        *,
        draft: bytes | None = None,
        version: int = 1,
        parents: Sequence[LeafHash] = (),
        counter: int | None = None,
        time: int | None = None,
    ) -> SealedDraft:
        """Seal a draft for every current device of ``channel`` (counter auto-increments)."""
        ledger = self.require_ledger()
        if counter is None:
            sender.counter += 1
            counter = sender.counter
        return seal(
            sender=sender.keys,
            talks=ledger.talks,
            channel=channel,
            counter=counter,
            msg=MessageId(os.urandom(16)),
            draft=DraftId(draft or os.urandom(16)),
            version=version,
            parents=parents,
            roster=ledger.roster.head,
            recipients=ledger.roster.channel_devices(channel),
            payload=Payload(title=f"draft {counter}", body=text),
            time=now_ms() if time is None else time,
            rng=self.rng,
        )

    async def post_draft(self, sender: Person, sealed: SealedDraft) -> ClientResponse:
        return await self.request(
            "POST",
            "/v1/drafts",
            person=sender,
            data=encode_upload(sealed),
            headers={"Content-Type": "application/octet-stream"},
        )

    async def send(self, sender: Person, sealed: SealedDraft) -> Promise:
        """Upload a draft that must be accepted; mirror the log; return the promise."""
        resp = await self.post_draft(sender, sealed)
        raw = await resp.read()
        if resp.status != 200:
            raise HarnessError(f"draft upload: {resp.status} {raw[:300]!r}")
        await self.sync()
        return Promise.from_json(parse(raw)["promise"])

    def receipt(
        self, person: Person, sealed: SealedDraft, index: int, kind: str = "received"
    ) -> Receipt:
        return make_receipt(
            device=person.keys,
            header=sealed.header,
            index=index,
            kind=kind,
            time=now_ms(),
            reason="decryption_failed" if kind == "rejected" else None,
        )

    async def post_receipts(self, person: Person, receipts: Sequence[Receipt]) -> ClientResponse:
        return await self.request(
            "POST",
            "/v1/receipts",
            person=person,
            body={"receipts": [r.to_json() for r in receipts]},
        )

    # -- inspection ---------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Row counts of the tables a request can change (to prove a rejected one did not).

        Checkpoints are left out (the checkpointer signs them on its own schedule), and
        so are tokens (the harness logs in lazily, inside the request being tested).
        """
        counts = table_counts(self.settings.db_path)
        del counts["checkpoints"], counts["tokens"]
        return counts


def table_counts(db_path: Path) -> dict[str, int]:
    """Row counts of the server's tables, read through a separate connection."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return {
            t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0])  # noqa: S608
            for t in TABLES
        }
    finally:
        conn.close()


def decode_key(value: JSONValue) -> bytes:
    """A base64url value from a JSON answer."""
    return b64d(value)
