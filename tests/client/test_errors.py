"""Alarms: a fixed vocabulary with plain-words explanations; every protocol error code
found in server data maps onto one of them."""

from __future__ import annotations

import pytest

from client.errors import (
    ALARMS,
    EXIT_NETWORK,
    EXIT_STATE,
    EXIT_USAGE,
    EXIT_VERIFY,
    Alarm,
    KeystoreError,
    NetworkError,
    ServerError,
    StateError,
    UsageError,
    VerificationError,
    alarm_for,
)
from protocol import errors as perr


def _all_codes() -> set[str]:
    seen: set[str] = set()
    todo: list[type[perr.ProtocolError]] = [perr.ProtocolError]
    while todo:
        cls = todo.pop()
        seen.add(cls.code)
        todo.extend(cls.__subclasses__())
    return seen


def test_vocabulary() -> None:
    assert set(ALARMS) == {
        "forged", "key_change", "unauthorised_member", "commitment_mismatch", "duplicate",
        "gap", "withheld", "stale_log", "stale_view", "stale_roster_claim", "equivocation",
        "broken_promise", "clock_anomaly", "rollback", "fork",
    }  # fmt: skip
    for name, text in ALARMS.items():
        assert len(text) > 40 and text.endswith("."), name


def test_every_protocol_code_maps_to_an_alarm() -> None:
    for code in _all_codes():
        assert alarm_for(code) in ALARMS, code


@pytest.mark.parametrize(
    ("code", "alarm"),
    [
        ("bad_signature", "forged"),
        ("ciphertext_mismatch", "forged"),
        ("weak_key", "key_change"),
        ("unauthorised_change", "unauthorised_member"),
        ("not_a_member", "unauthorised_member"),
        ("commitment_mismatch", "commitment_mismatch"),
        ("duplicate", "duplicate"),
        ("bad_counter", "gap"),
        ("stale_roster", "stale_log"),
        ("rollback", "rollback"),
        ("fork", "fork"),
        ("bad_proof", "fork"),
    ],
)
def test_mapping(code: str, alarm: str) -> None:
    assert alarm_for(code) == alarm


def test_alarm_from_protocol_error() -> None:
    alarm = Alarm.from_protocol(perr.CounterError("skipped 3"), index=7, what="log entry")
    assert alarm.name == "gap" and alarm.index == 7
    assert "log index 7" in str(alarm) and "bad_counter" in str(alarm)
    assert alarm.explanation == ALARMS["gap"]
    with pytest.raises(ValueError):
        Alarm("made_up", "x")


def test_exit_codes() -> None:
    assert Alarm("fork", "x").exit_code == EXIT_VERIFY
    assert VerificationError("x").exit_code == EXIT_VERIFY
    assert UsageError("x").exit_code == EXIT_USAGE
    assert NetworkError("x").exit_code == EXIT_NETWORK
    assert ServerError(409, "duplicate", "d").exit_code == EXIT_NETWORK
    assert StateError("x").exit_code == EXIT_STATE
    assert KeystoreError("x").exit_code == EXIT_STATE
