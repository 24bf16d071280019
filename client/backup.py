"""Key store backups: ``docket keys export FILE`` and ``docket keys import FILE``.

A backup is one canonical JSON file::

    {"kdf": {"alg": "argon2id13", "mem": n, "ops": n, "salt": ..},
     "sealed": secretbox(Argon2id(passphrase), canonical({"keys": [..], "talks": ..})),
     "t": "docket-keystore-backup", "talks": b64u or null, "v": 1}

``keys`` are the current then the former device keys (64 bytes each, as in the key
store); ``talks`` is the talks id the home was pinned to (or null).  Everything that
matters is inside the secretbox: a byte changed anywhere, the KDF parameters included,
makes the box fail to open (``keystore`` error, nothing written).  The clear ``talks``
lets an import refuse a home pinned to other talks before asking for anything, and
must equal the sealed copy.  An import writes a new key store only into a home that
has none, sealed under the same passphrase, and only if the home is not pinned to
other talks; the local state (the verified log) is rebuilt from the server.
"""

from __future__ import annotations

from pathlib import Path

from client.errors import KeystoreError
from client.keystore import (
    MAX_FORMER_KEYS,
    KdfParams,
    check_strength,
    ensure_home,
    keystore_path,
    unlock_all,
    write_keystore,
    write_private_file,
)
from protocol import crypto
from protocol.encoding import Fields, JSONValue, b64d, b64e, canonical, parse
from protocol.errors import ProtocolError
from protocol.keys import DeviceKeys

BACKUP_TYPE = "docket-keystore-backup"
MAX_BACKUP = 64 * 1024


def export_keys(
    home: Path, file: Path, passphrase: str, talks: bytes | None, rng: crypto.Rng
) -> DeviceKeys:
    """Write an encrypted backup of ``home``'s keys to ``file`` (never overwriting)."""
    check_strength(passphrase)
    keys, former = unlock_all(home, passphrase)
    if file.exists():
        raise KeystoreError(f"{file} already exists; choose a new file")
    inner: dict[str, JSONValue] = {
        "keys": [b64e(k.private_bytes()) for k in (keys, *former)],
        "talks": None if talks is None else b64e(talks),
    }
    params = KdfParams.new(rng)
    sealed = crypto.secretbox_seal(params.derive(passphrase), canonical(inner), rng)
    doc: dict[str, JSONValue] = {
        "kdf": params.to_json(),
        "sealed": b64e(sealed),
        "t": BACKUP_TYPE,
        "talks": inner["talks"],
        "v": 1,
    }
    write_private_file(file, canonical(doc))
    return keys


def backup_talks(file: Path) -> tuple[bytes | None, KdfParams, bytes]:
    """The clear talks id, KDF parameters and sealed part of a backup (not yet trusted)."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise KeystoreError(f"cannot read {file}: {exc.strerror}") from exc
    try:
        f = Fields(parse(data, max_size=MAX_BACKUP), "backup")
        f.literal("t", BACKUP_TYPE)
        f.version(1)
        params = KdfParams.from_json(f.raw("kdf"))
        sealed = f.bytes("sealed", max_len=MAX_BACKUP)
        talks_raw = f.raw("talks")
        talks = None if talks_raw is None else b64d(talks_raw, length=32, what="talks")
        f.done()
    except ProtocolError as exc:
        raise KeystoreError(f"backup {file} is damaged: {exc.detail}") from exc
    return talks, params, sealed


def import_keys(
    home: Path, file: Path, passphrase: str, pinned: bytes | None, rng: crypto.Rng
) -> tuple[DeviceKeys, bytes | None]:
    """Restore a backup into ``home`` (which must have no key store); ``pinned`` is the
    talks id the home's state is pinned to, if any.  Returns the keys and the talks."""
    if keystore_path(home).exists():
        raise KeystoreError(f"{home} already has a key store; import into a new home")
    talks, params, sealed = backup_talks(file)
    if pinned is not None and (talks is None or not crypto.equal(pinned, talks)):
        raise KeystoreError("this home is pinned to other talks than the backup's")
    try:
        inner_bytes = crypto.secretbox_open(params.derive(passphrase), sealed)
    except ProtocolError:
        raise KeystoreError("wrong passphrase, or the backup was tampered with") from None
    try:
        f = Fields(parse(inner_bytes), "backup.sealed")
        items = f.list("keys", max_items=MAX_FORMER_KEYS + 1)
        inner_talks = f.raw("talks")
        f.done()
        every = [DeviceKeys.from_private_bytes(b64d(k, length=64, what="key")) for k in items]
    except ProtocolError as exc:
        raise KeystoreError(f"backup holds invalid key material: {exc.detail}") from exc
    if not every or inner_talks != (None if talks is None else b64e(talks)):
        raise KeystoreError("wrong passphrase, or the backup was tampered with")
    ensure_home(home)
    write_keystore(home, every[0], every[1:], passphrase, rng)
    return every[0], talks
