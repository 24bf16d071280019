"""The auditor checks each entry's time against the checkpoints that bracket it.

A witness that cosigned a checkpoint of size ``s`` at time ``c`` saw the log without
entry ``s`` then, and with every entry before it.  So an entry logged after that
checkpoint cannot honestly be dated long before ``c`` (a server and a sender colluding
to backdate a record, or a server whose clock jumped back), and an entry the checkpoint
already held cannot be dated long after it (a record postdated, or a clock jumped
forward).  Beyond a tolerance of an hour, either is ``out_of_bracket``."""

from __future__ import annotations

from client.auditor import BRACKET_TOLERANCE_MS, OUT_OF_BRACKET, audit_log
from tests.client.log_builder import BASE_TIME, LogBuilder, standard_log
from tests.helpers import make_rng

HOUR_MS = 3600 * 1000


def _alarms(b: LogBuilder, notes: list[bytes]) -> list[tuple[str, int | None]]:
    report = audit_log(b.entries, pinned_talks=b.talks, checkpoints=notes, workers=1)
    return [(a.code, a.index) for a in report.alarms]


def test_entries_within_their_brackets_pass() -> None:
    b, _ = standard_log(make_rng("times/clean"))
    first = b.checkpoint(timestamp=b.clock // 1000 + 1)
    b.draft("a-head", "plenary")
    last = b.checkpoint(timestamp=b.clock // 1000 + 1)
    assert _alarms(b, [first, last]) == []


def test_entry_backdated_before_a_checkpoint_that_did_not_hold_it() -> None:
    """Logged after a checkpoint the witnesses cosigned at ``c``, dated a day before it
    (the client-side jump of a day back, or a colluding server)."""
    b, _ = standard_log(make_rng("times/early"))
    cosigned = b.clock // 1000 + 1
    first = b.checkpoint(timestamp=cosigned)
    b.clock = cosigned * 1000 - 24 * HOUR_MS
    late = b.draft("a-head", "plenary")
    last = b.checkpoint(timestamp=cosigned + 5)
    alarms = _alarms(b, [first, last])
    assert (OUT_OF_BRACKET, late.index) in alarms


def test_entry_postdated_after_a_checkpoint_that_held_it() -> None:
    """Dated one day after the witnesses saw it in the log (a clock jumped forward a day)."""
    b, _ = standard_log(make_rng("times/late"))
    b.clock += 24 * HOUR_MS
    ahead = b.draft("a-head", "plenary")
    note = b.checkpoint(timestamp=BASE_TIME // 1000 + 600)
    assert _alarms(b, [note]) == [(OUT_OF_BRACKET, ahead.index)]


def test_an_hour_either_way_is_within_the_tolerance() -> None:
    """A clock an hour off (the client-side jump back of an hour) is clock skew, not an
    anomaly: the tolerance is the server's allowance with a wide margin."""
    assert BRACKET_TOLERANCE_MS == HOUR_MS
    b, _ = standard_log(make_rng("times/hour"))
    cosigned = b.clock // 1000 + 1
    first = b.checkpoint(timestamp=cosigned)
    b.clock = cosigned * 1000 - HOUR_MS + 60_000
    b.draft("a-head", "plenary")
    last = b.checkpoint(timestamp=cosigned + 5)
    assert _alarms(b, [first, last]) == []
