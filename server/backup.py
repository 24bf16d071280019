"""``docket-server backup``, ``verify-backup`` and ``restore``: one file holding a data
directory as of one commit.

Theory of operation
-------------------
A backup is an uncompressed tar file with these members, nothing else::

    manifest.json     canonical JSON: what the backup claims (below)
    docket.db         the database, copied with SQLite's online backup API
    checkpoint.txt    the latest checkpoint *inside that copy* (absent before the first)
    checkpoint.key    the log's signing key (absent with ``--no-key``)
    blobs/<hex>       every ciphertext file a logged draft in the copy names

1. **Consistent while serving.**  The database is copied in one read transaction
   (:func:`server.storage.snapshot.snapshot_db`), so the copy is one commit's state,
   WAL included, and the server keeps writing meanwhile.  ``checkpoint.txt`` is written
   from the copy's own latest checkpoint, never taken from the live directory (which
   may already be newer than the copy).  Blobs are written and fsynced before the
   commit that logs their draft and never removed while referenced, so every blob the
   copy names exists on disk when it is read; each is checked against its name.
2. **The manifest** states the origin, the log key, the tree size and root of the copy,
   the size of its latest signed checkpoint, the creation time and the SHA-256 and
   length of every other member.
3. **Verification** trusts nothing in the file: member names are a fixed pattern
   (regular files only, no links, no paths out of the archive, no duplicates); every
   member's hash and length must match the manifest and every manifest file must be
   there; ``PRAGMA integrity_check`` must pass; the tree is recomputed from the
   entries' bytes (each stored leaf must be the hash of its entry) and its size and
   root must equal the manifest's and the stored Merkle nodes'; the signed checkpoint
   must verify under the genesis' log key and its root must equal the recomputed root
   at its size; the key, when included, must be the genesis' log key.
4. **Restore** verifies first and writes only into a new or empty directory.  What a
   restore cannot know is whether the log grew after the backup was made: the server
   learns that at start-up from its witnesses and its high-water mark
   (:mod:`server.highwater`), and stays read-only when the store is behind.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sqlite3
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar

from protocol import crypto
from protocol.checkpoint import open_checkpoint
from protocol.encoding import JSONValue, b64d, b64e, canonical, parse
from protocol.errors import ProtocolError
from protocol.genesis import ORIGIN_RE, Genesis
from protocol.merkle import EMPTY_ROOT, Frontier, LeafHash, leaf_hash
from server.services.blobs import fsync_dir
from server.settings import BLOB_DIR, CHECKPOINT_FILE, DB_FILE, KEY_FILE
from server.storage.auth import get_meta_txn
from server.storage.log import (
    SqliteNodes,
    StoreMismatchError,
    each_entry_txn,
    latest_checkpoint_txn,
    log_size_txn,
)
from server.storage.snapshot import blob_hashes_txn, integrity_check, snapshot_db

T = TypeVar("T")

MANIFEST = "manifest.json"
FORMAT = "docket-backup"
VERSION = 1
MAX_MANIFEST = 64 * 1024 * 1024
CHUNK = 1024 * 1024
_MEMBER_RE = re.compile(
    rf"({re.escape(DB_FILE)}|{re.escape(CHECKPOINT_FILE)}|{re.escape(KEY_FILE)}"
    rf"|{BLOB_DIR}/[0-9a-f]{{64}})"
)


class BackupError(Exception):
    """A backup that cannot be made, read, verified or restored (one line, for the CLI)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FileEntry:
    """One member of the backup as the manifest lists it."""

    name: str
    sha256: bytes
    length: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    """What a backup claims to hold (``manifest.json``)."""

    origin: str
    log_key: bytes | None
    size: int
    root: bytes
    checkpoint_size: int
    created_ms: int
    key_included: bool
    files: tuple[FileEntry, ...]

    def to_json(self) -> dict[str, JSONValue]:
        """The manifest object (canonical JSON on disk)."""
        return {
            "checkpoint_size": self.checkpoint_size,
            "created": _utc(self.created_ms),
            "created_ms": self.created_ms,
            "files": [
                {"bytes": f.length, "name": f.name, "sha256": f.sha256.hex()} for f in self.files
            ],
            "key_included": self.key_included,
            "log_key": None if self.log_key is None else b64e(self.log_key),
            "origin": self.origin,
            "root": b64e(self.root),
            "size": self.size,
            "t": FORMAT,
            "v": VERSION,
        }

    @classmethod
    def from_bytes(cls, raw: bytes) -> Manifest:
        """Parse ``manifest.json`` strictly (:class:`BackupError` on anything odd)."""
        try:
            doc = parse(raw.removesuffix(b"\n"), max_size=MAX_MANIFEST)
            if not isinstance(doc, dict) or doc.get("t") != FORMAT or doc.get("v") != VERSION:
                raise BackupError("manifest.json is not a Docket backup manifest (version 1)")
            files = []
            raw_files = doc["files"]
            if not isinstance(raw_files, list):
                raise BackupError("manifest.json: files must be a list")
            for item in raw_files:
                if not isinstance(item, dict) or set(item) != {"bytes", "name", "sha256"}:
                    raise BackupError("manifest.json: a malformed file entry")
                name, digest, length = item["name"], item["sha256"], item["bytes"]
                if not isinstance(name, str) or not _MEMBER_RE.fullmatch(name):
                    raise BackupError(f"manifest.json: unexpected file name {name!r}")
                if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
                    raise BackupError(f"manifest.json: bad hash for {name}")
                if not isinstance(length, int) or isinstance(length, bool) or length < 0:
                    raise BackupError(f"manifest.json: bad length for {name}")
                files.append(FileEntry(name=name, sha256=bytes.fromhex(digest), length=length))
            log_key = doc["log_key"]
            origin = doc["origin"]
            if not isinstance(origin, str) or not ORIGIN_RE.fullmatch(origin):
                raise BackupError("manifest.json: invalid origin")
            ints = [doc[k] for k in ("size", "checkpoint_size", "created_ms")]
            if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in ints):
                raise BackupError("manifest.json: sizes and times must be integers")
            key_included = doc["key_included"]
            if not isinstance(key_included, bool):
                raise BackupError("manifest.json: key_included must be a boolean")
            return cls(
                origin=origin,
                log_key=None if log_key is None else b64d(log_key, length=32, what="log_key"),
                size=int(doc["size"]),
                root=b64d(doc["root"], length=32, what="root"),
                checkpoint_size=int(doc["checkpoint_size"]),
                created_ms=int(doc["created_ms"]),
                key_included=key_included,
                files=tuple(files),
            )
        except ProtocolError as exc:
            raise BackupError(f"manifest.json is not valid: {exc.detail}") from None
        except KeyError as exc:
            raise BackupError(f"manifest.json lacks {exc.args[0]!r}") from None


def _utc(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms // 1000))


def _hash_copy(src: IO[bytes], dest: Path, *, limit: int | None = None) -> tuple[bytes, int]:
    """Copy ``src`` into the new file ``dest`` (0600, fsynced); its SHA-256 and length."""
    digest = hashlib.sha256()
    total = 0
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        while chunk := src.read(CHUNK):
            total += len(chunk)
            if limit is not None and total > limit:
                raise BackupError(f"{dest.name} is larger than the manifest says")
            digest.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return digest.digest(), total


def _hash_file(path: Path) -> tuple[bytes, int]:
    digest = hashlib.sha256()
    total = 0
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            total += len(chunk)
    return digest.digest(), total


@contextmanager
def _scratch(near: Path) -> Iterator[Path]:
    """A private temporary directory beside ``near`` (same file system: renames work)."""
    tmp = Path(tempfile.mkdtemp(prefix=".docket-backup-", dir=near))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read_db(db: Path, fn: Callable[[sqlite3.Connection], T]) -> T:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None)
    try:
        conn.execute("BEGIN")
        return fn(conn)
    finally:
        conn.close()


# --- making a backup -----------------------------------------------------------------------


def create_backup(
    data: Path, out: Path, *, include_key: bool = True, now_ms: int | None = None
) -> Manifest:
    """Write a backup of the (possibly serving) data directory ``data`` to the new file
    ``out`` (module docstring, steps 1-2)."""
    db = data / DB_FILE
    if not db.is_file():
        raise BackupError(f"{data} is not a Docket data directory (no {DB_FILE})")
    if out.exists():
        raise BackupError(f"{out} already exists: choose a new file")
    key_path = data / KEY_FILE
    key_public: bytes | None = None
    if include_key:
        key_public = _key_public(key_path)
    created = int(time.time() * 1000) if now_ms is None else now_ms
    out.parent.mkdir(parents=True, exist_ok=True)
    with _scratch(out.parent) as tmp:
        try:
            snapshot_db(db, tmp / DB_FILE)
        except sqlite3.Error as exc:
            raise BackupError(f"cannot copy the database {db}: {exc}") from None
        facts = _read_db(tmp / DB_FILE, _facts_txn)
        files: list[FileEntry] = []
        if facts.checkpoint is not None:
            (tmp / CHECKPOINT_FILE).write_bytes(facts.checkpoint)
        (tmp / BLOB_DIR).mkdir()
        for ct_hash in sorted(facts.blobs):
            name = f"{BLOB_DIR}/{ct_hash.hex()}"
            try:
                with (data / name).open("rb") as src:
                    digest, _ = _hash_copy(src, tmp / name)
            except FileNotFoundError:
                raise BackupError(f"{name} is missing from {data}: the store is damaged") from None
            if digest != ct_hash:
                raise BackupError(f"{name} does not hash to its name: the store is damaged")
        if include_key:
            shutil.copyfile(key_path, tmp / KEY_FILE)
            os.chmod(tmp / KEY_FILE, 0o600)
        for name in _member_names(tmp):
            digest, length = _hash_file(tmp / name)
            files.append(FileEntry(name=name, sha256=digest, length=length))
        log_key = facts.log_key or key_public
        if (
            facts.log_key is not None
            and key_public is not None
            and not crypto.equal(facts.log_key, key_public)
        ):
            raise BackupError(f"{key_path} is not the key the genesis names")
        manifest = Manifest(
            origin=facts.origin,
            log_key=log_key,
            size=facts.size,
            root=facts.root,
            checkpoint_size=facts.checkpoint_size,
            created_ms=created,
            key_included=include_key,
            files=tuple(files),
        )
        (tmp / MANIFEST).write_bytes(canonical(manifest.to_json()) + b"\n")
        _write_tar(tmp, [MANIFEST, *(f.name for f in files)], out)
    return manifest


def _key_public(key_path: Path) -> bytes:
    try:
        seed = b64d(key_path.read_text().strip(), length=32, what="key")
    except FileNotFoundError:
        raise BackupError(
            f"the checkpoint key {key_path} is missing (pass --no-key to back up without it)"
        ) from None
    except (OSError, UnicodeDecodeError, ProtocolError) as exc:
        raise BackupError(f"cannot read the checkpoint key {key_path}: {exc}") from None
    return crypto.SigningKey(seed).public_bytes()


@dataclass(frozen=True, slots=True, kw_only=True)
class _Facts:
    origin: str
    log_key: bytes | None
    size: int
    root: bytes
    checkpoint: bytes | None
    checkpoint_size: int
    blobs: set[bytes]


def _facts_txn(conn: sqlite3.Connection) -> _Facts:
    raw_origin = get_meta_txn(conn, "origin")
    if raw_origin is None:
        raise BackupError("the database has no origin: not an initialised data directory")
    try:
        size = log_size_txn(conn)
        root = Frontier.from_reader(size, SqliteNodes(conn)).root() if size else EMPTY_ROOT
    except (StoreMismatchError, LookupError, ProtocolError) as exc:
        raise BackupError(f"the store is damaged: {exc}") from None
    log_key = None
    if size:
        (body,) = conn.execute("SELECT body FROM entries WHERE idx = 0").fetchone()
        try:
            log_key = Genesis.from_bytes(bytes(body)).log_key
        except ProtocolError as exc:
            raise BackupError(f"the stored genesis does not parse: {exc.detail}") from None
    latest = latest_checkpoint_txn(conn)
    return _Facts(
        origin=raw_origin.decode("utf-8"),
        log_key=log_key,
        size=size,
        root=root,
        checkpoint=None if latest is None else latest.note,
        checkpoint_size=0 if latest is None else latest.size,
        blobs=blob_hashes_txn(conn),
    )


def _member_names(root: Path) -> list[str]:
    names = [n for n in (DB_FILE, CHECKPOINT_FILE, KEY_FILE) if (root / n).is_file()]
    names += sorted(f"{BLOB_DIR}/{p.name}" for p in (root / BLOB_DIR).iterdir())
    return names


def _write_tar(root: Path, names: list[str], out: Path) -> None:
    tmp = out.with_name(out.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            with tarfile.open(fileobj=fh, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for name in names:
                    info = tar.gettarinfo(root / name, arcname=name)
                    info.uid = info.gid = 0
                    info.uname = info.gname = ""
                    info.mode = 0o600
                    with (root / name).open("rb") as src:
                        tar.addfile(info, src)
            fh.flush()
            os.fsync(fh.fileno())
        if out.exists():
            raise BackupError(f"{out} appeared while the backup was written")
        os.replace(tmp, out)
        fsync_dir(out.parent)
    finally:
        tmp.unlink(missing_ok=True)


# --- verifying ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Verified:
    """A backup that passed every check, unpacked into ``root``."""

    manifest: Manifest
    root: Path


def verify_backup(path: Path) -> Manifest:
    """Check a backup file completely (module docstring, step 3); its manifest.

    Raises :class:`BackupError` naming the first problem.
    """
    with tempfile.TemporaryDirectory(prefix="docket-verify-") as tmp:
        return _unpack_and_verify(path, Path(tmp)).manifest


def _unpack_and_verify(path: Path, dest: Path) -> Verified:
    manifest = _unpack(path, dest)
    _verify_unpacked(manifest, dest)
    return Verified(manifest=manifest, root=dest)


def _unpack(path: Path, dest: Path) -> Manifest:
    """Extract the members into ``dest`` (which exists and is empty), checking hashes."""
    try:
        tar = tarfile.open(path, mode="r:")  # noqa: SIM115 - closed by the with below
    except FileNotFoundError:
        raise BackupError(f"{path}: no such file") from None
    except (OSError, tarfile.TarError) as exc:
        raise BackupError(f"{path} is not a backup file (not a tar archive): {exc}") from None
    with tar:
        try:
            first = tar.next()
            if first is None or first.name != MANIFEST or not first.isfile():
                raise BackupError(f"{path}: the first member must be {MANIFEST}")
            if first.size > MAX_MANIFEST:
                raise BackupError(f"{path}: {MANIFEST} is too large")
            manifest = Manifest.from_bytes(_member_body(tar, first).read())
            expected = {f.name: f for f in manifest.files}
            if len(expected) != len(manifest.files):
                raise BackupError("manifest.json lists a file twice")
            (dest / BLOB_DIR).mkdir(mode=0o700)
            seen: set[str] = set()
            # tar.next(), not iteration: iterating starts again from the first member.
            while (member := tar.next()) is not None:
                name = member.name
                if name in seen:
                    raise BackupError(f"{path}: {name!r} appears twice")
                seen.add(name)
                entry = expected.get(name)
                if entry is None or not member.isfile() or not _MEMBER_RE.fullmatch(name):
                    raise BackupError(f"{path}: unexpected member {name!r}")
                if member.size != entry.length:
                    raise BackupError(
                        f"{name}: {member.size} bytes, the manifest says {entry.length}"
                    )
                body = _member_body(tar, member)
                digest, length = _hash_copy(body, dest / name, limit=entry.length)
                if length != entry.length or not crypto.equal(digest, entry.sha256):
                    raise BackupError(f"{name} does not match its hash in the manifest")
        except (OSError, tarfile.TarError) as exc:
            raise BackupError(f"{path} is truncated or damaged: {exc}") from None
    missing = sorted(set(expected) - seen)
    if missing:
        raise BackupError(f"{path} lacks {', '.join(missing[:3])} (listed in the manifest)")
    if (KEY_FILE in expected) != manifest.key_included:
        raise BackupError("manifest.json: key_included disagrees with the files")
    if DB_FILE not in expected:
        raise BackupError(f"{path} has no {DB_FILE}")
    return manifest


def _member_body(tar: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    body = tar.extractfile(member)
    if body is None:
        raise BackupError(f"{member.name!r} is not a regular file")
    return body


def _verify_unpacked(manifest: Manifest, root: Path) -> None:
    db = root / DB_FILE
    problems = integrity_check(db)
    if problems:
        raise BackupError(f"{DB_FILE} fails PRAGMA integrity_check: {problems[0]}")
    try:
        result = _read_db(db, lambda conn: _recompute_txn(conn, manifest))
    except sqlite3.Error as exc:
        raise BackupError(f"{DB_FILE} cannot be read: {exc}") from None
    for ct_hash in result:
        if not (root / BLOB_DIR / ct_hash.hex()).is_file():
            raise BackupError(f"{BLOB_DIR}/{ct_hash.hex()} is missing from the backup")
    for blob in (root / BLOB_DIR).iterdir():
        digest, _ = _hash_file(blob)
        if digest.hex() != blob.name:
            raise BackupError(f"{BLOB_DIR}/{blob.name} does not hash to its name")
    if manifest.key_included:
        public = _key_public(root / KEY_FILE)
        if manifest.log_key is None or not crypto.equal(public, manifest.log_key):
            raise BackupError("the checkpoint key in the backup is not the log's key")
    checkpoint_file = root / CHECKPOINT_FILE
    if manifest.checkpoint_size and not checkpoint_file.is_file():
        raise BackupError(f"the backup has a checkpoint but no {CHECKPOINT_FILE}")


def _recompute_txn(conn: sqlite3.Connection, manifest: Manifest) -> set[bytes]:
    """Recompute the tree from the entries and check it against everything; the blob
    hashes the backed-up drafts need."""
    raw_origin = get_meta_txn(conn, "origin")
    if raw_origin is None or raw_origin.decode("utf-8", "replace") != manifest.origin:
        raise BackupError("the database's origin is not the manifest's")
    latest = latest_checkpoint_txn(conn)
    want = 0 if latest is None else latest.size
    if want != manifest.checkpoint_size:
        raise BackupError("the latest stored checkpoint is not the one the manifest names")
    frontier = Frontier()
    root_at_checkpoint: list[bytes] = []
    genesis: list[Genesis] = []

    def visit(index: int, kind: str, leaf: bytes, body: bytes) -> None:
        if index == 0:
            try:
                genesis.append(Genesis.from_bytes(body))
            except ProtocolError as exc:
                raise BackupError(f"entry 0 is not a valid genesis: {exc.detail}") from None
        if not crypto.equal(leaf_hash(body), leaf):
            raise BackupError(f"entry {index}: the stored leaf is not the hash of its bytes")
        frontier.append(LeafHash(leaf))
        if frontier.size == want:
            root_at_checkpoint.append(frontier.root())

    try:
        each_entry_txn(conn, visit)
        size = log_size_txn(conn)
        stored = Frontier.from_reader(size, SqliteNodes(conn)).root() if size else EMPTY_ROOT
    except (StoreMismatchError, LookupError, ProtocolError) as exc:
        raise BackupError(f"the backed-up store is damaged: {exc}") from None
    if frontier.size != manifest.size or frontier.size != size:
        raise BackupError(
            f"the backup holds {frontier.size} entries, the manifest says {manifest.size}"
        )
    if not crypto.equal(frontier.root(), manifest.root):
        raise BackupError("the tree root recomputed from the entries is not the manifest's")
    if not crypto.equal(stored, frontier.root()):
        raise BackupError("the stored Merkle nodes disagree with the entries")
    if genesis:
        g = genesis[0]
        if g.origin != manifest.origin:
            raise BackupError("the genesis names another origin than the manifest")
        if manifest.log_key is None or not crypto.equal(g.log_key, manifest.log_key):
            raise BackupError("the genesis names another log key than the manifest")
    if latest is not None:
        if not genesis:
            raise BackupError("the backup has a checkpoint but no genesis")
        try:
            cp, _ = open_checkpoint(
                latest.note,
                origin=manifest.origin,
                log_name=manifest.origin,
                log_key=genesis[0].log_key,
            )
        except ProtocolError as exc:
            raise BackupError(f"the signed checkpoint does not verify: {exc.detail}") from None
        if cp.size != want or not root_at_checkpoint:
            raise BackupError("the signed checkpoint is not for the stored size")
        if not crypto.equal(cp.root, root_at_checkpoint[0]):
            raise BackupError(
                f"the signed checkpoint at size {cp.size} has another root than the entries"
            )
    return blob_hashes_txn(conn)


# --- restoring ----------------------------------------------------------------------------


def restore_backup(path: Path, data: Path, *, key_file: Path | None = None) -> Manifest:
    """Verify ``path`` and write it into the new or empty directory ``data``.

    ``key_file`` supplies the checkpoint key of a backup made with ``--no-key`` (it must
    be the log's key).  Nothing is written into ``data`` unless the backup verifies.
    """
    if data.exists() and (not data.is_dir() or any(data.iterdir())):
        raise BackupError(f"{data} exists and is not empty: restore into a new directory")
    parent = data.parent
    parent.mkdir(parents=True, exist_ok=True)
    with _scratch(parent) as tmp:
        verified = _unpack_and_verify(path, tmp)
        manifest = verified.manifest
        if key_file is not None:
            public = _key_public(key_file)
            if manifest.log_key is not None and not crypto.equal(public, manifest.log_key):
                raise BackupError(f"{key_file} is not this log's checkpoint key")
            if (tmp / KEY_FILE).exists():
                (tmp / KEY_FILE).unlink()
            shutil.copyfile(key_file, tmp / KEY_FILE)
            os.chmod(tmp / KEY_FILE, 0o600)
        (tmp / BLOB_DIR / "tmp").mkdir(mode=0o700)
        for name in (DB_FILE, KEY_FILE, CHECKPOINT_FILE):
            if (tmp / name).exists():
                os.chmod(tmp / name, 0o600)
        fsync_dir(tmp / BLOB_DIR)
        fsync_dir(tmp)
        if data.exists():
            data.rmdir()
        os.chmod(tmp, 0o700)
        os.replace(tmp, data)
        fsync_dir(parent)
    return manifest
