"""The data directory: created by ``docket-server init``, read at every start.

Layout (the directory is 0700, secrets 0600)::

    DATA/checkpoint.key   the log's Ed25519 seed, base64url, one line
    DATA/docket.db        SQLite (WAL): the log, side tables, ciphertexts up to 64 KiB,
                          tokens, invitations
    DATA/checkpoint.txt   the latest signed checkpoint note
    DATA/blobs/           larger draft ciphertexts by SHA-256, and blobs/tmp for uploads
    DATA/server.lock      held (flock) by the one server serving the directory
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from protocol import crypto
from protocol.encoding import b64d, b64e
from protocol.errors import ProtocolError
from protocol.genesis import ORIGIN_RE
from server.settings import BLOB_DIR, DB_FILE, KEY_FILE, ConfigError
from server.storage.auth import get_meta_txn, set_meta_txn
from server.storage.db import connect, run_txn
from server.storage.migrations import SchemaError, migrate

FOUNDING_TOKEN_LEN = 32


@dataclass(frozen=True, slots=True, kw_only=True)
class InitResult:
    """What ``init`` created: the directory, its origin, log key and founding token."""

    data: Path
    origin: str
    log_key: bytes
    founding_token: bytes


def init_data_dir(data: Path, origin: str, *, keep: frozenset[str] = frozenset()) -> InitResult:
    """Create a new data directory: key, migrated database, one-time founding token.

    Only SHA-256 of the founding token is stored; the token itself is returned once.
    ``keep`` names entries that may already be in ``data`` (``retire`` keeps the
    retired log's archive and the lock).
    """
    if not ORIGIN_RE.fullmatch(origin):
        raise ConfigError(f"invalid origin {origin!r}: use letters, digits and ._/:-")
    if data.exists() and any(p.name not in keep for p in data.iterdir()):
        raise ConfigError(f"{data} exists and is not empty")
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(data, 0o700)  # mkdir's mode is filtered by the umask
    key = crypto.SigningKey.generate(os.urandom)
    fd = os.open(data / KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(b64e(key.seed_bytes()) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    (data / BLOB_DIR).mkdir(mode=0o700)
    (data / BLOB_DIR / "tmp").mkdir(mode=0o700)
    token = os.urandom(FOUNDING_TOKEN_LEN)
    conn = connect(data / DB_FILE)
    try:
        migrate(conn)

        def facts(c: sqlite3.Connection) -> None:
            set_meta_txn(c, "origin", origin.encode("utf-8"))
            set_meta_txn(c, "founding_token", crypto.sha256(token))

        run_txn(conn, facts)
    finally:
        conn.close()
    os.chmod(data / DB_FILE, 0o600)
    return InitResult(data=data, origin=origin, log_key=key.public_bytes(), founding_token=token)


def load_identity(data: Path) -> tuple[crypto.SigningKey, str]:
    """The log key and origin of an initialised data directory."""
    key_path = data / KEY_FILE
    db_path = data / DB_FILE
    if not db_path.is_file():
        raise ConfigError(f"{data} is not an initialised data directory (run docket-server init)")
    if not key_path.exists():
        raise ConfigError(
            f"the checkpoint key {key_path} is missing; a new key means a new log identity: "
            "put the log's checkpoint.key back (from a backup: docket-server restore --key), "
            "or retire this log under a new origin (docket-server retire)"
        )
    try:
        key = crypto.SigningKey(b64d(key_path.read_text().strip(), length=32, what="key"))
    except (OSError, UnicodeDecodeError, ProtocolError) as exc:
        raise ConfigError(f"cannot read the checkpoint key {key_path}: {exc}") from None
    if key_path.stat().st_mode & 0o077:
        raise ConfigError(f"{key_path} is readable by others: chmod 600 it")
    try:
        conn = connect(db_path)
        try:
            migrate(conn)
            origin = run_txn(conn, get_meta_txn, "origin")
        finally:
            conn.close()
    except (sqlite3.Error, SchemaError) as exc:
        raise ConfigError(f"cannot open the database {db_path}: {exc}") from None
    if origin is None:
        raise ConfigError(f"{db_path} has no origin: not initialised")
    return key, origin.decode("utf-8")


def lock_data_dir(data: Path) -> int:
    """Take the directory's exclusive lock, or fail: the log has exactly one writer.

    Returns the lock's file descriptor; the lock lasts until it is closed (or the
    process dies, so a killed server never leaves a stale lock behind).
    """
    fd = os.open(data / "server.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise ConfigError(f"another server is already serving {data}") from None
    return fd
