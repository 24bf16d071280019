"""Talks to crash, a burst of writes to crash them with, and the proof that nothing broke.

* :func:`build_template` founds the standard talks (tests/server/harness.py) in-process,
  seeds a few drafts and stops cleanly; each test copies the stopped data directory
  (:meth:`Template.clone`) instead of founding talks again.
* :func:`burst` fires drafts (one chain per sender, since counters are sequential) and
  receipts (for the seeded drafts) concurrently, and sorts every write into
  acknowledged (a 200 with a promise reached us) or not.
* :func:`verify_log` is the after-crash proof: every acknowledged promise at its index
  with its leaf, the log replays through a fresh :class:`~protocol.ledger.Ledger`, the
  served checkpoint verifies and is consistent with one seen before the crash, and the
  database has no partial rows (:func:`check_store`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import shutil
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from protocol import merkle
from protocol.checkpoint import Checkpoint, open_checkpoint, parse_note
from protocol.encoding import b64d, canonical, parse
from protocol.envelope import DraftHeader, SealedDraft, check_keys, keys_from_json
from protocol.genesis import Genesis
from protocol.ledger import Ledger, entry_kind, parse_entry
from protocol.merkle import Frontier, LeafHash, MemoryTree
from protocol.receipt import Promise, Receipt
from protocol.roster import RosterChange
from server.datadir import InitResult
from tests.faults.counters import bump
from tests.helpers import make_rng
from tests.server.harness import ORIGIN, Harness, Person

SEEDED = 6
"""Drafts by ``n-adv`` in ``plenary`` that the template logs (receipts answer them)."""
RECIPIENTS = ("s-adv", "s-head", "n-head", "med")
"""Recipients of the seeded drafts who post receipts during a burst."""
SENDERS = ("n-adv", "s-adv", "n-head", "s-head")


# --- the template -------------------------------------------------------------------------


@dataclass
class Template:
    """A stopped data directory with standard talks, and what a client knows of it."""

    data: Path
    init: InitResult
    people: dict[str, Person]
    genesis: Genesis
    entries: list[bytes]
    seeded: list[tuple[SealedDraft, int]]

    def clone(self, dest: Path) -> Path:
        """Copy the data directory to ``dest`` (modes kept: the key file stays 0600)."""
        shutil.copytree(self.data, dest)
        return dest

    def people_copy(self) -> dict[str, Person]:
        """Fresh :class:`Person` objects (counters as in the template)."""
        return {k: dataclasses.replace(p) for k, p in self.people.items()}

    def ledger(self) -> Ledger:
        ledger = Ledger.from_genesis_bytes(self.entries[0])
        for data in self.entries[1:]:
            ledger.apply(data)
        return ledger

    @contextlib.asynccontextmanager
    async def attach(self, url: str, data: Path, seed: str) -> AsyncIterator[Harness]:
        """A harness driving the server at ``url`` as the template's participants."""
        async with Harness.attach(url, data, self.init, make_rng(seed)) as h:
            h.people, h.genesis, h.ledger = self.people_copy(), self.genesis, self.ledger()
            yield h


async def _build(base: Path) -> Template:
    async with Harness.start(base, make_rng("docket-fault-template")) as h:
        await h.standard_talks()
        seeded = []
        sender = h.people["n-adv"]
        for i in range(SEEDED):
            sealed = h.seal(sender, "plenary", f"seeded draft {i}")
            promise = await h.send(sender, sealed)
            seeded.append((sealed, promise.index))
        await h.checkpoint()
        entries = await fetch_entries(h)
        assert h.genesis is not None
        return Template(
            data=h.settings.data,
            init=h.init,
            people=h.people,
            genesis=h.genesis,
            entries=entries,
            seeded=seeded,
        )


def build_template(base: Path) -> Template:
    """Found the standard talks in ``base/data`` and stop the server cleanly."""
    return asyncio.run(_build(base))


# --- the burst ------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What a burst did, from the client's side."""

    drafts: list[tuple[Person, SealedDraft, Promise]] = field(default_factory=list)
    receipts: list[tuple[Person, list[Receipt], list[Promise]]] = field(default_factory=list)
    unacked_drafts: list[tuple[Person, SealedDraft]] = field(default_factory=list)
    unacked_receipts: list[tuple[Person, list[Receipt]]] = field(default_factory=list)
    statuses: Counter[int | str] = field(default_factory=Counter)
    checkpoints: list[tuple[Checkpoint, bytes]] = field(default_factory=list)

    @property
    def promises(self) -> list[Promise]:
        """Every acknowledged promise."""
        out = [p for _, _, p in self.drafts]
        for _, _, ps in self.receipts:
            out.extend(ps)
        return out


def _note_status(outcome: Outcome, status: int | str) -> None:
    outcome.statuses[status] += 1
    if status == 500:
        bump("500s seen")


async def _draft_chain(
    h: Harness, sender: Person, count: int, outcome: Outcome, pace: float
) -> None:
    for i in range(count):
        await asyncio.sleep(pace * i)
        sealed = h.seal(sender, "plenary", f"burst {sender.member} {i}")
        try:
            resp = await h.post_draft(sender, sealed)
            body = await resp.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            _note_status(outcome, type(exc).__name__)
            outcome.unacked_drafts.append((sender, sealed))
            return
        _note_status(outcome, resp.status)
        if resp.status != 200:
            outcome.unacked_drafts.append((sender, sealed))
            return
        outcome.drafts.append((sender, sealed, Promise.from_json(parse(body)["promise"])))


async def _receipt_chain(
    h: Harness,
    person: Person,
    seeded: Sequence[tuple[SealedDraft, int]],
    outcome: Outcome,
    pace: float,
) -> None:
    for start in range(0, len(seeded), 2):
        await asyncio.sleep(pace * start)
        receipts = [h.receipt(person, s, i) for s, i in seeded[start : start + 2]]
        try:
            resp = await h.post_receipts(person, receipts)
            body = await resp.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            _note_status(outcome, type(exc).__name__)
            outcome.unacked_receipts.append((person, receipts))
            return
        _note_status(outcome, resp.status)
        if resp.status != 200:
            outcome.unacked_receipts.append((person, receipts))
            return
        promises = [Promise.from_json(p) for p in parse(body)["promises"]]
        outcome.receipts.append((person, receipts, promises))


async def _watch_checkpoints(h: Harness, outcome: Outcome, stop: asyncio.Event) -> None:
    """Keep every verified checkpoint the server publishes while the burst runs."""
    reader = h.people["aud"]
    while not stop.is_set():
        try:
            resp = await h.request("GET", "/v1/log/checkpoint", person=reader)
            note = await resp.read()
        except (aiohttp.ClientError, OSError):
            return
        if resp.status == 200:
            cp, _ = open_checkpoint(note, origin=ORIGIN, log_name=ORIGIN, log_key=h.init.log_key)
            if not outcome.checkpoints or outcome.checkpoints[-1][0].size < cp.size:
                outcome.checkpoints.append((cp, note))
        await asyncio.sleep(0.02)


async def login_all(h: Harness) -> None:
    """Log every participant in before a burst (tokens survive a restart)."""
    for person in h.people.values():
        await h.token(person)


async def burst(
    h: Harness,
    seeded: Sequence[tuple[SealedDraft, int]],
    *,
    drafts_per_sender: int = 5,
    senders: Sequence[str] = SENDERS,
    recipients: Sequence[str] = RECIPIENTS,
    pace: float = 0.0,
) -> Outcome:
    """Drafts and receipts, concurrently (about 30 requests with the defaults), each
    chain pausing ``pace`` seconds more before each request (a burst that spans several
    checkpoint intervals)."""
    outcome = Outcome()
    stop = asyncio.Event()
    watcher = asyncio.create_task(_watch_checkpoints(h, outcome, stop))
    try:
        await asyncio.gather(
            *(_draft_chain(h, h.people[s], drafts_per_sender, outcome, pace) for s in senders),
            *(_receipt_chain(h, h.people[r], seeded, outcome, pace) for r in recipients),
        )
    finally:
        stop.set()
        await watcher
    return outcome


# --- after the crash -------------------------------------------------------------------------


async def fetch_entries(h: Harness, reader: str = "aud") -> list[bytes]:
    """Every committed entry, as the canonical bytes the server serves."""
    size = int((await h.ok("GET", "/healthz"))["size"])
    out: list[bytes] = []
    while len(out) < size:
        got = await h.ok(
            "GET",
            f"/v1/log/entries?start={len(out)}&end={size}",
            person=h.people[reader],
        )
        items = got["entries"]
        assert items, "the server returned no entries below its size"
        for item in items:
            assert item["index"] == len(out)
            out.append(canonical(item["entry"]))
    return out


@dataclass
class Verified:
    entries: list[bytes]
    tree: MemoryTree
    checkpoint: Checkpoint


async def verify_log(
    h: Harness, promises: Sequence[Promise], *, before: Checkpoint | None
) -> Verified:
    """The after-crash proof (see the module docstring); counts checked and lost items."""
    entries = await fetch_entries(h)
    ledger = Ledger.from_genesis_bytes(entries[0])
    for data in entries[1:]:
        ledger.apply(data)  # every signature and rule, again
    tree = MemoryTree.from_entries(entries)
    leaves = [tree.leaf(i) for i in range(tree.size)]
    assert len(set(leaves)) == len(leaves), "an entry is logged twice"
    lost = []
    for promise in promises:
        promise.verify(h.init.log_key)
        if promise.index >= tree.size or tree.leaf(promise.index) != promise.leaf:
            lost.append(promise.index)
    bump("items checked", len(promises))
    bump("items lost", len(lost))
    assert not lost, f"acknowledged entries lost: {lost}"
    assert len({p.index for p in promises}) == len(promises), "two promises share an index"
    cp, _, note = await h.checkpoint(len(entries), person=h.people["aud"])
    assert cp.size == len(entries)
    assert cp.root == tree.root(cp.size)
    if before is not None:
        got = await h.ok(
            "GET",
            f"/v1/log/proof/consistency?old={before.size}&new={cp.size}",
            person=h.people["aud"],
        )
        merkle.verify_consistency(
            before.size, cp.size, before.root, cp.root, [b64d(p) for p in got["proof"]]
        )
    return Verified(entries=entries, tree=tree, checkpoint=cp)


def _inbox_rows(index: int, entry: object) -> set[tuple[bytes, int, str]]:
    if isinstance(entry, RosterChange):
        return {(b"", index, entry_kind(entry))}
    if isinstance(entry, DraftHeader):
        return {(bytes(d), index, "draft") for d in entry.recipients}
    if isinstance(entry, Receipt):
        return set()  # filled in by the caller, which knows the draft's sender
    return set()


def check_store(data: Path, log_key: bytes, *, stopped: bool = False) -> int:
    """No partial rows: every side table agrees with the entries; returns the log size.

    ``stopped``: the server is not running, so ``checkpoint.txt`` must be the latest.

    Reads the database directly (a snapshot through its own read-only connection), so it
    also sees what the server does not serve: orphaned nodes, inbox rows, blobs.
    """
    conn = sqlite3.connect(f"file:{data / 'docket.db'}?mode=ro", uri=True)
    try:
        conn.execute("BEGIN")
        rows = conn.execute("SELECT idx, kind, leaf, body FROM entries ORDER BY idx").fetchall()
        assert [r[0] for r in rows] == list(range(len(rows))), "entry indices have gaps"
        parsed = []
        frontier = Frontier()
        expected_nodes: dict[tuple[int, int], bytes] = {}
        drafts_at: dict[int, DraftHeader] = {}
        receipts_at: dict[int, Receipt] = {}
        inbox: set[tuple[bytes, int, str]] = set()
        for idx, kind, leaf, stored in rows:
            body = bytes(stored)
            assert bytes(leaf) == merkle.leaf_hash(body), f"entry {idx}: leaf is not its hash"
            entry = parse_entry(body)
            assert entry_kind(entry) == kind, f"entry {idx}: kind {kind}"
            parsed.append(entry)
            for level, at, h in frontier.append(LeafHash(bytes(leaf))):
                expected_nodes[(level, at)] = h
            inbox |= _inbox_rows(idx, entry)
            if isinstance(entry, DraftHeader):
                drafts_at[idx] = entry
            elif isinstance(entry, Receipt):
                receipts_at[idx] = entry
                inbox.add((bytes(drafts_at[entry.index].sender), idx, "receipt"))
        size = len(rows)

        nodes = {(int(lv), int(i)): bytes(h) for lv, i, h in conn.execute("SELECT * FROM nodes")}
        assert nodes == expected_nodes, "Merkle nodes table does not match the entries"

        in_files: set[str] = set()
        drafts = {
            int(r[0]): r[1:]
            for r in conn.execute(
                "SELECT idx, sender, msg, channel, ct_hash, ct_len, keys FROM drafts"
            )
        }
        assert set(drafts) == set(drafts_at), "drafts rows do not match draft entries"
        for idx, (sender, msg, channel, ct_hash, ct_len, keys) in drafts.items():
            header = drafts_at[idx]
            assert (bytes(sender), bytes(msg), channel, bytes(ct_hash), ct_len) == (
                header.sender,
                header.msg,
                header.channel,
                header.ct_hash,
                header.ct_len,
            ), f"drafts row {idx} differs from its entry"
            check_keys(header, keys_from_json(parse(bytes(keys))))
            # Small ciphertexts are rows committed with their entry, larger ones files.
            row = conn.execute("SELECT data FROM ciphertexts WHERE idx = ?", (idx,)).fetchone()
            if row is not None:
                ciphertext = bytes(row[0])
            else:
                blob = data / "blobs" / header.ct_hash.hex()
                assert blob.is_file(), f"draft {idx}: ciphertext blob missing"
                ciphertext = blob.read_bytes()
                in_files.add(header.ct_hash.hex())
            assert len(ciphertext) == header.ct_len, f"draft {idx}: ciphertext length"
            assert hashlib.sha256(ciphertext).digest() == header.ct_hash
        in_database = {int(i) for (i,) in conn.execute("SELECT idx FROM ciphertexts")}
        assert in_database <= set(drafts_at), "ciphertexts rows without their draft"

        receipts = {
            int(r[0]): (int(r[1]), bytes(r[2]), str(r[3]))
            for r in conn.execute("SELECT idx, draft_idx, device, kind FROM receipts")
        }
        assert set(receipts) == set(receipts_at), "receipts rows do not match receipt entries"
        for idx, row in receipts.items():
            r = receipts_at[idx]
            assert row == (r.index, bytes(r.device), r.kind), f"receipts row {idx} differs"

        stored_inbox = {
            (bytes(d), int(i), str(k)) for d, i, k in conn.execute("SELECT * FROM inbox")
        }
        assert stored_inbox == inbox, "inbox rows do not match the entries"

        for csize, root, note in conn.execute("SELECT size, root, note FROM checkpoints"):
            assert 0 < csize <= size, f"checkpoint of {csize} beyond the log of {size}"
            cp, _ = open_checkpoint(bytes(note), origin=ORIGIN, log_name=ORIGIN, log_key=log_key)
            assert (cp.size, cp.root) == (csize, bytes(root))
            assert bytes(root) == merkle.root(csize, _Nodes(nodes)), f"checkpoint {csize} root"
        notes = [
            parse_note(bytes(n)).text
            for (n,) in conn.execute("SELECT note FROM checkpoints ORDER BY size")
        ]
        published = data / "checkpoint.txt"
        if notes:
            text = parse_note(published.read_bytes()).text
            # A running server may be between storing a checkpoint and publishing it.
            assert text == notes[-1] if stopped else text in notes[-2:], "checkpoint.txt"
        conn.execute("COMMIT")
    finally:
        conn.close()
    on_disk = {p.name for p in (data / "blobs").iterdir() if p.is_file()}
    assert on_disk == in_files, f"stray blobs: {sorted(on_disk - in_files)}"
    assert not list((data / "blobs" / "tmp").iterdir()), "upload leftovers in blobs/tmp"
    return size


class _Nodes:
    def __init__(self, nodes: dict[tuple[int, int], bytes]) -> None:
        self._nodes = nodes

    def get_nodes(self, coords: Sequence[tuple[int, int]]) -> list[bytes]:
        return [self._nodes[c] for c in coords]


def table_counts(data: Path) -> dict[str, int]:
    """Row counts of every table (``sqlite_master`` decides which exist)."""
    conn = sqlite3.connect(f"file:{data / 'docket.db'}?mode=ro", uri=True)
    try:
        names = [
            str(n)
            for (n,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return {
            n: int(conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0])  # noqa: S608
            for n in names
        }
    finally:
        conn.close()


async def retry_drafts(
    h: Harness, unacked: Sequence[tuple[Person, SealedDraft]], copies: int = 2
) -> list[Promise]:
    """Resend every unacknowledged upload, byte for byte, ``copies`` times concurrently.

    Each must answer 200 and all copies the same promise: the original one if the crash
    came after its commit, a new one otherwise.
    """
    out: list[Promise] = []
    for sender, sealed in unacked:
        answers = await asyncio.gather(*(h.post_draft(sender, sealed) for _ in range(copies)))
        bodies = [await r.read() for r in answers]
        for resp, body in zip(answers, bodies, strict=True):
            _count_500(resp.status)
            assert resp.status == 200, (resp.status, body[:300])
        promises = {canonical(parse(b)["promise"]) for b in bodies}
        assert len(promises) == 1, "retries of one upload got different promises"
        promise = Promise.from_json(parse(promises.pop()))
        assert promise.leaf == sealed.header.leaf
        out.append(promise)
    return out


def _count_500(status: int) -> None:
    if status == 500:
        bump("500s seen")


def describe(outcome: Outcome) -> str:
    return json.dumps(
        {
            "acked": len(outcome.promises),
            "unacked_drafts": len(outcome.unacked_drafts),
            "unacked_receipts": len(outcome.unacked_receipts),
            "statuses": {str(k): v for k, v in outcome.statuses.items()},
            "checkpoints": [cp.size for cp, _ in outcome.checkpoints],
        },
        sort_keys=True,
    )
