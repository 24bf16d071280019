"""The talks genesis: the founding record, signed by the mediator, pinned by everyone.

The genesis is log entry 0.  Its leaf hash is the **talks id**; rendered as digits it is
the talks fingerprint that the mediator hands out of band and every client pins.  It
names the log origin, the server's checkpoint key, the mediator and its first device,
and the witness policy, so a client that has pinned it needs nothing else from the
server to tell a genuine checkpoint from a forged one.

Witnesses: the mediator and every delegation (through its head's devices, or a witness
key the delegation registered in the roster) witness the log; ``external`` adds outside
witnesses.  The :class:`WitnessPolicy` says which cosignatures make a checkpoint trusted
(``rule``: ``parties`` — the mediator plus a strict majority of the delegations — or
``count`` — ``min(quorum, number of witnesses)`` distinct witnesses) and how old they
may be before a client refuses to act on them (``max_age``).  The evaluation itself is
:mod:`protocol.quorum`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, cast

from protocol import crypto
from protocol.encoding import Fields, JSONValue, b64e, canonical, parse
from protocol.errors import BadValueError, WrongTalksError
from protocol.keys import DeviceKeys, DevicePublic, readable_digits
from protocol.merkle import LeafHash, leaf_hash
from protocol.names import check_name
from protocol.records import ID_RE, NAME_MAX, VERSION, TalksId, sign_record, verify_record

ORIGIN_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:-]{0,199}")
WITNESS_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:-]{0,199}")
MAX_EXTERNAL_WITNESSES = 32
RULE_PARTIES = "parties"
RULE_COUNT = "count"
RULES = (RULE_PARTIES, RULE_COUNT)
DEFAULT_MAX_AGE = 600  # seconds: ten minutes
MIN_MAX_AGE = 10
MAX_MAX_AGE = 30 * 24 * 3600


def witness_name(origin: str, witness_id: str) -> str:
    """The C2SP key name under which a Docket witness cosigns checkpoints."""
    return f"{origin}/witness/{witness_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ExternalWitness:
    name: str
    key: bytes

    def __post_init__(self) -> None:
        if not WITNESS_NAME_RE.fullmatch(self.name):
            raise BadValueError("witness name is invalid")
        crypto.check_signing_key(self.key)


@dataclass(frozen=True, slots=True, kw_only=True)
class WitnessPolicy:
    """Which cosignatures make a checkpoint trusted, and for how long they stay fresh.

    ``rule`` ``parties``: the mediator's witness and more than half of the delegations'
    witnesses must have cosigned (and at least ``quorum`` distinct witness keys in all).
    ``rule`` ``count``: ``min(quorum, number of witnesses)`` distinct witness keys.
    ``fresh``: clients act (seal, sign a change or a receipt) only on a checkpoint whose
    quorum cosigned it at most ``max_age`` seconds ago by the client's clock.  Without
    it they act on any view the log key signed and a split view is caught only when
    views meet; ``talks found`` sets it.
    """

    quorum: int
    external: tuple[ExternalWitness, ...] = ()
    rule: str = RULE_COUNT
    max_age: int = DEFAULT_MAX_AGE
    fresh: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.quorum <= 64:
            raise BadValueError("witness quorum must be between 1 and 64")
        if self.rule not in RULES:
            raise BadValueError(f"witness rule must be one of {RULES}")
        if not isinstance(self.fresh, bool):
            raise BadValueError("witness fresh must be a boolean")
        if isinstance(self.max_age, bool) or not MIN_MAX_AGE <= self.max_age <= MAX_MAX_AGE:
            raise BadValueError(
                f"witness max_age must be between {MIN_MAX_AGE} and {MAX_MAX_AGE} seconds"
            )
        # One value, one encoding: keep the witnesses in the name order the wire form
        # uses, so a policy round-trips and equals the one a genesis parses back.
        object.__setattr__(self, "external", tuple(sorted(self.external, key=lambda w: w.name)))
        names = [w.name for w in self.external]
        if len(names) > MAX_EXTERNAL_WITNESSES or len(set(names)) != len(names):
            raise BadValueError("external witnesses must be distinct (at most 32)")

    @classmethod
    def parties(
        cls, *, external: tuple[ExternalWitness, ...] = (), max_age: int = DEFAULT_MAX_AGE
    ) -> WitnessPolicy:
        """The default: the mediator plus a majority of the delegations."""
        return cls(quorum=1, external=external, rule=RULE_PARTIES, max_age=max_age, fresh=True)

    @property
    def single_witness(self) -> bool:
        """True when one witness alone can make a checkpoint trusted (host + that party
        could then fork the log unseen)."""
        return self.rule == RULE_COUNT and self.quorum == 1

    def describe(self) -> str:
        """The policy in words, as ``talks found`` prints it."""
        if self.rule == RULE_PARTIES:
            text = "the mediator's witness and a majority of the delegations' witnesses"
            if self.quorum > 1:
                text += f", at least {self.quorum} witnesses in all"
        else:
            text = f"any {self.quorum} distinct witness{'es' if self.quorum > 1 else ''}"
        if self.external:
            text += f"; outside witnesses: {', '.join(w.name for w in self.external)}"
        if not self.fresh:
            return f"{text}; clients act on any signed view (no fresh quorum required)"
        return f"{text}; clients act only on a quorum cosigned in the last {self.max_age} s"

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "external": [
                {"key": b64e(w.key), "name": w.name}
                for w in sorted(self.external, key=lambda w: w.name)
            ],
            "fresh": self.fresh,
            "max_age": self.max_age,
            "quorum": self.quorum,
            "rule": self.rule,
        }

    @classmethod
    def from_json(cls, value: JSONValue, what: str = "genesis.witness") -> WitnessPolicy:
        f = Fields(value, what)
        quorum = f.int("quorum", lo=1, hi=64)
        rule = f.str("rule", max_len=16)
        max_age = f.int("max_age", lo=MIN_MAX_AGE, hi=MAX_MAX_AGE)
        fresh = f.bool("fresh")
        external = []
        for item in f.list("external", max_items=MAX_EXTERNAL_WITNESSES):
            w = Fields(item, f"{what}.external")
            external.append(
                ExternalWitness(name=w.str("name", max_len=200), key=w.bytes("key", length=32))
            )
            w.done()
        f.done()
        names = [w.name for w in external]
        if names != sorted(names):
            raise BadValueError("external witnesses must be sorted by name")
        return cls(quorum=quorum, external=tuple(external), rule=rule, max_age=max_age, fresh=fresh)


@dataclass(frozen=True, slots=True, kw_only=True)
class Genesis:
    """The founding record.  Construct with :func:`found`; read with :meth:`from_bytes`."""

    origin: str
    title: str
    mediator: str
    mediator_name: str
    mediator_device: DevicePublic
    log_key: bytes
    witness: WitnessPolicy
    time: int
    sig: bytes = field(repr=False)
    raw: bytes = field(repr=False, compare=False)

    def __post_init__(self) -> None:
        if not ORIGIN_RE.fullmatch(self.origin):
            raise BadValueError("genesis.origin is invalid")
        if not ID_RE.fullmatch(self.mediator):
            raise BadValueError("genesis.mediator is not a valid id")
        crypto.check_signing_key(self.log_key)

    @property
    def talks_id(self) -> TalksId:
        return TalksId(leaf_hash(self.raw))

    @property
    def leaf(self) -> LeafHash:
        return leaf_hash(self.raw)

    @property
    def fingerprint(self) -> str:
        """The talks fingerprint people compare aloud."""
        return readable_digits(self.talks_id, groups=8)

    @property
    def log_name(self) -> str:
        """The C2SP key name of the server's checkpoint key."""
        return self.origin

    def to_bytes(self) -> bytes:
        return self.raw

    def to_json(self) -> dict[str, JSONValue]:
        value: dict[str, JSONValue] = parse(self.raw)
        return value

    @classmethod
    def from_json(cls, obj: JSONValue) -> Genesis:
        """Parse and verify a genesis object (signature by the mediator device)."""
        f = Fields(obj, "genesis")
        f.literal("t", "genesis")
        f.version(VERSION)
        med = Fields(f.obj("mediator"), "genesis.mediator")
        mediator = med.str("id", pattern=ID_RE, max_len=64)
        mediator_name = check_name(med.str("name", max_len=NAME_MAX), "genesis.mediator.name")
        device = DevicePublic.from_json(med.raw("device"), "genesis.mediator.device")
        med.done()
        genesis = cls(
            origin=f.str("origin", max_len=200, pattern=ORIGIN_RE),
            title=check_name(f.str("title", max_len=NAME_MAX), "genesis.title"),
            mediator=mediator,
            mediator_name=mediator_name,
            mediator_device=device,
            log_key=f.bytes("log_key", length=32),
            witness=WitnessPolicy.from_json(f.raw("witness")),
            time=f.int("time"),
            sig=f.bytes("sig", length=64),
            raw=canonical(obj),
        )
        f.done()
        verify_record(device.sign_pk, crypto.CTX_GENESIS, cast(dict[str, JSONValue], obj))
        return genesis

    @classmethod
    def from_bytes(cls, data: bytes) -> Genesis:
        return cls.from_json(parse(data))

    def check_talks(self, talks: bytes) -> None:
        if not crypto.equal(talks, self.talks_id):
            raise WrongTalksError("object belongs to other talks")


def found(
    *,
    mediator_keys: DeviceKeys,
    mediator: str,
    mediator_name: str,
    origin: str,
    title: str,
    log_key: bytes,
    witness: WitnessPolicy,
    time: int,
) -> Genesis:
    """Create and sign a genesis record as the mediator."""
    body: dict[str, Any] = {
        "log_key": b64e(log_key),
        "mediator": {
            "device": mediator_keys.public.to_json(),
            "id": mediator,
            "name": mediator_name,
        },
        "origin": origin,
        "t": "genesis",
        "time": time,
        "title": title,
        "v": VERSION,
        "witness": witness.to_json(),
    }
    signed = sign_record(mediator_keys.signing, crypto.CTX_GENESIS, body)
    return Genesis.from_json(signed)
