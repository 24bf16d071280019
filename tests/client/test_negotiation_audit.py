"""Round records over a checkpoint the log never had: the ledger accepts the size, and
every holder of the Merkle tree (client, auditor) refuses the root."""

from __future__ import annotations

import re

import pytest

from client.auditor import audit_log
from client.state import VerifiedLog
from protocol import crypto
from protocol.encoding import JSONValue, b64e
from protocol.errors import UnknownCheckpointError
from tests.protocol.builders import Talks


def rounds_log(forged: bool) -> tuple[Talks, int]:
    t = Talks("test_negotiation_audit")
    t.create_delegation("north", "nh")
    t.create_delegation("south", "sh")
    t.enrol("north", "na")
    t.create_channel("plenary", delegations=["north", "south"], members=["med"])
    med = t.people["med"].device
    t.act(med, "round.open", {"channel": None, "round": 1})
    t.send(t.people["na"].device, "plenary", "Art. 1.")
    size = t.ledger.size
    root = crypto.sha256(b"never this log's root") if forged else t.tree.root(size)
    body: dict[str, JSONValue] = {"channel": None, "round": 1, "root": b64e(root), "size": size}
    t.act(med, "round.close", body)
    t.send(t.people["na"].device, "plenary", "Art. 2.")
    return t, size


def audit(t: Talks, chunk_size: int) -> set[tuple[int | None, str]]:
    report = audit_log(
        t.entries, pinned_talks=t.talks_id, checkpoints=[t.checkpoint().encode()], workers=1,
        chunk_size=chunk_size,
    )  # fmt: skip
    return {(a.index, a.code) for a in report.alarms}


@pytest.mark.parametrize("chunk_size", [1, 4, 8, 1024])
def test_round_record_over_a_checkpoint_the_log_never_had_is_an_audit_alarm(
    chunk_size: int,
) -> None:
    t, at = rounds_log(forged=True)
    assert (at, "unknown_checkpoint") in audit(t, chunk_size)
    honest, _ = rounds_log(forged=False)
    assert not {c for c in audit(honest, chunk_size) if c[1] == "unknown_checkpoint"}


def test_round_record_over_a_checkpoint_the_log_never_had_is_refused_by_the_client() -> None:
    t, at = rounds_log(forged=True)
    log = VerifiedLog(t.genesis)
    for data in t.entries[1:at]:
        log.append(data)
    with pytest.raises(UnknownCheckpointError):
        log.append(t.entries[at])
    assert log.size == at  # nothing written
    honest, _ = rounds_log(forged=False)
    log = VerifiedLog(honest.genesis)
    for data in honest.entries[1:]:
        log.append(data)


def test_the_audit_groups_drafts_and_receipts_by_round() -> None:
    t, _ = rounds_log(forged=False)
    report = audit_log(
        t.entries, pinned_talks=t.talks_id, checkpoints=[t.checkpoint().encode()], workers=1
    )
    assert report.ok, report.alarms
    by_round = report.negotiation["by_round"]
    assert by_round == {"round 1": {"drafts": 1}, "outside any round": {"drafts": 1}}
    [r] = report.negotiation["rounds"]
    assert r["closed_at"] is not None
    text = report.render_text()
    assert "round 1 (whole talks): closed over size" in text
    assert re.search(r"\n  round 1 +drafts +1  receipts +0\n", text)
