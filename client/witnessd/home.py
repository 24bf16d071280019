"""The witness home directory: its key, its name per log and the logs it witnesses.

Layout (directory mode 0700)::

    witness.key    the Ed25519 seed, standard base64, mode 0600
    witness.json   {"id": .., "logs": [{"log_key", "log_name", "name", "origin"}],
                    "t": "docket-witness", "v": 1}          (canonical JSON)
    witness.db     the cosigned state per origin (:mod:`client.witnessd.store`)

The key is not encrypted: a witness answers unattended.  Protect the machine and the
directory instead.  ``name`` is the C2SP key name the witness cosigns under for that
origin, by Docket's convention :func:`protocol.genesis.witness_name` (``<origin>/witness/
<id>``), the name the mediator lists in the genesis policy.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from pathlib import Path

from protocol import crypto
from protocol.checkpoint import SIG_TYPE_COSIGNATURE_V1, cosignature_key_id
from protocol.encoding import Fields, JSONValue, b64d, b64e, canonical, parse
from protocol.errors import ProtocolError
from protocol.genesis import ORIGIN_RE, WITNESS_NAME_RE, witness_name

KEY_FILE = "witness.key"
CONFIG_FILE = "witness.json"
DB_FILE = "witness.db"
MAX_LOGS = 256


class HomeError(Exception):
    """A witness home that is missing, malformed or would be overwritten (one line)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WitnessedLog:
    """One log this witness cosigns: its origin, its checkpoint key and our name for it."""

    origin: str
    log_key: bytes
    log_name: str
    name: str

    def __post_init__(self) -> None:
        if not ORIGIN_RE.fullmatch(self.origin):
            raise HomeError(f"invalid log origin {self.origin!r}")
        if not WITNESS_NAME_RE.fullmatch(self.name):
            raise HomeError(f"invalid witness name {self.name!r}")
        if not self.log_name or any(c.isspace() or c == "+" for c in self.log_name):
            raise HomeError(f"invalid log key name {self.log_name!r}")
        try:
            crypto.check_signing_key(self.log_key)
        except ProtocolError as exc:
            raise HomeError(f"log key for {self.origin}: {exc.detail}") from None

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "log_key": b64e(self.log_key),
            "log_name": self.log_name,
            "name": self.name,
            "origin": self.origin,
        }

    @classmethod
    def from_json(cls, value: JSONValue) -> WitnessedLog:
        f = Fields(value, "witness.logs")
        out = cls(
            log_key=f.bytes("log_key", length=32),
            log_name=f.str("log_name", max_len=200),
            name=f.str("name", max_len=200),
            origin=f.str("origin", max_len=200),
        )
        f.done()
        return out


def vkey(name: str, public: bytes) -> str:
    """The C2SP verifier key line ``<name>+<hex key id>+<base64(0x04 || key)>``."""
    kid = cosignature_key_id(name, public).hex()
    return f"{name}+{kid}+{base64.b64encode(bytes([SIG_TYPE_COSIGNATURE_V1]) + public).decode()}"


@dataclass(frozen=True, slots=True, kw_only=True)
class WitnessHome:
    """A loaded home: the directory, the key, the witness id and the logs."""

    path: Path
    key: crypto.SigningKey
    witness_id: str
    logs: tuple[WitnessedLog, ...]

    @property
    def db_path(self) -> Path:
        return self.path / DB_FILE

    @property
    def public(self) -> bytes:
        return self.key.public_bytes()

    def log(self, origin: str) -> WitnessedLog | None:
        for item in self.logs:
            if item.origin == origin:
                return item
        return None

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "id": self.witness_id,
            "logs": [item.to_json() for item in self.logs],
            "t": "docket-witness",
            "v": 1,
        }

    def describe(self) -> dict[str, JSONValue]:
        """What ``init`` prints: the public key and, per log, the name and vkey line."""
        return {
            "home": str(self.path),
            "id": self.witness_id,
            "key": b64e(self.public),
            "logs": [
                {"name": item.name, "origin": item.origin, "vkey": vkey(item.name, self.public)}
                for item in self.logs
            ],
        }


def new_log(origin: str, log_key: bytes, witness_id: str, name: str | None = None) -> WitnessedLog:
    """A witnessed log under Docket's naming convention (unless ``name`` is given)."""
    return WitnessedLog(
        origin=origin,
        log_key=log_key,
        log_name=origin,  # Docket's log key name is its origin (Genesis.log_name)
        name=name or witness_name(origin, witness_id),
    )


def create_home(
    path: Path, *, witness_id: str, logs: list[WitnessedLog], rng: crypto.Rng
) -> WitnessHome:
    """Create a new home (the directory may exist but must not hold a witness)."""
    if not witness_id or not WITNESS_NAME_RE.fullmatch(witness_id) or "/" in witness_id:
        raise HomeError("witness id must be letters, digits, '.', '_', ':' or '-'")
    if not logs:
        raise HomeError("name at least one log to witness")
    origins = [item.origin for item in logs]
    if len(set(origins)) != len(origins) or len(origins) > MAX_LOGS:
        raise HomeError("each origin at most once")
    if (path / KEY_FILE).exists() or (path / CONFIG_FILE).exists():
        raise HomeError(f"{path} already holds a witness")
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    key = crypto.SigningKey.generate(rng)
    home = WitnessHome(path=path, key=key, witness_id=witness_id, logs=tuple(logs))
    _write_new(path / KEY_FILE, base64.b64encode(key.seed_bytes()) + b"\n")
    _write_new(path / CONFIG_FILE, canonical(home.to_json()) + b"\n")
    return home


def _write_new(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def load_home(path: Path) -> WitnessHome:
    """Load a home created by :func:`create_home`; :class:`HomeError` if unusable."""
    try:
        raw_key = (path / KEY_FILE).read_bytes()
        raw_config = (path / CONFIG_FILE).read_bytes()
    except OSError as exc:
        raise HomeError(f"{path} is not a witness home: {exc.strerror}") from None
    if (path / KEY_FILE).stat().st_mode & 0o077:
        raise HomeError(f"{path / KEY_FILE} must not be readable by others (chmod 600)")
    try:
        seed = base64.b64decode(raw_key.strip(), validate=True)
        key = crypto.SigningKey.from_seed_bytes(seed)
    except (binascii.Error, ValueError, ProtocolError):
        raise HomeError(f"{path / KEY_FILE} is not a witness key") from None
    try:
        f = Fields(parse(raw_config.rstrip(b"\n")), "witness")
        f.literal("t", "docket-witness")
        f.version(1)
        witness_id = f.str("id", max_len=200)
        logs = tuple(WitnessedLog.from_json(v) for v in f.list("logs", max_items=MAX_LOGS))
        f.done()
    except ProtocolError as exc:
        raise HomeError(f"{path / CONFIG_FILE}: {exc.detail}") from None
    return WitnessHome(path=path, key=key, witness_id=witness_id, logs=logs)


def decode_log_key(text: str) -> bytes:
    """A log key given on the command line: base64url (Docket's form) or standard base64."""
    try:
        return b64d(text)
    except ProtocolError:
        pass
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise HomeError("the log key is not base64") from None
