"""The key store: keys encrypted at rest, file modes, wrong passphrases, damage."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import nacl.bindings as sodium
import pytest

from client import keystore
from client.errors import KeystoreError
from protocol import crypto
from protocol.crypto import Rng
from protocol.encoding import b64d, b64e, canonical


def test_create_then_unlock_round_trips(home: Path, rng: Rng) -> None:
    keys = keystore.create_keystore(home, "passphrase one", rng)
    again = keystore.unlock(home, "passphrase one")
    assert again.private_bytes() == keys.private_bytes()
    assert keystore.load_public(home) == keys.public


def test_file_and_home_are_private(home: Path, rng: Rng) -> None:
    keystore.create_keystore(home, "pw", rng)
    assert stat.S_IMODE(keystore.keystore_path(home).stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700


def test_private_keys_are_encrypted_at_rest(home: Path, rng: Rng) -> None:
    keys = keystore.create_keystore(home, "pw", rng)
    data = keystore.keystore_path(home).read_bytes()
    for secret in (keys.signing.seed_bytes(), keys.box.secret_bytes()):
        assert secret not in data
        assert b64e(secret).encode() not in data
        assert secret.hex().encode() not in data


def test_wrong_passphrase_is_a_clear_error(home: Path, rng: Rng) -> None:
    keystore.create_keystore(home, "right", rng)
    with pytest.raises(KeystoreError, match="wrong passphrase"):
        keystore.unlock(home, "wrong")


def test_refuses_to_overwrite(home: Path, rng: Rng) -> None:
    keystore.create_keystore(home, "pw", rng)
    with pytest.raises(KeystoreError, match="already exists"):
        keystore.create_keystore(home, "pw", rng)


def test_missing_keystore(home: Path) -> None:
    with pytest.raises(KeystoreError, match="docket init"):
        keystore.unlock(home, "pw")


@pytest.mark.parametrize("damage", ["truncated", "not-json", "unknown-field", "bad-salt"])
def test_damaged_keystore(home: Path, rng: Rng, damage: str) -> None:
    keystore.create_keystore(home, "pw", rng)
    path = keystore.keystore_path(home)
    doc = json.loads(path.read_bytes())
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:-10])
    elif damage == "not-json":
        path.write_bytes(b"\x00garbage")
    elif damage == "unknown-field":
        doc["extra"] = 1
        path.write_bytes(canonical(doc))
    else:
        doc["kdf"]["salt"] = b64e(b"short")
        path.write_bytes(canonical(doc))
    with pytest.raises(KeystoreError):
        keystore.unlock(home, "pw")


def test_swapped_public_key_is_caught(home: Path, rng: Rng) -> None:
    keystore.create_keystore(home, "pw", rng)
    other = crypto.SigningKey.generate(rng)
    path = keystore.keystore_path(home)
    doc = json.loads(path.read_bytes())
    doc["device"]["sign"] = b64e(other.public_bytes())
    path.write_bytes(canonical(doc))
    with pytest.raises(KeystoreError, match="do not match"):
        keystore.unlock(home, "pw")


def test_sealed_keys_tampered_look_like_wrong_passphrase(home: Path, rng: Rng) -> None:
    keystore.create_keystore(home, "pw", rng)
    path = keystore.keystore_path(home)
    doc = json.loads(path.read_bytes())
    sealed = bytearray(b64d(doc["sealed"]))
    sealed[-1] ^= 1
    doc["sealed"] = b64e(bytes(sealed))
    path.write_bytes(canonical(doc))
    with pytest.raises(KeystoreError, match="wrong passphrase"):
        keystore.unlock(home, "pw")


def test_fast_kdf_only_when_asked(monkeypatch: pytest.MonkeyPatch, rng: Rng) -> None:
    fast = keystore.KdfParams.new(rng)
    assert fast.ops == sodium.crypto_pwhash_argon2id_OPSLIMIT_MIN
    monkeypatch.delenv("DOCKET_KDF")
    slow = keystore.KdfParams.new(rng)
    assert (slow.ops, slow.mem) == (crypto.PWHASH_OPSLIMIT, crypto.PWHASH_MEMLIMIT)


def test_change_passphrase(home: Path, rng: Rng) -> None:
    keys = keystore.create_keystore(home, "old", rng)
    keystore.change_passphrase(home, "old", "new", rng)
    assert keystore.unlock(home, "new").private_bytes() == keys.private_bytes()
    with pytest.raises(KeystoreError):
        keystore.unlock(home, "old")


def test_passphrase_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKET_PASSPHRASE", "from env")
    assert keystore.read_passphrase() == "from env"
    monkeypatch.setenv("DOCKET_PASSPHRASE", "")
    with pytest.raises(KeystoreError, match="empty"):
        keystore.read_passphrase()


def test_no_passphrase_without_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKET_PASSPHRASE", raising=False)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(KeystoreError, match="DOCKET_PASSPHRASE"):
        keystore.read_passphrase()


def test_prompt_confirms_on_create(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKET_PASSPHRASE", raising=False)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    answers = iter(["long enough pass", "different pass"])
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))
    with pytest.raises(KeystoreError, match="do not match"):
        keystore.read_passphrase(confirm=True)
    answers = iter(["long enough pass", "long enough pass"])
    assert keystore.read_passphrase(confirm=True) == "long enough pass"
