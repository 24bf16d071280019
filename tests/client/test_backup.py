"""Key store backups (client.backup), passphrase strength and rotation in the key store."""

from __future__ import annotations

from pathlib import Path

import pytest

from client import backup, keystore, lifecycle
from client.errors import KeystoreError, UsageError
from client.state import LocalState
from protocol.genesis import Genesis, WitnessPolicy, found
from protocol.keys import DeviceKeys
from tests.helpers import make_rng

GOOD = "correct horse battery staple"
RNG = make_rng("test_backup")


def genesis(title: str) -> Genesis:
    return found(
        mediator_keys=DeviceKeys.generate(RNG),
        mediator="med",
        mediator_name="M",
        origin="docket.test/talks",
        title=title,
        log_key=DeviceKeys.generate(RNG).public.sign_pk,
        witness=WitnessPolicy.parties(),
        time=1,
    )


def pin(home: Path, g: Genesis) -> None:
    state = LocalState(home)
    try:
        state.pin_genesis(g)
    finally:
        state.close()


@pytest.fixture
def exported(tmp_path: Path) -> tuple[Path, DeviceKeys, Genesis]:
    home = tmp_path / "a"
    keys = keystore.create_keystore(home, GOOD, RNG)
    g = genesis("Ours")
    pin(home, g)
    file = tmp_path / "a.backup"
    backup.export_keys(home, file, GOOD, g.talks_id, RNG)
    return file, keys, g


def test_backup_round_trips_into_a_new_home(
    tmp_path: Path, exported: tuple[Path, DeviceKeys, Genesis]
) -> None:
    file, keys, g = exported
    restored, talks = backup.import_keys(tmp_path / "b", file, GOOD, None, RNG)
    assert restored.private_bytes() == keys.private_bytes() and talks == g.talks_id
    assert keystore.unlock(tmp_path / "b", GOOD).device_id == keys.device_id
    # Into a home pinned to the same talks (joined, keys lost): also fine.
    pin(tmp_path / "c", g)
    backup.import_keys(tmp_path / "c", file, GOOD, g.talks_id, RNG)


def test_importing_a_backup_into_a_home_pinned_to_other_talks_is_refused(
    tmp_path: Path, exported: tuple[Path, DeviceKeys, Genesis]
) -> None:
    file, _keys, _g = exported
    other = genesis("Other talks")
    home = tmp_path / "other"
    pin(home, other)
    with pytest.raises(KeystoreError, match="pinned to other talks"):
        backup.import_keys(home, file, GOOD, other.talks_id, RNG)
    assert not keystore.keystore_path(home).exists()


@pytest.mark.parametrize("field", ["sealed", "salt", "talks"])
def test_tampered_key_store_backup_is_refused(
    tmp_path: Path, exported: tuple[Path, DeviceKeys, Genesis], field: str
) -> None:
    file, _keys, g = exported
    data = bytearray(file.read_bytes())
    at = data.index(f'"{field}":"'.encode()) + len(field) + 8
    data[at] = ord("A") if data[at] != ord("A") else ord("B")
    bad = tmp_path / "bad.backup"
    bad.write_bytes(bytes(data))
    with pytest.raises(KeystoreError):
        backup.import_keys(tmp_path / "x", bad, GOOD, None, RNG)
    assert not keystore.keystore_path(tmp_path / "x").exists()


def test_wrong_backup_passphrase_is_refused(
    tmp_path: Path, exported: tuple[Path, DeviceKeys, Genesis]
) -> None:
    file, _keys, _g = exported
    with pytest.raises(KeystoreError, match="wrong passphrase"):
        backup.import_keys(tmp_path / "x", file, "another long passphrase here", None, RNG)


def test_export_never_overwrites(
    tmp_path: Path, exported: tuple[Path, DeviceKeys, Genesis]
) -> None:
    file, _keys, g = exported
    with pytest.raises(KeystoreError, match="already exists"):
        backup.export_keys(tmp_path / "a", file, GOOD, g.talks_id, RNG)


@pytest.mark.parametrize(
    "weak", ["a", "short", "aaaaaaaaaaaaaaaa", "alllowercaseletters", "1234567890123"]
)
def test_weak_passphrase_is_refused_with_a_clear_message(weak: str) -> None:
    with pytest.raises(KeystoreError, match="too weak: use at least 12 characters"):
        keystore.check_strength(weak)


@pytest.mark.parametrize("strong", [GOOD, "Tr1cky-Passw0rd!", "demo only - not a real passphrase"])
def test_strong_passphrases_pass(strong: str) -> None:
    keystore.check_strength(strong)


def test_weak_passphrase_from_the_environment_is_refused_for_a_new_key_store(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(keystore.PASSPHRASE_ENV, "pw")
    with pytest.raises(KeystoreError, match="too weak"):
        keystore.read_passphrase(confirm=True)
    assert keystore.read_passphrase() == "pw"  # unlocking an old key store still works


def test_rotation_keeps_former_keys_through_a_passphrase_change(tmp_path: Path) -> None:
    home = tmp_path / "r"
    old = keystore.create_keystore(home, GOOD, RNG)
    new = DeviceKeys.generate(RNG)
    keystore.rotate_keystore(home, GOOD, new, RNG)
    keystore.change_passphrase(home, GOOD, "Another Good one 42", RNG)
    current, former = keystore.unlock_all(home, "Another Good one 42")
    assert current.device_id == new.device_id
    assert [k.device_id for k in former] == [old.device_id]
    assert keystore.load_public(home) == new.public


def test_compromise_times_parse_as_ms_or_iso_8601() -> None:
    assert lifecycle._parse_time("1700000000000") == 1_700_000_000_000
    assert lifecycle._parse_time("2023-11-14T22:13:20+00:00") == 1_700_000_000_000
    assert lifecycle._parse_time("2023-11-14T22:13:20") == 1_700_000_000_000  # UTC if naive
    with pytest.raises(UsageError, match="compromised-since"):
        lifecycle._parse_time("last tuesday")
