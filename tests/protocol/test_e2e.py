"""A whole mediated exchange, end to end in memory, with the server and the clients kept
apart (as h11 tests two connections against each other).

:class:`LogServer` is the server's logic and nothing else: it holds only the log key,
runs the shared :class:`~protocol.ledger.Ledger` before accepting a write, logs into a
:class:`~protocol.merkle.MemoryTree`, answers with signed promises and serves entries,
proofs, checkpoints and the relayed ciphertexts.  A :class:`Client` holds one device's
private keys and the pinned talks id; it catches up only through checkpoints it verifies
(log signature, consistency with the last one it accepted, inclusion of every entry) and
replays every entry through its own ledger.  Heads and the mediator are also witnesses:
they cosign a checkpoint only after accepting it that way.

The happy path runs first; then a malicious server (``force_append`` skips the server's
own checks, as a compromised host would) tries each attack in turn and is caught.
"""

from __future__ import annotations

import dataclasses

import pytest

from protocol import checkpoint as cp
from protocol import crypto
from protocol.encoding import canonical, parse
from protocol.envelope import (
    DraftHeader,
    OpenedDraft,
    Payload,
    check_ciphertext,
    encode_upload,
    open_draft,
    seal,
    split_upload,
)
from protocol.errors import (
    BadSignatureError,
    CheckpointError,
    CiphertextMismatchError,
    EvidenceError,
    ForkError,
    ProofError,
    ProtocolError,
    QuorumError,
    RollbackError,
    UnknownDeviceError,
    WrongTalksError,
)
from protocol.evidence import EvidenceBundle, Proven, require_trusted, verify_evidence
from protocol.genesis import Genesis, WitnessPolicy, found, witness_name
from protocol.keys import DeviceId, DeviceKeys
from protocol.ledger import Ledger
from protocol.merkle import LeafHash, MemoryTree, leaf_hash, verify_consistency, verify_inclusion
from protocol.receipt import (
    ACKNOWLEDGED,
    RECEIVED,
    REJECTED,
    Promise,
    make_promise,
    make_receipt,
)
from protocol.records import DraftId, MessageId
from protocol.roster import ChangeArgs, Roster, make_change
from tests.helpers import make_rng
from tests.protocol.builders import resign

ORIGIN = "docket.test/e2e"
T0 = 1_767_225_600


class LogServer:
    """The server's logic: ledger check, append, promise; serve entries and proofs."""

    def __init__(self, genesis: bytes, log_key: crypto.SigningKey) -> None:
        self.log_key = log_key
        self.ledger = Ledger.from_genesis_bytes(genesis)
        self.origin = self.ledger.genesis.origin
        self.tree = MemoryTree()
        self.entries: list[bytes] = []
        self.blobs: dict[LeafHash, tuple[dict[DeviceId, bytes], bytes]] = {}
        self.cosignatures: dict[int, list[str]] = {}
        self.time = T0
        self.force_append(genesis)

    def force_append(self, data: bytes) -> Promise:
        """Log without checking (only a compromised server does this directly)."""
        index = self.tree.append(data)
        self.entries.append(data)
        self.time += 1
        return make_promise(
            key=self.log_key, origin=self.origin, index=index, leaf=leaf_hash(data), time=self.time
        )

    def submit(self, data: bytes) -> Promise:
        """Accept a write: the ledger refuses anything invalid and nothing changes."""
        self.ledger.apply(data)
        return self.force_append(data)

    def upload(self, body: bytes) -> Promise:
        header, keys, ciphertext = split_upload(body)
        check_ciphertext(header, ciphertext)
        promise = self.submit(header.to_bytes())
        self.blobs[header.leaf] = (keys, ciphertext)
        return promise

    def checkpoint(self, size: int | None = None) -> cp.Checkpoint:
        size = self.tree.size if size is None else size
        return cp.Checkpoint(origin=self.origin, size=size, root=self.tree.root(size))

    def note(self, size: int | None = None) -> str:
        """The checkpoint note with the log's signature and every cosignature collected."""
        checkpoint = self.checkpoint(size)
        lines = [cp.sign_checkpoint(checkpoint, self.origin, self.log_key)]
        lines += self.cosignatures.get(checkpoint.size, [])
        return cp.format_note(checkpoint.body(), lines).decode()

    def proof(self, index: int, size: int) -> list[bytes]:
        return self.tree.inclusion_proof(index, size)

    def consistency(self, old: int, new: int) -> list[bytes]:
        return self.tree.consistency_proof(old, new)


class Client:
    """One device: private keys, the pinned talks id, its own verified view of the log."""

    def __init__(self, name: str, keys: DeviceKeys, pinned: bytes) -> None:
        self.name = name
        self.keys = keys
        self.pinned = pinned
        self.ledger: Ledger | None = None
        self.state: cp.WitnessState | None = None
        self.rosters: dict[int, Roster] = {}
        self.counter = 0

    # -- verified catch-up -----------------------------------------------------------------

    def bootstrap(self, server: LogServer) -> None:
        genesis = Genesis.from_bytes(server.entries[0])
        genesis.check_talks(self.pinned)  # the out-of-band pin
        self.ledger = Ledger(genesis)
        self.state = cp.WitnessState.initial(genesis.origin)

    @property
    def genesis(self) -> Genesis:
        assert self.ledger is not None
        return self.ledger.genesis

    @property
    def roster(self) -> Roster:
        assert self.ledger is not None
        return self.ledger.roster

    def catch_up(self, server: LogServer, note: str, *, quorum: bool = False) -> cp.Checkpoint:
        """Accept ``note`` only if the log signed it, it extends what we saw, and every new
        entry is included in it and valid; with ``quorum``, also require the cosigners."""
        assert self.ledger is not None and self.state is not None
        g = self.genesis
        checkpoint, signed = cp.open_checkpoint(
            note.encode(), origin=g.origin, log_name=g.log_name, log_key=g.log_key
        )
        if quorum:
            require_trusted(checkpoint, signed, self.roster)
        # Ask for a consistency proof only for a larger tree; a smaller one is a rollback
        # the witness rule reports by itself.
        proof = (
            server.consistency(self.state.size, checkpoint.size)
            if checkpoint.size >= self.state.size
            else []
        )
        self.state.check_next(checkpoint, proof)
        for index in range(self.ledger.size, checkpoint.size):
            data = server.entries[index]
            verify_inclusion(
                leaf_hash(data),
                index,
                checkpoint.size,
                server.proof(index, checkpoint.size),
                checkpoint.root,
            )
            self.rosters[index] = self.roster.copy()
            self.ledger.apply(data)
        self.state = self.state.advance(checkpoint)
        return checkpoint

    def witness_name(self) -> str:
        member, _ = self.roster.device(self.keys.device_id)
        return witness_name(self.genesis.origin, member.delegation or "mediator")

    def cosign(self, server: LogServer, note: str) -> None:
        """Witness duty: accept the checkpoint (consistency!) and only then cosign it."""
        checkpoint = self.catch_up(server, note)
        line = cp.cosign(checkpoint, self.witness_name(), self.keys.signing, timestamp=server.time)
        server.cosignatures.setdefault(checkpoint.size, []).append(line)

    # -- acting ---------------------------------------------------------------------------------

    def change(self, op: str, args: ChangeArgs, time: int) -> bytes:
        return make_change(
            author=self.keys, roster=self.roster, op=op, args=args, time=time
        ).to_bytes()

    def send(self, channel: str, payload: Payload, rng: crypto.Rng, time: int) -> bytes:
        self.counter += 1
        sealed = seal(
            sender=self.keys,
            talks=self.genesis.talks_id,
            channel=channel,
            counter=self.counter,
            msg=MessageId(rng(16)),
            draft=DraftId(rng(16)),
            version=1,
            parents=[],
            roster=self.roster.head,
            recipients=self.roster.channel_devices(channel),
            payload=payload,
            time=time,
            rng=rng,
        )
        return encode_upload(sealed)

    def open(self, server: LogServer, index: int) -> OpenedDraft:
        header = DraftHeader.from_bytes(server.entries[index])
        keys, ciphertext = server.blobs[header.leaf]
        roster = self.rosters[index]
        _, sender = roster.device(header.sender)
        return open_draft(
            header,
            keys,
            ciphertext,
            me=self.keys,
            talks=self.pinned,
            sender=sender,
            recipients=roster.channel_devices(header.channel),
        )

    def receipt(self, server: LogServer, index: int, kind: str, time: int, **kw: str) -> bytes:
        header = DraftHeader.from_bytes(server.entries[index])
        return make_receipt(
            device=self.keys,
            header=header,
            index=index,
            kind=kind,
            time=time,
            reason=kw.get("reason"),
        ).to_bytes()


@dataclasses.dataclass
class Exchange:
    server: LogServer
    clients: dict[str, Client]
    draft_index: int
    receipts: list[int]
    promises: list[Promise]
    payload: Payload
    rng: crypto.Rng

    def witnesses(self) -> list[Client]:
        return [self.clients[n] for n in ("med", "nh", "sh")]

    def cosign_all(self) -> str:
        for w in self.witnesses():
            w.cosign(self.server, self.server.note())
        return self.server.note()

    def everyone_catches_up(self, note: str) -> None:
        for c in self.clients.values():
            c.catch_up(self.server, note, quorum=True)


def run_exchange(seed: str = "test_e2e") -> Exchange:
    """Found, enrol, create a channel, send one draft, receipt it; everyone verifies."""
    rng = make_rng(seed)
    log_key = crypto.SigningKey.generate(rng)
    devices = {name: DeviceKeys.generate(rng) for name in ("med", "nh", "na", "nb", "sh", "sa")}
    genesis = found(
        mediator_keys=devices["med"],
        mediator="med",
        mediator_name="Mediator",
        origin=ORIGIN,
        title="Corridor talks",
        log_key=log_key.public_bytes(),
        witness=WitnessPolicy(quorum=3),
        time=T0,
    )
    # 1. The mediator founds the talks and hands out the fingerprint out of band.
    server = LogServer(genesis.to_bytes(), log_key)
    clients = {n: Client(n, k, genesis.talks_id) for n, k in devices.items()}
    for c in clients.values():
        c.bootstrap(server)
    med, nh, sh = clients["med"], clients["nh"], clients["sh"]
    promises: list[Promise] = []
    clock = iter(range(T0 + 1, T0 + 10_000))

    def submit(data: bytes) -> None:
        promises.append(server.submit(data))
        note = server.note()
        for c in clients.values():
            if c.ledger is not None and c.ledger.size < server.tree.size:
                c.catch_up(server, note)

    # 2. Two delegations, each head enrols a member (or two), and a plenary channel.
    for deleg, head in (("north", "nh"), ("south", "sh")):
        submit(
            med.change(
                "delegation.create",
                ChangeArgs(
                    delegation=deleg,
                    name=deleg.title(),
                    member=head,
                    member_name=head,
                    devices=(devices[head].public,),
                ),
                next(clock),
            )
        )
    for author, deleg, member in ((nh, "north", "na"), (nh, "north", "nb"), (sh, "south", "sa")):
        submit(
            author.change(
                "member.enrol",
                ChangeArgs(
                    delegation=deleg,
                    member=member,
                    member_name=member,
                    devices=(devices[member].public,),
                ),
                next(clock),
            )
        )
    submit(
        med.change(
            "channel.create",
            ChangeArgs(
                channel="plenary",
                name="Plenary",
                kind="plenary",
                delegations=("north", "south"),
                members=("med",),
            ),
            next(clock),
        )
    )
    # 3. A member seals a draft to the channel; the server relays it.
    payload = Payload(title="Art. 1", body="The parties agree on a humanitarian corridor.")
    promises.append(server.upload(clients["na"].send("plenary", payload, rng, next(clock))))
    draft_index = server.tree.size - 1
    note = server.note()
    for c in clients.values():
        c.catch_up(server, note)
    # 4. Every recipient opens it and signs "received"; the mediator acknowledges.
    receipts = []
    for name, c in clients.items():
        opened = c.open(server, draft_index)
        assert opened.payload == payload
        if name != "na":
            promises.append(server.submit(c.receipt(server, draft_index, RECEIVED, next(clock))))
            receipts.append(server.tree.size - 1)
    promises.append(server.submit(med.receipt(server, draft_index, ACKNOWLEDGED, next(clock))))
    receipts.append(server.tree.size - 1)
    return Exchange(server, clients, draft_index, receipts, promises, payload, rng)


# --- the happy path -----------------------------------------------------------------------


def test_a_whole_mediated_exchange() -> None:
    ex = run_exchange()
    server = ex.server
    # 5. The log: every promise is honoured, every entry is included, sizes are consistent.
    for promise in ex.promises:
        promise.verify(server.ledger.genesis.log_key)
        assert server.tree.leaf(promise.index) == promise.leaf
    size = server.tree.size
    root = server.tree.root()
    for i, data in enumerate(server.entries):
        verify_inclusion(leaf_hash(data), i, size, server.proof(i, size), root)
    for old in range(1, size):
        verify_consistency(old, size, server.tree.root(old), root, server.consistency(old, size))
    # 6. A checkpoint signed by the log and cosigned by every witness the roster names.
    note = ex.cosign_all()
    checkpoint, signed = cp.open_checkpoint(
        note.encode(), origin=ORIGIN, log_name=ORIGIN, log_key=server.ledger.genesis.log_key
    )
    assert checkpoint.size == size and checkpoint.root == root
    names = require_trusted(checkpoint, signed, server.ledger.roster)
    assert set(names) == set(server.ledger.roster.witnesses())
    ex.everyone_catches_up(note)
    for c in ex.clients.values():
        assert c.ledger is not None and c.state is not None
        assert c.state.size == size and c.state.root == root
        assert c.ledger.roster.head == server.ledger.roster.head
    # Every client sees who received and acknowledged what.
    state = ex.clients["nb"].ledger.drafts[leaf_hash(server.entries[ex.draft_index])]  # type: ignore[union-attr]
    assert state.missing(RECEIVED) == []
    assert state.missing(ACKNOWLEDGED) != []
    assert list(state.acknowledged) == [ex.clients["med"].keys.device_id]
    # 7. An evidence bundle for the draft verifies offline against the pin.
    report = verify_evidence(evidence(ex, note).to_bytes(), ex.clients["nb"].pinned)
    assert report.sender_member == "na" and report.payload == ex.payload
    assert report.index == ex.draft_index
    assert {f.member for f in report.receipts} == {"med", "nh", "nb", "sh", "sa"}
    # 8. An auditor replays the whole log from outside and reaches the same root.
    auditor = Ledger.from_genesis_bytes(server.entries[0])
    for data in server.entries[1:]:
        auditor.apply(data)
    assert MemoryTree.from_entries(server.entries).root() == checkpoint.root
    assert auditor.roster.head == server.ledger.roster.head


def evidence(ex: Exchange, note: str) -> EvidenceBundle:
    server = ex.server
    size = cp.parse_note(note.encode()).text.split(b"\n")[1]
    n = int(size)

    def proven(i: int) -> Proven:
        return Proven(index=i, entry=server.entries[i], proof=tuple(server.proof(i, n)))

    header = DraftHeader.from_bytes(server.entries[ex.draft_index])
    keys, ciphertext = server.blobs[header.leaf]
    opened = ex.clients["nb"].open(server, ex.draft_index)
    return EvidenceBundle(
        genesis=proven(0),
        roster=tuple(
            proven(i)
            for i in range(1, ex.draft_index)
            if parse(server.entries[i])["t"] in ("roster", "channel")
        ),
        draft=proven(ex.draft_index),
        ciphertext=ciphertext,
        content_key=opened.content_key,
        receipts=tuple(proven(i) for i in ex.receipts),
        checkpoint=note,
    )


# --- tampering, step by step --------------------------------------------------------------


def test_step1_server_serving_another_genesis_fails_the_pin() -> None:
    ex = run_exchange()
    rogue = found(
        mediator_keys=DeviceKeys.generate(make_rng("rogue")),
        mediator="med",
        mediator_name="Mediator",
        origin=ORIGIN,
        title="Corridor talks",
        log_key=ex.server.log_key.public_bytes(),
        witness=WitnessPolicy(quorum=1),
        time=T0,
    )
    fake = LogServer(rogue.to_bytes(), ex.server.log_key)
    with pytest.raises(WrongTalksError):
        Client("nb", ex.clients["nb"].keys, ex.clients["nb"].pinned).bootstrap(fake)


def test_step2_server_cannot_add_a_member_or_substitute_a_key() -> None:
    ex = run_exchange()
    server, nb = ex.server, ex.clients["nb"]
    intruder = DeviceKeys.generate(make_rng("intruder"))
    # a) The server's own ledger refuses an enrolment it signed itself ...
    forged = make_change(
        author=intruder,
        roster=server.ledger.roster,
        op="member.enrol",
        args=ChangeArgs(
            delegation="north", member="spy", member_name="spy", devices=(intruder.public,)
        ),
        time=T0,
    ).to_bytes()
    with pytest.raises(UnknownDeviceError):
        server.submit(forged)
    # ... and a compromised server that logs it anyway is refused by every client.
    server.force_append(forged)
    with pytest.raises(UnknownDeviceError):
        nb.catch_up(server, server.note())


def test_step2_server_substituting_a_device_key_in_a_signed_change() -> None:
    ex = run_exchange()
    server = ex.server
    nh = ex.clients["nh"]
    good = parse(
        nh.change(
            "member.enrol",
            ChangeArgs(
                delegation="north",
                member="nc",
                member_name="nc",
                devices=(DeviceKeys.generate(make_rng("nc")).public,),
            ),
            T0,
        )
    )
    good["args"]["devices"] = [DeviceKeys.generate(make_rng("swap")).public.to_json()]
    with pytest.raises(BadSignatureError):
        server.submit(canonical(good))
    server.force_append(canonical(good))
    with pytest.raises(BadSignatureError):
        ex.clients["sa"].catch_up(server, server.note())


def test_step3_server_altering_a_ciphertext_gets_a_signed_rejection() -> None:
    ex = run_exchange()
    server, nb = ex.server, ex.clients["nb"]
    header = DraftHeader.from_bytes(server.entries[ex.draft_index])
    keys, ct = server.blobs[header.leaf]
    # An altered ciphertext, or a swapped wrapped-key map, is refused before decryption.
    server.blobs[header.leaf] = (keys, ct[:-1] + bytes([ct[-1] ^ 1]))
    with pytest.raises(CiphertextMismatchError):
        nb.open(server, ex.draft_index)
    ids = sorted(keys)
    server.blobs[header.leaf] = ({**keys, ids[0]: keys[ids[1]], ids[1]: keys[ids[0]]}, ct)
    with pytest.raises(CiphertextMismatchError):
        nb.open(server, ex.draft_index)
    # The relay refuses an upload whose ciphertext is not the one the header signs.
    with pytest.raises(CiphertextMismatchError):
        server.upload(ex.clients["na"].send("plenary", ex.payload, ex.rng, T0)[:-1] + b"\x00")
    # A fresh draft whose ciphertext the server alters in the relay: the recipient signs a
    # "rejected" receipt with the error code, and it is logged for everyone to see.
    ex.clients["na"].counter -= 1  # the refused upload above never got logged
    server.upload(ex.clients["sa"].send("plenary", ex.payload, ex.rng, T0 + 50))
    index = server.tree.size - 1
    for c in ex.clients.values():
        c.catch_up(server, server.note())
    leaf = leaf_hash(server.entries[index])
    keys, ct = server.blobs[leaf]
    server.blobs[leaf] = (keys, ct[:10] + bytes([ct[10] ^ 1]) + ct[11:])
    with pytest.raises(CiphertextMismatchError) as info:
        nb.open(server, index)
    server.submit(nb.receipt(server, index, REJECTED, T0 + 60, reason=info.value.code))
    assert server.ledger.drafts[leaf].rejected[nb.keys.device_id].reason == "ciphertext_mismatch"


def test_step4_server_cannot_forge_or_alter_a_receipt() -> None:
    ex = run_exchange()
    server = ex.server
    sa = ex.clients["sa"]
    receipt = parse(server.entries[ex.receipts[0]])
    forged = {**receipt, "kind": ACKNOWLEDGED}
    with pytest.raises(BadSignatureError):
        server.submit(canonical(forged))
    # A receipt "by" sa that the server signed with its log key.
    rogue = parse(sa.receipt(server, ex.draft_index, ACKNOWLEDGED, T0))
    with pytest.raises(BadSignatureError):
        server.submit(canonical(resign(rogue, server.log_key, crypto.CTX_RECEIPT)))


def test_step5_dropping_or_reordering_entries_is_detected() -> None:
    ex = run_exchange()
    server = ex.server
    honest = list(server.entries)
    note = server.note()
    # Serving an entry out of place: its inclusion proof at that index fails.
    fresh = Client("nb", ex.clients["nb"].keys, ex.clients["nb"].pinned)
    fresh.bootstrap(server)
    server.entries[3], server.entries[4] = honest[4], honest[3]
    with pytest.raises(ProofError):
        fresh.catch_up(server, note)
    server.entries[:] = honest
    # A log rebuilt without entry 5 (a roster change) ...
    dropped = LogServer(honest[0], server.log_key)
    for data in honest[1:5] + honest[6:]:
        dropped.force_append(data)
    nb = ex.clients["nb"]
    nb.catch_up(server, note)
    with pytest.raises(RollbackError):  # ... is a rollback to a client that saw the full log,
        nb.catch_up(dropped, dropped.note())
    dropped.force_append(honest[5])
    dropped.force_append(honest[5])
    with pytest.raises(ForkError):  # ... a fork once it has grown past it,
        nb.catch_up(dropped, dropped.note())
    newcomer = Client("sa", ex.clients["sa"].keys, ex.clients["sa"].pinned)
    newcomer.bootstrap(dropped)
    with pytest.raises(ProtocolError):  # ... and an invalid history to a newcomer.
        newcomer.catch_up(dropped, dropped.note())


def test_step5_promise_not_honoured_is_evidence_against_the_server() -> None:
    ex = run_exchange()
    server = ex.server
    promise = ex.promises[2]
    size = server.tree.size
    # The server later serves another entry at the promised index: the signed promise and
    # the checkpoint contradict each other.
    other = leaf_hash(server.entries[promise.index + 1])
    proof = server.proof(promise.index, size)
    verify_inclusion(promise.leaf, promise.index, size, proof, server.tree.root())
    with pytest.raises(ProofError):
        verify_inclusion(other, promise.index, size, proof, server.tree.root())
    promise.verify(server.ledger.genesis.log_key)


def test_step6_witness_refuses_a_fork() -> None:
    ex = run_exchange()
    server = ex.server
    ex.cosign_all()
    nh = ex.clients["nh"]
    # The server shows nh a different history of the same size: a fork.
    fork = LogServer(server.entries[0], server.log_key)
    for data in server.entries[1:-1]:
        fork.force_append(data)
    fork.force_append(ex.clients["med"].receipt(server, ex.draft_index, REJECTED, T0, reason="x"))
    assert fork.tree.size == server.tree.size
    with pytest.raises(ForkError):
        nh.cosign(fork, fork.note())
    # Grown from the fork, the inconsistency shows as a failing consistency proof.
    fork.force_append(b'{"t":"memo"}')
    with pytest.raises(ForkError):
        nh.cosign(fork, fork.note())


def test_step6_witness_refuses_a_rollback() -> None:
    ex = run_exchange()
    ex.cosign_all()
    with pytest.raises(RollbackError):
        ex.clients["sh"].cosign(ex.server, ex.server.note(ex.server.tree.size - 2))


def test_step6_checkpoint_without_quorum_is_not_trusted() -> None:
    ex = run_exchange()
    server = ex.server
    ex.clients["med"].cosign(server, server.note())
    ex.clients["nh"].cosign(server, server.note())
    fresh = Client("sa", ex.clients["sa"].keys, ex.clients["sa"].pinned)
    fresh.bootstrap(server)
    fresh.catch_up(server, server.note(5))
    with pytest.raises(QuorumError):
        fresh.catch_up(server, server.note(), quorum=True)
    ex.clients["sh"].cosign(server, server.note())
    fresh.catch_up(server, server.note(), quorum=True)


def test_step6_checkpoint_forged_without_the_log_key() -> None:
    ex = run_exchange()
    server = ex.server
    rogue = LogServer(server.entries[0], crypto.SigningKey(bytes(32)))
    for data in server.entries[1:]:
        rogue.force_append(data)
    with pytest.raises(CheckpointError):
        ex.clients["nb"].catch_up(server, rogue.note())


def test_step7_tampered_evidence_is_refused() -> None:
    ex = run_exchange()
    note = ex.cosign_all()
    bundle = evidence(ex, note)
    pinned = ex.clients["nb"].pinned
    verify_evidence(bundle, pinned)
    ct = bytearray(bundle.ciphertext)
    ct[40] ^= 1
    checkpoint = ex.server.checkpoint()
    uncosigned = cp.format_note(
        checkpoint.body(), [cp.sign_checkpoint(checkpoint, ORIGIN, ex.server.log_key)]
    ).decode()
    for bad in (
        dataclasses.replace(bundle, ciphertext=bytes(ct)),
        dataclasses.replace(bundle, content_key=bytes(32)),
        dataclasses.replace(bundle, roster=bundle.roster[1:]),
        dataclasses.replace(bundle, receipts=(bundle.draft,)),
        dataclasses.replace(bundle, checkpoint=uncosigned),
    ):
        with pytest.raises(EvidenceError):
            verify_evidence(bad, pinned)
    with pytest.raises(EvidenceError):
        verify_evidence(bundle, crypto.sha256(b"other talks"))


def test_every_member_device_opens_but_outsiders_cannot() -> None:
    ex = run_exchange()
    outsider = Client("x", DeviceKeys.generate(make_rng("x")), ex.clients["nb"].pinned)
    outsider.bootstrap(ex.server)
    outsider.catch_up(ex.server, ex.server.note())
    with pytest.raises(ProtocolError):
        outsider.open(ex.server, ex.draft_index)
    for c in ex.clients.values():
        assert c.open(ex.server, ex.draft_index).payload == ex.payload


def test_the_server_never_holds_the_text_or_title() -> None:
    ex = run_exchange()
    header = DraftHeader.from_bytes(ex.server.entries[ex.draft_index])
    keys, ct = ex.server.blobs[header.leaf]
    held = b"".join(ex.server.entries) + ct + b"".join(keys.values())
    assert b"humanitarian" not in held.lower()
    assert b"Art. 1" not in held
    assert all(len(v) == crypto.CONTENT_KEY_LEN + crypto.SEAL_OVERHEAD for v in keys.values())
