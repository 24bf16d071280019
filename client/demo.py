"""``docket demo``: one round of mediated ceasefire talks, end to end, on loopback.

The demo is a script over the public library, nothing more: it starts the real server as
a subprocess (``python -m server.cli``; the client never imports the server), gives every
participant their own client home under ``WORKDIR/homes/<member>``, and plays a round the
way the product is meant to be used:

1. each party (the envoy's office and the three delegations) runs its own witness
   daemon (``python -m client.witnessd serve``, one process each, homes under
   ``WORKDIR/witnesses/<id>``), initialised with the log key ``docket-server init``
   printed; the server is started with their URLs (``DOCKET_WITNESS_URLS``) and pushes
   every checkpoint to them;
2. the Office of the Special Envoy founds the talks with the ``parties`` policy (the
   mediator's witness and a majority of the delegations' witnesses, fresh quorum
   required before anyone acts), registers its daemon (``witness.set``, party
   ``mediator``) and an observer mission is enrolled as auditor;
3. three delegations are created; each head, once its delegation exists, registers its
   delegation's daemon, then enrols two members through invitations (every enrolment
   checks the device fingerprint the invitee read back);
4. the envoy opens a plenary, three working groups and a bilateral channel;
5. drafts flow: the agenda, front-line deconfliction proposals answered by redlines
   (lineage v1 -> v2 -> v3), a prisoner-exchange list as a CSV file, a bilateral note,
   every checkpoint cosigned by the daemons as the server pushes it;
6. every recipient's inbox verifies and signs ``received`` receipts; the envoy
   acknowledges; every head and the envoy witness the final checkpoint too, and the
   demo waits for the daemons' cosignatures on it;
7. the auditor audits the whole log, a recipient discloses a draft as an evidence bundle
   and an arbitrator verifies it offline.

It prints who sent what to whom, the receipts, the verified checkpoint and its cosigners,
the audit result and the commands to carry on by hand.  Every child process (the server
and the four witness daemons, :mod:`client.demo_procs`) is stopped at the end or on
failure.  It exits 0 only if the audit passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from client import keystore
from client.api import DocketClient, Sent, SyncResult
from client.demo_procs import Service, WitnessHome, init_witness, run_json, witness_serve_argv
from client.demo_round import play_round
from client.errors import ClientError, NetworkError
from protocol.encoding import JSONValue, b64d, b64e
from protocol.envelope import Payload
from protocol.errors import ProtocolError
from protocol.genesis import WitnessPolicy
from protocol.roster import PARTY_MEDIATOR

ORIGIN = "demo.docket.example/ceasefire-talks"
TITLE = "Ceasefire talks, round 3: front-line deconfliction and detainees"
DEMO_MARKER = ".docket-demo"
DEMO_MARKER_TEXT = "made by 'docket demo'; 'docket demo --clean' removes this folder\n"
PASSPHRASE = "demo only - not a real passphrase"  # noqa: S105 - printed on purpose
# Checkpoints every 50 ms instead of every second: the demo waits for each write to be
# checkpointed, and a real deployment's cadence would make it needlessly slow.
CHECKPOINT_INTERVAL = "0.05"
# The server re-submits the latest checkpoint to the witnesses this often on a quiet log
# (30 s by default), so their cosignatures never lag the demo by long.
WITNESS_REFRESH = "2"
COSIGN_WAIT = 10.0  # seconds to wait for the daemons' cosignatures on the final checkpoint


@dataclass(frozen=True, slots=True)
class Person:
    """A demo participant."""

    id: str
    name: str
    role: str
    delegation: str | None = None


ENVOY = Person("envoy", "Office of the Special Envoy", "mediator")
MONITOR = Person("monitor", "Joint Observer Mission", "auditor")
DELEGATIONS: dict[str, tuple[str, list[Person]]] = {
    "north": (
        "Government of the Northern Republic",
        [
            Person("north-head", "Amb. Amara Osei (head of delegation)", "head", "north"),
            Person("north-military", "Col. Tomas Varga (military adviser)", "member", "north"),
            Person("north-legal", "Lena Brandt (legal adviser)", "member", "north"),
        ],
    ),
    "south": (
        "Southern Democratic Front",
        [
            Person("south-head", "Rafael Mendes (head of delegation)", "head", "south"),
            Person("south-military", "Maj. Idris Haddad (military adviser)", "member", "south"),
            Person("south-humanitarian", "Dr. Mei Lin (humanitarian adviser)", "member", "south"),
        ],
    ),
    "east": (
        "Eastern Provinces Council",
        [
            Person("east-head", "Katya Petrenko (head of delegation)", "head", "east"),
            Person("east-legal", "Omar Farouk (legal adviser)", "member", "east"),
            Person("east-humanitarian", "Sofia Reyes (humanitarian adviser)", "member", "east"),
        ],
    ),
}
HEADS = [people[0] for _, people in DELEGATIONS.values()]
# One witness daemon per party: witness id -> party.  Ids end in "-box" so that no
# registered name is another party's implicit ``<origin>/witness/<delegation id>``.
WITNESS_PARTIES = {"envoy-box": PARTY_MEDIATOR, **{f"{d}-box": d for d in DELEGATIONS}}

PRISONER_CSV = (
    b"list_id,held_by,name,rank_or_status,date_detained,icrc_registered\n"
    b"S-001,north,Ahmed Karimi,civilian,2025-03-14,yes\n"
    b"S-002,north,Daniel Okafor,private,2025-04-02,yes\n"
    b"S-003,north,Yusuf Demir,sergeant,2025-05-19,no\n"
    b"N-001,south,Pavel Novak,lieutenant,2025-02-27,yes\n"
    b"N-002,south,Ines Duarte,civilian (medic),2025-06-08,yes\n"
    b"E-001,east,Marko Ilic,private,2025-07-21,pending\n"
)


class Demo:
    """Runs the scenario; ``say`` prints the narrative."""

    def __init__(self, workdir: Path, say: Callable[[str], None]) -> None:
        self.workdir = workdir
        self.say = say
        self.url = ""
        self.port = 0
        self.clients: dict[str, DocketClient] = {}
        self.server: Service | None = None
        self.services: list[Service] = []  # every child process started, to stop them all
        self.witness_homes: dict[str, WitnessHome] = {}
        self.witness_services: dict[str, Service] = {}
        self.summary: dict[str, Any] = {"drafts": [], "workdir": str(workdir)}

    # -- server and witness daemons -------------------------------------------------------

    def _env(self, *, server: bool = False) -> dict[str, str]:
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        if server:
            env["DOCKET_CHECKPOINT_INTERVAL"] = CHECKPOINT_INTERVAL
            env["DOCKET_WITNESS_URLS"] = ",".join(
                f"{home.name}={self.witness_services[wid].url}"
                for wid, home in self.witness_homes.items()
            )
            env["DOCKET_WITNESS_REFRESH"] = WITNESS_REFRESH
        return env

    async def start_server(self) -> tuple[str, bytes, str]:
        """``docket-server init``, a witness daemon per party, then ``serve`` on
        127.0.0.1, port 0, pushing checkpoints to the daemons.

        Returns (founding token, log key, origin) as ``init`` printed them.
        """
        data = self.workdir / "server"
        printed = await run_json(
            ["-m", "server.cli", "init", "--data", str(data), "--origin", ORIGIN, "--json"],
            env=self._env(),
            what="docket-server init",
        )
        token, log_key, origin = parse_init_output(printed)
        await self.start_witnesses(origin, b64e(log_key))
        self.server = Service("server", self.workdir / "server.log")
        self.services.append(self.server)
        serve = ["-m", "server.cli", "serve", "--data", str(data), "--host", "127.0.0.1"]
        self.url = await self.server.start([*serve, "--port", "0"], env=self._env(server=True))
        self.port = self.server.port
        return token, log_key, origin

    async def start_witnesses(self, origin: str, log_key: str) -> None:
        """Init and start one ``client.witnessd`` process per party, all at once."""
        root = self.workdir / "witnesses"

        async def one(witness_id: str) -> None:
            """One party's daemon: its home, key and URL."""
            home = await init_witness(
                root / witness_id, witness_id, origin=origin, log_key=log_key, env=self._env()
            )
            self.witness_homes[witness_id] = home
            service = Service(f"witness {witness_id}", root / f"{witness_id}.log")
            self.services.append(service)
            self.witness_services[witness_id] = service
            await service.start(witness_serve_argv(home.home), env=self._env())

        await asyncio.gather(*(one(wid) for wid in WITNESS_PARTIES))
        # Keep a stable order (the parties' order) whatever finished first.
        self.witness_homes = {wid: self.witness_homes[wid] for wid in WITNESS_PARTIES}

    async def register_witness(self, member: str, witness_id: str) -> None:
        """``witness.set`` by ``member`` for its party's daemon."""
        home, party = self.witness_homes[witness_id], WITNESS_PARTIES[witness_id]
        await self.c(member).set_witness(home.name, key=home.key, party=party)
        self.say(f"  {member} registered witness {home.name} (party {party})")

    async def stop_services(self) -> None:
        """Stop the server, then every witness daemon (SIGTERM, bounded wait, SIGKILL)."""
        if self.server is not None:
            await self.server.stop()
        await asyncio.gather(
            *(s.stop() for s in self.services if s is not self.server), return_exceptions=True
        )

    # -- participants --------------------------------------------------------------------

    def home(self, member: str) -> Path:
        """The client home of ``member``."""
        return self.workdir / "homes" / member

    async def make_clients(self, people: list[Person]) -> None:
        """Key stores for everyone (Argon2id at full cost, two at a time)."""
        sem = asyncio.Semaphore(2)

        async def one(person: Person) -> None:
            """Create one participant's key store and client."""
            async with sem:
                keys = await asyncio.to_thread(
                    keystore.create_keystore, self.home(person.id), PASSPHRASE, os.urandom
                )
            DocketClient.init_home_state(self.home(person.id), keys.device_id, self.url)
            self.clients[person.id] = DocketClient(self.home(person.id), server=self.url, keys=keys)

        await asyncio.gather(*(one(p) for p in people))

    def c(self, member: str) -> DocketClient:
        """The client of ``member``."""
        return self.clients[member]

    async def invite_and_join(self, inviter: str, person: Person) -> None:
        """Invitation -> join -> fingerprint read back -> enrolment."""
        inv = await self.c(inviter).invite(
            person.id, role=person.role, delegation=person.delegation
        )
        joiner = self.c(person.id)
        await joiner.join(inv.code, name=person.name)
        fingerprint = joiner.public().fingerprint
        if person.role == "head":
            name = DELEGATIONS[person.delegation or ""][0]
            await self.c(inviter).create_delegation(
                person.delegation or "", name=name, head=person.id, expect_fingerprint=fingerprint
            )
            self.say(f"  delegation {person.delegation:<6} {name}, head {person.id}")
        else:
            await self.c(inviter).enrol(person.id, expect_fingerprint=fingerprint)
            self.say(f"  enrolled {person.id:<19} by {inviter} ({person.name})")

    async def final_checkpoint(self) -> SyncResult:
        """The envoy's view of the latest checkpoint, once every daemon cosigned it (the
        server pushes each checkpoint to them; bounded by :data:`COSIGN_WAIT`)."""
        names = {home.name for home in self.witness_homes.values()}
        deadline = time.monotonic() + COSIGN_WAIT
        while True:
            status = await self.c(ENVOY.id).sync()
            if names <= set(status.cosigners) or time.monotonic() > deadline:
                return status
            await asyncio.sleep(0.1)

    # -- drafts --------------------------------------------------------------------------

    async def send(
        self,
        sender: str,
        channel: str,
        payload: Payload,
        *,
        parent: Sent | None = None,
        non_paper: bool = False,
    ) -> Sent:
        """Send a draft as ``sender`` (a new version of ``parent`` if given) and narrate it."""
        client = self.c(sender)
        parents = [parent.leaf] if parent is not None else []
        sent = await client.send(channel, payload, parents=parents, non_paper=non_paper)
        members = [m.id for m in client.roster.channel_members(channel) if m.id != sender]
        what = f"file {payload.file_name}" if payload.file_name else "text"
        what += ", a deniable non-paper" if non_paper else ""
        self.say(
            f"  [{sent.index:>3}] {sender} -> {channel}: {payload.title!r} "
            f"(v{sent.version}, {what}) to {', '.join(members)}"
        )
        self.summary["drafts"].append(
            {
                "channel": channel,
                "index": sent.index,
                "recipients": members,
                "sender": sender,
                "title": payload.title,
                "version": sent.version,
            }
        )
        return sent

    # -- the scenario ------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        """Play the whole scenario; return the summary."""
        say = self.say
        started = time.monotonic()
        say(f"Working directory: {self.workdir}")
        token, log_key, origin = await self.start_server()
        say(f"Server: {self.url} (data in {self.workdir / 'server'})")
        say("Witness daemons (one process per party; the server pushes them checkpoints):")
        for wid, home in self.witness_homes.items():
            service = self.witness_services[wid]
            say(f"  {wid:<10} {service.url}  cosigns as {home.name}")
        self.summary["witnesses"] = {
            home.name: {
                "home": str(home.home),
                "party": WITNESS_PARTIES[wid],
                "url": self.witness_services[wid].url,
            }
            for wid, home in self.witness_homes.items()
        }

        everyone = [ENVOY, MONITOR] + [p for _, people in DELEGATIONS.values() for p in people]
        await self.make_clients(everyone)

        say("")
        say("1. Founding")
        policy = WitnessPolicy.parties()
        genesis = await self.c("envoy").found_talks(
            founding_token=token,
            title=TITLE,
            mediator=ENVOY.id,
            mediator_name=ENVOY.name,
            log_key=log_key,
            origin=origin,
            policy=policy,
        )
        self.summary["talks_fingerprint"] = genesis.fingerprint
        self.summary["talks"] = b64e(genesis.talks_id)
        say(f"  {ENVOY.name} founded {TITLE!r}")
        say(f"  talks fingerprint (read aloud to every delegation): {genesis.fingerprint}")
        say(f"  witness policy: {policy.describe()}")
        # With no delegation yet the mediator's witness alone is the quorum: the envoy's
        # own client cosigns when it syncs, so it can act, and from now on so does its
        # daemon.
        await self.register_witness(ENVOY.id, "envoy-box")

        say("")
        say("2. Delegations and members (invitation, join, fingerprint check, enrolment)")
        await self.invite_and_join("envoy", MONITOR)
        for head in HEADS:
            await self.invite_and_join("envoy", head)
            # Each new delegation raises the quorum (a majority of the delegations): its
            # head, whose own client cosigns for it on every sync, registers its daemon
            # before the envoy creates the next one.
            await self.register_witness(head.id, f"{head.delegation}-box")
        for _, people in DELEGATIONS.values():
            for member in people[1:]:
                await self.invite_and_join(people[0].id, member)

        say("")
        say("3. Channels")
        envoy = self.c("envoy")
        channels = [
            ("plenary", "Plenary", "plenary", ["east", "north", "south"], ["envoy"]),
            (
                "wg-military",
                "Working group: military (front-line deconfliction)",
                "working_group",
                [],
                ["envoy", "north-military", "south-military", "east-head", "north-head"],
            ),
            (
                "wg-legal",
                "Working group: legal (text of the agreement)",
                "working_group",
                [],
                ["envoy", "north-legal", "east-legal", "south-head"],
            ),
            (
                "wg-humanitarian",
                "Working group: humanitarian (detainees, corridors)",
                "working_group",
                [],
                ["envoy", "south-humanitarian", "east-humanitarian", "north-head"],
            ),
            ("bilateral-north", "Bilateral: envoy and North", "bilateral", ["north"], ["envoy"]),
        ]
        for cid, name, kind, delegations, members in channels:
            await envoy.create_channel(
                cid, name=name, kind=kind, delegations=delegations, members=members
            )
            who = ", ".join([*delegations, *members])
            say(f"  {cid:<16} {kind:<13} {who}")

        say("")
        say("4. Drafts")
        await self.send(
            "envoy",
            "plenary",
            Payload(
                title="Agenda for round 3",
                body=(
                    "1. Front-line deconfliction: separation zone and incident hotline.\n"
                    "2. Exchange of detainees: lists verified by the ICRC.\n"
                    "3. Humanitarian corridors for the river crossings.\n"
                    "4. Date and venue of round 4."
                ),
            ),
        )
        v1 = await self.send(
            "north-military",
            "wg-military",
            Payload(
                title="Front-line deconfliction: proposal",
                body=(
                    "Art. 1. Forces withdraw 5 km from the line of contact of 1 March.\n"
                    "Art. 2. A military hotline operates 24/7 between sector commanders.\n"
                    "Art. 3. Incidents are reported within 6 hours in the agreed format."
                ),
            ),
        )
        v2 = await self.send(
            "south-military",
            "wg-military",
            Payload(
                title="Front-line deconfliction: redline of North's proposal",
                body=(
                    "Art. 1. Forces withdraw [5 km] 10 km from the line of contact of "
                    "[1 March] 15 February.\n"
                    "Art. 2. unchanged.\n"
                    "Art. 3. Incidents are reported within [6 hours] 2 hours, copied to "
                    "the observer mission."
                ),
            ),
            parent=v1,
        )
        await self.send(
            "north-military",
            "wg-military",
            Payload(
                title="Front-line deconfliction: compromise text",
                body=(
                    "Art. 1. Forces withdraw 7.5 km from the line of contact of 15 February.\n"
                    "Art. 2. unchanged.\n"
                    "Art. 3. Incidents are reported within 2 hours to the hotline and the "
                    "observer mission."
                ),
            ),
            parent=v2,
        )
        await self.send(
            "south-humanitarian",
            "wg-humanitarian",
            Payload(
                title="Prisoner exchange: consolidated list (first phase)",
                file_name="prisoner-exchange-list.csv",
                media_type="text/csv",
                file_data=PRISONER_CSV,
            ),
        )
        await self.send(
            "envoy",
            "bilateral-north",
            Payload(
                title="Non-paper: sequencing of withdrawal and exchange",
                body="Could North accept the exchange beginning before the withdrawal ends?",
            ),
            non_paper=True,
        )
        await self.send(
            "north-head",
            "bilateral-north",
            Payload(
                title="Reply: sequencing",
                body="Yes, if the first phase list is confirmed by the ICRC beforehand.",
            ),
        )

        say("")
        say("5. Inboxes: every recipient verifies and signs 'received' receipts")
        readers = [p.id for p in everyone if p.id != MONITOR.id]
        for reader in readers:
            result = await self.c(reader).inbox()
            if result.receipts_sent or result.rejected:
                rejected = f", {len(result.rejected)} REJECTED" if result.rejected else ""
                say(f"  {reader:<19} {len(result.items)} draft(s) verified{rejected}")
        # The envoy confirms receipt of what the delegations submitted.
        acked = []
        for item in (await envoy.inbox()).items:
            await envoy.ack(item.index)
            acked.append(item.index)
        say(f"  envoy acknowledged drafts {', '.join(str(i) for i in acked)}")

        say("")
        say("6. Witnessing: the daemons, the envoy and every head cosign the latest checkpoint")
        for witness_id in ["envoy", *(h.id for h in HEADS)]:
            await self.c(witness_id).sync()
        status = await self.final_checkpoint()
        self.summary["checkpoint"] = {
            "cosigners": list(status.cosigners),
            "root": b64e(status.root),
            "size": status.size,
            "trusted": status.trusted,
        }
        say(f"  checkpoint size {status.size}, root {b64e(status.root)}")
        for name in status.cosigners:
            say(f"    cosigned by {name}")
        say(f"  witness quorum met: {'yes' if status.trusted else 'NO'}")

        say("")
        say("7. Receipts (verified from the log)")
        for entry in self.summary["drafts"]:
            # Receipts are public metadata in the verified log: any participant's view
            # shows them, whether or not it could read the draft.
            receipts = envoy.receipts(entry["index"])
            received = sorted({r.member for r in receipts.lines if r.received})
            acked_by = sorted({r.member for r in receipts.lines if r.acknowledged})
            entry["received"] = received
            entry["acknowledged"] = acked_by
            ack_text = f"; acknowledged by {', '.join(acked_by)}" if acked_by else ""
            say(f"  [{entry['index']:>3}] received by {', '.join(received)}{ack_text}")

        await self.lost_laptop()

        say("")
        say("8. Audit by the Joint Observer Mission")
        report = await self.c(MONITOR.id).audit()
        # The report's head (verdict, log, checkpoints); the full text is 'docket audit'.
        for line in report.render_text(limit=10).splitlines():
            if not line.strip():
                break
            say(f"  {line}")
        for line in report.lifecycle.lines():  # the revocation and the grant
            if line:
                say(f"  {line}")
        self.summary["audit_ok"] = report.ok
        self.summary["audit_alarms"] = [a.to_json() for a in report.alarms]

        say("")
        say("9. Evidence: South discloses North's original proposal; an arbitrator verifies")
        bundle = await self.c("south-military").disclose(v1.index)
        evidence = self.workdir / "evidence-v1.json"
        evidence.write_bytes(bundle.to_bytes())
        verified = DocketClient.verify_evidence(evidence.read_bytes(), genesis.fingerprint)
        self.summary["evidence"] = {"file": str(evidence), "index": verified.index}
        say(f"  wrote {evidence} ({evidence.stat().st_size} bytes)")
        say(
            f"  VERIFIED: {verified.sender_member} sent {verified.payload.title!r} at log "
            f"position {verified.index}; received by "
            + ", ".join(sorted({f.member for f in verified.receipts if f.kind == "received"}))
        )

        self.summary["round"] = await play_round(self, genesis.fingerprint)

        self.summary["seconds"] = round(time.monotonic() - started, 1)
        self.summary["server"] = self.url
        return self.summary

    async def lost_laptop(self) -> None:
        """North's military adviser loses a laptop: the head revokes it, enrols a new one
        (fingerprint compared aloud) and grants it the working group's history."""
        say = self.say
        say("")
        say("7a. A lost laptop: north-military's device is declared compromised")
        lost = await self.send(
            "north-military",
            "wg-military",
            Payload(title="Withdrawal of the compromise text", body="Sent from the lost laptop."),
        )
        head = self.c("north-head").lifecycle
        old = b64e(self.c("north-military").public().device_id)
        revoked, since = await head.revoke_device("north-military", old, since=str(lost.index))
        say(f"  [{revoked.index:>3}] north-head revoked it, compromised since [{since}]")
        inv = await head.invite_device("north-military")
        home = self.home("north-military-laptop")
        keys = await asyncio.to_thread(keystore.create_keystore, home, PASSPHRASE, os.urandom)
        DocketClient.init_home_state(home, keys.device_id, self.url)
        laptop = DocketClient(home, server=self.url, keys=keys)
        self.clients["north-military-laptop"] = laptop
        await laptop.join(inv.code, name="Col. Tomas Varga (new laptop)")
        fingerprint = laptop.public().fingerprint
        added, _, _ = await head.add_device("north-military", expect_fingerprint=fingerprint)
        say(f"  [{added.index:>3}] new laptop enrolled; fingerprint {fingerprint} compared aloud")
        granted, drafts = await head.grant(
            "north-military", b64e(keys.device_id), channel="wg-military", upto=lost.index - 1
        )
        opened = await laptop.inbox()
        say(
            f"  [{granted.index:>3}] north-head granted it {len(drafts)} wg-military draft(s); "
            f"the new laptop reads {len(opened.items)}"
        )
        self.summary["lost_laptop"] = {
            "flagged": lost.index,
            "grant": granted.index,
            "granted": drafts,
            "revoked": revoked.index,
        }

    async def close(self) -> None:
        """Close every client and stop the server."""
        for client in self.clients.values():
            with contextlib.suppress(Exception):
                await client.close()
        await self.stop_services()


def parse_init_output(value: Any) -> tuple[str, bytes, str]:
    """The founding token, log key and origin from ``docket-server init --json``."""
    try:
        token, origin = value["founding_token"], value["origin"]
        log_key = b64d(value["log_key"], length=32, what="log key")
    except (ValueError, KeyError, TypeError, ProtocolError) as exc:
        raise NetworkError(f"cannot read what docket-server init printed: {exc}") from exc
    if not isinstance(token, str) or not isinstance(origin, str):
        raise NetworkError("docket-server init printed an invalid founding token or origin")
    return token, log_key, origin


def instructions(summary: dict[str, Any], workdir: Path, port: int) -> list[str]:
    """The commands to restart the server and use each participant's CLI."""
    q = shlex.quote
    home = workdir / "homes"
    members = [ENVOY.id, MONITOR.id] + [p.id for _, ps in DELEGATIONS.values() for p in ps]
    lines = [
        "To continue by hand:",
        "  # restart the witness daemons and the server (same ports: the homes remember them)",
    ]
    witnesses = summary.get("witnesses", {})
    for info in witnesses.values():
        wport = info["url"].rsplit(":", 1)[1]
        lines.append(f"  python -m client.witnessd serve --home {q(info['home'])} --port {wport} &")
    urls = ",".join(f"{name}={info['url']}" for name, info in witnesses.items())
    lines += [
        f"  DOCKET_WITNESS_URLS={q(urls)} \\",
        f"    docket-server serve --data {q(str(workdir / 'server'))} --port {port}",
        "  # every participant's key store is protected by the demo passphrase:",
        f"  export DOCKET_PASSPHRASE={q(PASSPHRASE)}",
        "  # then, as any participant:",
    ]
    for member in members:
        lines.append(f"  docket --home {q(str(home / member))} inbox")
    first = summary["drafts"][1]["index"] if len(summary["drafts"]) > 1 else 1
    lines += [
        "  # for example:",
        f"  docket --home {q(str(home / 'south-military'))} read {first}",
        f"  docket --home {q(str(home / 'north-military'))} receipts {first}",
        f"  docket --home {q(str(home / 'north-military'))} history {first}",
        f"  docket --home {q(str(home / 'envoy'))} channels",
        f"  docket --home {q(str(home / 'monitor'))} audit",
        f"  docket verify-evidence {q(summary['evidence']['file'])} "
        f"--talks {q(summary['talks_fingerprint'])}",
    ]
    return lines


async def run_demo(
    workdir: Path | None = None,
    *,
    echo: bool = True,
    then: Callable[[Demo], Awaitable[None]] | None = None,
) -> dict[str, JSONValue]:
    """Run the demo; return its summary (``audit_ok`` says whether the audit passed).

    ``then`` runs after the round, while the server, the daemons and the participants'
    clients are still up (``docket demo --desk`` opens the desk there)."""
    if workdir is None:
        workdir = Path(tempfile.mkdtemp(prefix="docket-demo-"))
    workdir = workdir.resolve()
    if workdir.exists() and any(workdir.iterdir()):
        raise ClientError(f"{workdir} is not empty: give the demo a fresh directory")
    workdir.mkdir(parents=True, exist_ok=True)
    # Marks the folder as the demo's, so 'docket demo --clean' removes it and nothing else.
    (workdir / DEMO_MARKER).write_text(DEMO_MARKER_TEXT, encoding="utf-8")

    def say(line: str) -> None:
        """Print a narrative line (unless --json)."""
        if echo:
            print(line, flush=True)

    demo = Demo(workdir, say)
    try:
        summary = await demo.run()
        if then is not None:
            await then(demo)
    finally:
        await demo.close()
    say("")
    verdict = "PASSED" if summary.get("audit_ok") else "FAILED"
    say(f"Demo finished in {summary['seconds']} s; audit {verdict}.")
    say("")
    for line in instructions(summary, workdir, demo.port):
        say(line)
    say("")
    say(
        f"Warning: the key stores in {workdir} are protected only by the published demo "
        "passphrase above: never use them for real talks."
    )
    say("Delete them when done: 'docket demo --clean' (every demo folder in the system")
    say(f"temporary folder), or 'docket demo --clean --workdir {shlex.quote(str(workdir))}'.")
    summary["key_stores_warning"] = (
        "the key stores are protected by the published demo passphrase; "
        "remove them with 'docket demo --clean'"
    )
    return summary
