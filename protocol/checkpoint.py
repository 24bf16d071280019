"""C2SP signed notes, tlog-checkpoint and tlog-cosignature/v1, byte for byte.

Theory of operation
===================

A **signed note** (c2sp.org/signed-note) is a UTF-8 text ending in a newline, a blank
line, then one or more signature lines ``— <name> <base64(key id || signature)>\\n``
(em dash U+2014, standard padded base64).  The text is everything up to the *last*
blank line, so it may itself contain blank lines (the spec's own example does).  A key
is named by ``(name, key id)`` where ``key id = SHA-256(name || 0x0A || type ||
public key)[:4]``; type 0x01 is a plain Ed25519 note signature, 0x04 an Ed25519
cosignature.  Verifiers ignore signatures whose ``(name, key id)`` they do not know, but
:func:`parse_note` keeps them so a note re-encodes to the same bytes.

A **checkpoint** (c2sp.org/tlog-checkpoint) is a note whose text is the origin line,
the tree size in decimal without leading zeros, the base64 root hash and optional
non-empty extension lines.  The log signs it with its Ed25519 note key.

A **cosignature** (c2sp.org/tlog-cosignature, ``cosignature/v1``) is one more signature
line, by a witness, whose payload is ``key id(4) || timestamp(8, big-endian) ||
Ed25519(64)`` over ``"cosignature/v1\\ntime <timestamp>\\n" || checkpoint body``.  The
Ed25519 cosignature does not commit to the witness's name, so two witnesses sharing a
public key would be one witness twice: :func:`require_quorum` counts distinct keys.

A **witness** (:class:`WitnessState`) remembers the last checkpoint it cosigned and
accepts a new one only with a consistency proof from it: smaller is a rollback, same
size with another root or a failing proof is a fork.

Parsing is strict and total: any input that is not exactly the canonical encoding raises
:class:`CheckpointError` (never ``ValueError``, ``IndexError`` or ``UnicodeError``).
Limits: notes up to 1 MiB and 100 signature lines (the spec requires accepting 16).
Nothing here reads the clock: cosignature timestamps are parameters.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NewType

from protocol import crypto
from protocol.encoding import MAX_SAFE_INT, Fields, JSONValue, b64e
from protocol.errors import (
    BadSignatureError,
    CheckpointError,
    ForkError,
    ProofError,
    ProtocolError,
    QuorumError,
    RollbackError,
)
from protocol.merkle import EMPTY_ROOT, HASH_LEN, verify_consistency

KeyId = NewType("KeyId", bytes)
"""The 4-byte key id of a note signature line."""

KEY_ID_LEN = 4
SIG_TYPE_ED25519 = 0x01
SIG_TYPE_COSIGNATURE_V1 = 0x04
MAX_NOTE_SIZE = 1 << 20
MAX_SIGNATURES = 100
MAX_TIMESTAMP = 2**63 - 1
MAX_CHECKPOINT_SIZE = MAX_SAFE_INT
"""Checkpoint sizes stay within the canonical-JSON integer range used everywhere else."""

COSIGNATURE_HEADER = b"cosignature/v1\n"
COSIGNATURE_PAYLOAD_LEN = 8 + crypto.SIGNATURE_LEN

_SIG_PREFIX = "\u2014 "  # em dash, space
_STD_B64_RE = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
_SIZE_RE = re.compile(r"0|[1-9][0-9]{0,15}")
_CONTROL_RE = re.compile(r"[\x00-\x09\x0b-\x1f]")


# --- small strict helpers ---------------------------------------------------------------


def _std_b64e(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _std_b64d(text: str, what: str) -> bytes:
    """Strict standard padded base64: the one canonical encoding or CheckpointError."""
    if not _STD_B64_RE.fullmatch(text):
        raise CheckpointError(f"{what}: not standard base64")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:  # pragma: no cover - the regex guards this
        raise CheckpointError(f"{what}: not standard base64") from exc
    if _std_b64e(raw) != text:
        raise CheckpointError(f"{what}: non-canonical base64")
    return raw


def _decode_text(data: object, what: str) -> str:
    """UTF-8 without ASCII control characters other than newline, within the size limit."""
    if not isinstance(data, bytes):
        raise CheckpointError(f"{what}: expected bytes")
    if len(data) > MAX_NOTE_SIZE:
        raise CheckpointError(f"{what}: larger than {MAX_NOTE_SIZE} bytes")
    try:
        text = data.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"{what}: not UTF-8") from exc
    if _CONTROL_RE.search(text):
        raise CheckpointError(f"{what}: contains a control character")
    return text


def _check_line(value: object, what: str) -> str:
    """A non-empty line of note text: a string without control characters or newlines."""
    if not isinstance(value, str) or not value:
        raise CheckpointError(f"{what}: must be a non-empty string")
    if "\n" in value or _CONTROL_RE.search(value):
        raise CheckpointError(f"{what}: contains a control character or newline")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CheckpointError(f"{what}: not encodable as UTF-8") from exc
    return value


def _check_name(name: object) -> str:
    """Key names: non-empty, no Unicode spaces, no '+', no control characters."""
    if not isinstance(name, str) or not name:
        raise CheckpointError("key name must be a non-empty string")
    if "+" in name or any(c.isspace() for c in name):
        raise CheckpointError("key name must not contain spaces or '+'")
    _check_line(name, "key name")
    return name


def key_id(name: str, sig_type: int, public_key: bytes) -> KeyId:
    """C2SP key id: ``SHA-256(name || 0x0A || sig_type || public_key)[:4]``."""
    _check_name(name)
    if not 0 <= sig_type <= 0xFF:
        raise CheckpointError("signature type must be one byte")
    return KeyId(crypto.sha256(name.encode("utf-8"), b"\n", bytes([sig_type]), public_key)[:4])


def note_key_id(name: str, public_key: bytes) -> KeyId:
    """Key id of an Ed25519 note signer (type 0x01), e.g. the log's checkpoint key."""
    return key_id(name, SIG_TYPE_ED25519, public_key)


def cosignature_key_id(name: str, public_key: bytes) -> KeyId:
    """Key id of an Ed25519 ``cosignature/v1`` witness key (type 0x04)."""
    return key_id(name, SIG_TYPE_COSIGNATURE_V1, public_key)


def vkey(name: str, public_key: bytes, sig_type: int = SIG_TYPE_COSIGNATURE_V1) -> str:
    """A C2SP verifier key line, ``<name>+<hex key id>+<base64(type || key)>`` (a witness
    key by default: type 0x04, ``cosignature/v1``)."""
    _check_public_key(public_key, "vkey")
    kid = key_id(name, sig_type, public_key)
    return f"{name}+{kid.hex()}+{_std_b64e(bytes([sig_type]) + public_key)}"


def parse_vkey(text: str) -> tuple[str, bytes, int]:
    """``(name, Ed25519 public key, signature type)`` from a vkey line; the key id must
    match.  Types 0x01 (note signer) and 0x04 (``cosignature/v1``) are accepted."""
    parts = text.strip().split("+", 2)  # the base64 key may itself hold "+"
    if len(parts) != 3:
        raise CheckpointError("a vkey is NAME+KEYID+KEY")
    name, kid_hex, key_text = parts
    _check_name(name)
    if not re.fullmatch(r"[0-9a-f]{8}", kid_hex):
        raise CheckpointError("vkey key id must be 8 lowercase hex digits")
    raw = _std_b64d(key_text, "vkey key")
    if len(raw) != 33 or raw[0] not in (SIG_TYPE_ED25519, SIG_TYPE_COSIGNATURE_V1):
        raise CheckpointError("vkey must hold an Ed25519 key of type 0x01 or 0x04")
    public_key = raw[1:]
    _check_public_key(public_key, "vkey")
    if key_id(name, raw[0], public_key).hex() != kid_hex:
        raise CheckpointError("vkey key id does not match its name and key")
    return name, public_key, raw[0]


def _check_public_key(public_key: bytes, what: str) -> None:
    try:
        crypto.check_signing_key(public_key)
    except ProtocolError as exc:
        raise CheckpointError(f"{what}: {exc.detail}") from exc


# --- signed notes -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class NoteSignature:
    """One signature line: key name, 4-byte key id and the signature bytes after it."""

    name: str
    key_id: KeyId
    sig_bytes: bytes

    def __post_init__(self) -> None:
        _check_name(self.name)
        if not isinstance(self.key_id, bytes) or len(self.key_id) != KEY_ID_LEN:
            raise CheckpointError("key id must be 4 bytes")
        if not isinstance(self.sig_bytes, bytes) or not self.sig_bytes:
            raise CheckpointError("signature must not be empty")

    def line(self) -> str:
        """The signature line, ``— <name> <base64(key id || signature)>\\n``."""
        return f"{_SIG_PREFIX}{self.name} {_std_b64e(self.key_id + self.sig_bytes)}\n"

    @classmethod
    def from_line(cls, line: str) -> NoteSignature:
        """Parse one signature line, with or without its final newline."""
        if not isinstance(line, str):
            raise CheckpointError("signature line must be a string")
        body = line.removesuffix("\n")
        if not body.startswith(_SIG_PREFIX):
            raise CheckpointError("signature line must start with an em dash and a space")
        parts = body[len(_SIG_PREFIX) :].split(" ")
        if len(parts) != 2:
            raise CheckpointError("signature line must be '— <name> <signature>'")
        name, encoded = parts
        _check_name(name)
        raw = _std_b64d(encoded, "signature")
        if len(raw) <= KEY_ID_LEN:
            raise CheckpointError("signature is too short")
        return cls(name=name, key_id=KeyId(raw[:KEY_ID_LEN]), sig_bytes=raw[KEY_ID_LEN:])


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedNote:
    """A parsed note: its text (with final newline) and every signature, in order."""

    text: bytes
    signatures: tuple[NoteSignature, ...]

    def __post_init__(self) -> None:
        text = _decode_text(self.text, "note text")
        if not text.endswith("\n"):
            raise CheckpointError("note text must end with a newline")
        if not isinstance(self.signatures, tuple) or not all(
            isinstance(s, NoteSignature) for s in self.signatures
        ):
            raise CheckpointError("signatures must be a tuple of NoteSignature")
        if not 1 <= len(self.signatures) <= MAX_SIGNATURES:
            raise CheckpointError(f"a note needs 1 to {MAX_SIGNATURES} signatures")

    def to_bytes(self) -> bytes:
        """The exact note encoding (the inverse of :func:`parse_note`)."""
        return format_note(self.text, [s.line() for s in self.signatures])


def parse_note(data: bytes) -> SignedNote:
    """Parse a signed note strictly.  Signatures are not verified here.

    Raises :class:`CheckpointError` for anything but a well-formed note.
    """
    # 1. Size, UTF-8, no control characters but newline.
    text = _decode_text(data, "note")
    # 2. The text ends at the last blank line; the signature block follows it.
    split = text.rfind("\n\n")
    if split < 0:
        raise CheckpointError("note has no blank line before its signatures")
    body, block = text[: split + 1], text[split + 2 :]
    # 3. One or more signature lines, each ending in a newline, nothing after them.
    if not block.endswith("\n"):
        raise CheckpointError("note must end with a newline after its signatures")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise CheckpointError(f"note has more than {MAX_SIGNATURES} signatures")
    signatures = tuple(NoteSignature.from_line(line) for line in lines)
    return SignedNote(text=body.encode("utf-8"), signatures=signatures)


def format_note(body: bytes, sig_lines: Sequence[str]) -> bytes:
    """Assemble ``body || "\\n" || signature lines``; every part is validated.

    ``sig_lines`` are lines as returned by :func:`sign_checkpoint` or :func:`cosign`.
    """
    signatures = tuple(NoteSignature.from_line(line) for line in sig_lines)
    SignedNote(text=body, signatures=signatures)  # validates text and the count
    out = body + b"\n" + "".join(s.line() for s in signatures).encode("utf-8")
    if len(out) > MAX_NOTE_SIZE:
        raise CheckpointError(f"note larger than {MAX_NOTE_SIZE} bytes")
    return out


# --- checkpoints ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Checkpoint:
    """A tlog-checkpoint note body: origin, tree size, root hash, extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "checkpoint origin")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise CheckpointError("checkpoint size must be an integer")
        if not 0 <= self.size <= MAX_CHECKPOINT_SIZE:
            raise CheckpointError("checkpoint size out of range")
        if not isinstance(self.root, bytes) or len(self.root) != HASH_LEN:
            raise CheckpointError("checkpoint root must be 32 bytes")
        if not isinstance(self.extensions, tuple):
            raise CheckpointError("checkpoint extensions must be a tuple")
        for ext in self.extensions:
            _check_line(ext, "checkpoint extension line")
        if len(self.body()) > MAX_NOTE_SIZE:
            raise CheckpointError("checkpoint body too large")

    def body(self) -> bytes:
        """The note text: origin, decimal size, base64 root, extension lines."""
        lines = [self.origin, str(self.size), _std_b64e(self.root), *self.extensions]
        return "".join(f"{line}\n" for line in lines).encode("utf-8")

    @classmethod
    def from_body(cls, data: bytes) -> Checkpoint:
        """Parse a checkpoint body strictly (the inverse of :meth:`body`)."""
        text = _decode_text(data, "checkpoint")
        if not text.endswith("\n"):
            raise CheckpointError("checkpoint must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError("checkpoint needs origin, size and root lines")
        if not all(lines):
            raise CheckpointError("checkpoint lines must not be empty")
        origin, size_text, root_text, *extensions = lines
        if not _SIZE_RE.fullmatch(size_text):
            raise CheckpointError("checkpoint size must be decimal without leading zeros")
        root = _std_b64d(root_text, "checkpoint root")
        if len(root) != HASH_LEN:
            raise CheckpointError("checkpoint root must be 32 bytes")
        return cls(origin=origin, size=int(size_text), root=root, extensions=tuple(extensions))


def sign_checkpoint(cp: Checkpoint, name: str, key: crypto.SigningKey) -> str:
    """The log's Ed25519 note signature line (type 0x01 key id) over ``cp.body()``."""
    kid = note_key_id(name, key.public_bytes())
    return NoteSignature(name=name, key_id=kid, sig_bytes=key.sign_note(cp.body())).line()


def open_checkpoint(
    note_bytes: bytes, *, origin: str, log_name: str, log_key: bytes
) -> tuple[Checkpoint, SignedNote]:
    """Parse a checkpoint note and verify the log's signature and the origin.

    Other signatures (cosignatures, unknown keys) are kept in the returned note but not
    checked here.  Raises :class:`CheckpointError`.
    """
    # 1. Parse the note strictly.
    note = parse_note(note_bytes)
    # 2. Find the signatures by the log's (name, key id); there must be at least one.
    _check_public_key(log_key, "log key")
    kid = note_key_id(log_name, log_key)
    mine = [s for s in note.signatures if s.name == log_name and crypto.equal(s.key_id, kid)]
    if not mine:
        raise CheckpointError("checkpoint is not signed by the log")
    # 3. Every one of them must verify: a bad signature by a known key rejects the note.
    for sig in mine:
        try:
            crypto.verify_note(log_key, note.text, sig.sig_bytes)
        except BadSignatureError as exc:
            raise CheckpointError("the log's checkpoint signature does not verify") from exc
    # 4. Only now read the text, and require the expected origin.
    cp = Checkpoint.from_body(note.text)
    if cp.origin != origin:
        raise CheckpointError("checkpoint is for another log origin")
    return cp, note


# --- cosignatures -----------------------------------------------------------------------


def cosignature_message(cp: Checkpoint, timestamp: int) -> bytes:
    """The signed message: ``cosignature/v1\\ntime <timestamp>\\n`` and the body."""
    _check_timestamp(timestamp)
    return COSIGNATURE_HEADER + b"time %d\n" % timestamp + cp.body()


def _check_timestamp(timestamp: int) -> None:
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise CheckpointError("cosignature timestamp must be an integer")
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise CheckpointError("cosignature timestamp out of range")


def cosign(cp: Checkpoint, witness_name: str, key: crypto.SigningKey, *, timestamp: int) -> str:
    """A witness's ``cosignature/v1`` signature line on ``cp`` at POSIX ``timestamp``."""
    message = cosignature_message(cp, timestamp)
    kid = cosignature_key_id(witness_name, key.public_bytes())
    payload = timestamp.to_bytes(8, "big") + key.sign_note(message)
    return NoteSignature(name=witness_name, key_id=kid, sig_bytes=payload).line()


def verify_cosignature(
    cp: Checkpoint, sig: NoteSignature, witness_name: str, witness_key: bytes
) -> int:
    """Verify one cosignature line by ``witness_name``; return its timestamp.

    Raises :class:`CheckpointError`.
    """
    # 1. The line must name this witness and this key (type 0x04 key id).
    _check_public_key(witness_key, "witness key")
    if sig.name != witness_name or not crypto.equal(
        sig.key_id, cosignature_key_id(witness_name, witness_key)
    ):
        raise CheckpointError("not a cosignature by this witness key")
    # 2. timestamp(8) || Ed25519(64), timestamp at most 2**63 - 1.
    if len(sig.sig_bytes) != COSIGNATURE_PAYLOAD_LEN:
        raise CheckpointError("cosignature must be 72 bytes after the key id")
    timestamp = int.from_bytes(sig.sig_bytes[:8], "big")
    _check_timestamp(timestamp)
    # 3. The signature over the cosignature/v1 message.
    try:
        crypto.verify_note(witness_key, cosignature_message(cp, timestamp), sig.sig_bytes[8:])
    except BadSignatureError as exc:
        raise CheckpointError("cosignature does not verify") from exc
    return timestamp


def cosigners(cp: Checkpoint, note: SignedNote, witnesses: Mapping[str, bytes]) -> dict[str, int]:
    """Witnesses (name -> latest timestamp) with at least one valid cosignature on ``cp``.

    Signatures by unknown names or keys, and invalid cosignatures, count for nothing; a
    witness that cosigned twice appears once.  Raises :class:`CheckpointError` if the
    note is not a note of ``cp``.
    """
    if note.text != cp.body():
        raise CheckpointError("note text is not this checkpoint")
    found: dict[str, int] = {}
    for sig in note.signatures:
        key = witnesses.get(sig.name)
        if key is None:
            continue
        try:
            timestamp = verify_cosignature(cp, sig, sig.name, key)
        except CheckpointError:
            continue
        found[sig.name] = max(timestamp, found.get(sig.name, 0))
    return found


def require_quorum(
    cp: Checkpoint, note: SignedNote, witnesses: Mapping[str, bytes], quorum: int
) -> None:
    """Require valid cosignatures from at least ``quorum`` distinct witness keys.

    Witnesses are counted by public key, not by name: a ``cosignature/v1`` signature does
    not commit to the witness's name, so one key listed under two names could be claimed
    twice.  Raises :class:`QuorumError`.
    """
    if quorum < 0:
        raise ValueError("quorum must not be negative")  # programming error
    valid = cosigners(cp, note, witnesses)
    keys = {bytes(witnesses[name]) for name in valid}
    if len(keys) < quorum:
        raise QuorumError(f"checkpoint has {len(keys)} of {quorum} witness cosignatures needed")


# --- witness rule -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class WitnessState:
    """The last checkpoint a witness (or client) accepted for one log origin."""

    origin: str
    size: int
    root: bytes

    def __post_init__(self) -> None:
        Checkpoint(origin=self.origin, size=self.size, root=self.root)  # same field rules
        if self.size == 0 and not crypto.equal(self.root, EMPTY_ROOT):
            raise CheckpointError("the empty tree's root must be SHA-256 of nothing")

    @classmethod
    def initial(cls, origin: str) -> WitnessState:
        """The state before any checkpoint: the empty tree."""
        return cls(origin=origin, size=0, root=EMPTY_ROOT)

    @classmethod
    def from_checkpoint(cls, cp: Checkpoint) -> WitnessState:
        """The state after accepting ``cp`` (e.g. a checkpoint pinned out of band)."""
        return cls(origin=cp.origin, size=cp.size, root=cp.root)

    def check_next(self, new: Checkpoint, proof: Sequence[bytes]) -> None:
        """Accept ``new`` only if it extends this state; return ``None`` or raise.

        :class:`CheckpointError` for another origin, :class:`RollbackError` if smaller,
        :class:`ForkError` for another root at the same size or a failing consistency
        proof.
        """
        # 1. Same log.
        if new.origin != self.origin:
            raise CheckpointError("checkpoint is for another log origin")
        # 2. Never go back.
        if new.size < self.size:
            raise RollbackError(f"checkpoint size {new.size} is below {self.size} already seen")
        # 3. Same size: the root must not change (and there is nothing to prove).
        if new.size == self.size:
            if not crypto.equal(new.root, self.root):
                raise ForkError(f"two different roots for tree size {new.size}")
            return
        # 4. Larger: the consistency proof must connect the two roots.
        try:
            verify_consistency(self.size, new.size, self.root, new.root, proof)
        except ProofError as exc:
            raise ForkError(f"checkpoint is not consistent: {exc.detail}") from exc

    def advance(self, new: Checkpoint) -> WitnessState:
        """The state after accepting ``new``; call only after :meth:`check_next` passed."""
        if new.origin != self.origin:
            raise CheckpointError("checkpoint is for another log origin")
        if new.size < self.size:
            raise RollbackError(f"checkpoint size {new.size} is below {self.size} already seen")
        return WitnessState(origin=new.origin, size=new.size, root=new.root)

    def to_json(self) -> dict[str, JSONValue]:
        """JSON form for persisting (bytes as unpadded base64url)."""
        return {"origin": self.origin, "root": b64e(self.root), "size": self.size}

    @classmethod
    def from_json(cls, value: JSONValue, what: str = "witness state") -> WitnessState:
        """Inverse of :meth:`to_json`; rejects missing, unknown and invalid fields."""
        f = Fields(value, what)
        origin = f.str("origin", max_len=MAX_NOTE_SIZE)
        root = f.bytes("root", length=HASH_LEN)
        size = f.int("size", hi=MAX_CHECKPOINT_SIZE)
        f.done()
        return cls(origin=origin, size=size, root=root)
