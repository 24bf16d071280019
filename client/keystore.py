"""The device key store: private keys generated locally, encrypted at rest.

Layout: ``<home>/keystore.json``, mode 0600, in a home directory of mode 0700::

    {"device": {"enc": .., "sign": ..},           public keys, readable without a passphrase
     "kdf": {"alg": "argon2id13", "mem": n, "ops": n, "salt": ..},
     "sealed": ..,                                 secretbox(Argon2id(passphrase), private keys)
     "t": "docket-keystore", "v": 1}

The public keys are stored in the clear so ``whoami`` and ``fingerprint`` work without
the passphrase; after unlocking, the private keys must reproduce them exactly, so an
edited public half is caught rather than trusted.

The sealed part holds the current device keys and, after a rotation
(:func:`rotate_keystore`), the device's former keys after them (64 bytes each): drafts
wrapped to a former device id stay readable on this device.

A new passphrase (a new key store, a change, a backup) must pass
:func:`check_strength`: at least 12 characters and either three of the four kinds
(lowercase, uppercase, digits, other) or at least three words.

The passphrase comes from ``DOCKET_PASSPHRASE`` or an interactive prompt.  Setting
``DOCKET_KDF=fast`` makes *new* key stores use libsodium's minimum Argon2id cost: it is
for the test suite only and must never be used for real keys (the parameters are
stored in the file, so a fast key store stays weak).
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nacl.bindings as sodium

from client.errors import KeystoreError
from protocol import crypto
from protocol.encoding import Fields, JSONValue, b64e, canonical, parse
from protocol.errors import ProtocolError
from protocol.keys import DeviceKeys, DevicePublic

KEYSTORE_FILE = "keystore.json"
KDF_ALG = "argon2id13"
PASSPHRASE_ENV = "DOCKET_PASSPHRASE"  # noqa: S105 - the variable's name, not a secret
KDF_ENV = "DOCKET_KDF"
MIN_PASSPHRASE = 12
MAX_FORMER_KEYS = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class KdfParams:
    """Argon2id cost parameters and salt, as stored beside the sealed keys."""

    ops: int
    mem: int
    salt: bytes

    @classmethod
    def new(cls, rng: crypto.Rng) -> KdfParams:
        """Fresh parameters: production cost, or the minimum under ``DOCKET_KDF=fast``."""
        if os.environ.get(KDF_ENV) == "fast":  # test-only, see module docstring
            ops = sodium.crypto_pwhash_argon2id_OPSLIMIT_MIN
            mem = sodium.crypto_pwhash_argon2id_MEMLIMIT_MIN
        else:
            ops, mem = crypto.PWHASH_OPSLIMIT, crypto.PWHASH_MEMLIMIT
        return cls(ops=ops, mem=mem, salt=rng(crypto.PWHASH_SALT_LEN))

    def derive(self, passphrase: str) -> bytes:
        """The secretbox key for ``passphrase``."""
        return crypto.passphrase_key(
            passphrase.encode("utf-8"), self.salt, opslimit=self.ops, memlimit=self.mem
        )

    def to_json(self) -> dict[str, JSONValue]:
        """JSON form (what ``--json`` prints)."""
        return {"alg": KDF_ALG, "mem": self.mem, "ops": self.ops, "salt": b64e(self.salt)}

    @classmethod
    def from_json(cls, value: JSONValue) -> KdfParams:
        """Inverse of :meth:`to_json`."""
        f = Fields(value, "keystore.kdf")
        f.literal("alg", KDF_ALG)
        params = cls(
            ops=f.int("ops", lo=1, hi=2**32 - 1),
            mem=f.int("mem", lo=8192, hi=2**42),
            salt=f.bytes("salt", length=crypto.PWHASH_SALT_LEN),
        )
        f.done()
        return params


def keystore_path(home: Path) -> Path:
    """Where the key store of ``home`` lives."""
    return home / KEYSTORE_FILE


def ensure_home(home: Path) -> None:
    """Create the home directory, private to this user (mode 0700)."""
    try:
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise KeystoreError(f"cannot create home directory {home}: {exc.strerror}") from exc


def write_private_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically with mode 0600 (temp file, fsync, rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise KeystoreError(f"cannot write {path}: {exc.strerror}") from exc


def check_strength(passphrase: str) -> None:
    """Refuse a weak new passphrase with a message saying what is needed (the rule is
    in the module docstring; it keeps out short and single-kind passphrases without
    a dictionary, and a passphrase of several words passes on length alone)."""
    kinds = sum(
        (
            any(c.islower() for c in passphrase),
            any(c.isupper() for c in passphrase),
            any(c.isdigit() for c in passphrase),
            any(not c.isalnum() for c in passphrase),
        )
    )
    words = [w for w in passphrase.replace("-", " ").split() if len(w) >= 2]
    if (
        len(passphrase) < MIN_PASSPHRASE
        or len(set(passphrase)) < 6
        or (kinds < 3 and len(words) < 3)
    ):
        raise KeystoreError(
            f"passphrase too weak: use at least {MIN_PASSPHRASE} characters with three of "
            "lowercase, uppercase, digits and symbols, or three or more words"
        )


def read_passphrase(*, confirm: bool = False, prompt: str = "Docket passphrase: ") -> str:
    """The passphrase from ``DOCKET_PASSPHRASE`` or, on a terminal, a prompt.

    ``confirm`` asks twice (when creating a key store).  Without a terminal and without
    the variable there is no way to ask, which is an error rather than a hang.
    """
    value = os.environ.get(PASSPHRASE_ENV)
    if value is not None:
        if not value:
            raise KeystoreError(f"{PASSPHRASE_ENV} is set but empty")
        if confirm:
            check_strength(value)
        return value
    if not sys.stdin.isatty():
        raise KeystoreError(f"no passphrase: set {PASSPHRASE_ENV} or run in a terminal")
    try:
        first = getpass.getpass(prompt)
        if confirm:
            check_strength(first)
            if getpass.getpass("Repeat passphrase: ") != first:
                raise KeystoreError("the passphrases do not match")
    except (EOFError, KeyboardInterrupt) as exc:
        raise KeystoreError("no passphrase entered") from exc
    if not first:
        raise KeystoreError("empty passphrase")
    return first


def create_keystore(
    home: Path, passphrase: str, rng: crypto.Rng, *, keys: DeviceKeys | None = None
) -> DeviceKeys:
    """Generate device keys (unless given), seal them under ``passphrase``, store them.

    Refuses to overwrite an existing key store: losing a device key loses access to
    every draft wrapped to it.
    """
    path = keystore_path(home)
    if path.exists():
        raise KeystoreError(f"a key store already exists at {path}")
    if not passphrase:
        raise KeystoreError("empty passphrase")
    ensure_home(home)
    keys = keys if keys is not None else DeviceKeys.generate(rng)
    write_keystore(home, keys, (), passphrase, rng)
    return keys


def write_keystore(
    home: Path, keys: DeviceKeys, former: Sequence[DeviceKeys], passphrase: str, rng: crypto.Rng
) -> None:
    """Seal the current and former keys under ``passphrase`` (fresh salt) and store them."""
    if len(former) > MAX_FORMER_KEYS:
        raise KeystoreError("too many former keys in one key store")
    params = KdfParams.new(rng)
    secret = keys.private_bytes() + b"".join(k.private_bytes() for k in former)
    sealed = crypto.secretbox_seal(params.derive(passphrase), secret, rng)
    doc = {
        "device": keys.public.to_json(),
        "kdf": params.to_json(),
        "sealed": b64e(sealed),
        "t": "docket-keystore",
        "v": 1,
    }
    write_private_file(keystore_path(home), canonical(doc))


def _load(home: Path) -> tuple[DevicePublic, KdfParams, bytes]:
    path = keystore_path(home)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeystoreError(f"no key store in {home} (run 'docket init' first)") from None
    except OSError as exc:
        raise KeystoreError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        f = Fields(parse(data), "keystore")
        f.literal("t", "docket-keystore")
        f.version(1)
        public = DevicePublic.from_json(f.raw("device"), "keystore.device")
        params = KdfParams.from_json(f.raw("kdf"))
        sealed = f.bytes("sealed", max_len=64 * (MAX_FORMER_KEYS + 1) + 64)
        f.done()
    except ProtocolError as exc:
        raise KeystoreError(f"key store {path} is damaged: {exc.detail}") from exc
    return public, params, sealed


def load_public(home: Path) -> DevicePublic:
    """The device's public keys, without the passphrase."""
    return _load(home)[0]


def unlock(home: Path, passphrase: str) -> DeviceKeys:
    """Decrypt the device keys; a wrong passphrase is a clear :class:`KeystoreError`."""
    return unlock_all(home, passphrase)[0]


def unlock_all(home: Path, passphrase: str) -> tuple[DeviceKeys, list[DeviceKeys]]:
    """The current device keys and the former ones (oldest first)."""
    public, params, sealed = _load(home)
    try:
        key = params.derive(passphrase)
    except ProtocolError as exc:
        raise KeystoreError(f"key store parameters are invalid: {exc.detail}") from exc
    try:
        private = crypto.secretbox_open(key, sealed)
    except ProtocolError:
        # secretbox cannot tell a wrong passphrase from a damaged file, so say both.
        raise KeystoreError("wrong passphrase (or the key store is damaged)") from None
    if not private or len(private) % 64:
        raise KeystoreError("key store holds invalid key material")
    try:
        every = [
            DeviceKeys.from_private_bytes(private[i : i + 64]) for i in range(0, len(private), 64)
        ]
    except ProtocolError as exc:
        raise KeystoreError("key store holds invalid key material") from exc
    if every[0].public != public:
        raise KeystoreError("key store's public keys do not match its private keys")
    return every[0], every[1:]


def change_passphrase(home: Path, old: str, new: str, rng: crypto.Rng) -> None:
    """Re-seal the device keys under a new passphrase (fresh salt)."""
    keys, former = unlock_all(home, old)
    write_keystore(home, keys, former, new, rng)


def rotate_keystore(home: Path, passphrase: str, new: DeviceKeys, rng: crypto.Rng) -> None:
    """Make ``new`` the current keys, keeping the old ones as former keys (after a
    logged ``device.rotate``: earlier drafts stay readable here)."""
    keys, former = unlock_all(home, passphrase)
    write_keystore(home, new, [*former, keys], passphrase, rng)
