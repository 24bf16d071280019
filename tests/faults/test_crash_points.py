"""SIGKILL at each crash point of the append path, then prove nothing broke.

For every point of :mod:`server.faults`: copy the template talks, serve them with
``DOCKET_FAULT=<point>@<n>``, fire a burst of drafts and receipts until the fault kills
the server, restart it without the fault and prove (tests/faults/workload.py):

* every acknowledged promise is at its index with its leaf hash, nothing is logged
  twice, the log replays through a fresh ledger, the served checkpoint verifies and is
  consistent with the last one seen before the crash;
* the database has no partial rows and no stray blobs;
* every write that was not acknowledged, resent byte for byte (twice, concurrently),
  answers 200 with one promise: the original if it was committed before the crash.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from protocol.checkpoint import Checkpoint, open_checkpoint
from protocol.encoding import canonical, parse
from protocol.merkle import MemoryTree
from protocol.receipt import Promise
from tests.faults.counters import bump
from tests.faults.procs import serving
from tests.faults.workload import (
    Template,
    build_template,
    burst,
    check_store,
    describe,
    login_all,
    retry_drafts,
    verify_log,
)
from tests.server.harness import ORIGIN, Harness

POINTS = {
    # point: (which hit kills, pause between a chain's writes).  Late enough that some
    # writes were acknowledged before; checkpoints need a burst spanning a few intervals.
    "upload.blob": (6, 0.0),
    "append.begin": (4, 0.0),
    "append.entries": (4, 0.0),
    "append.commit": (4, 0.0),
    "checkpoint.signed": (2, 0.03),
    "checkpoint.stored": (2, 0.03),
}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return build_template(tmp_path_factory.mktemp("crash-template"))


def template_checkpoint(template: Template) -> Checkpoint:
    note = (template.data / "checkpoint.txt").read_bytes()
    cp, _ = open_checkpoint(note, origin=ORIGIN, log_name=ORIGIN, log_key=template.init.log_key)
    return cp


async def retry_receipts(h: Harness, unacked: list[tuple[str, list[object]]]) -> list[Promise]:
    """Resend each unacknowledged receipt batch as is: logged or not, it answers 200."""
    out: list[Promise] = []
    for member, receipts in unacked:
        body = {"receipts": receipts}
        resp = await h.request(
            "POST", "/v1/receipts", person=h.people[member], data=canonical(body)
        )
        raw = await resp.read()
        if resp.status == 500:
            bump("500s seen")
        assert resp.status == 200, (resp.status, raw[:300])
        out.extend(Promise.from_json(p) for p in parse(raw)["promises"])
    return out


@pytest.mark.parametrize("point", sorted(POINTS))
async def test_crash_point_loses_nothing_acknowledged(
    template: Template, tmp_path: Path, point: str
) -> None:
    data = template.clone(tmp_path / "data")
    before = template_checkpoint(template)
    hit, pace = POINTS[point]
    async with serving(data, env={"DOCKET_FAULT": f"{point}@{hit}"}) as served:
        async with template.attach(served.url, data, point) as h:
            await login_all(h)
            outcome = await burst(h, template.seeded, pace=pace)
        returncode = await served.wait(20)
    assert returncode == -signal.SIGKILL, (returncode, describe(outcome), served.stderr())
    assert f"SIGKILL at {point}" in served.stderr()
    bump("faults injected")
    assert outcome.unacked_drafts or outcome.unacked_receipts, describe(outcome)
    assert outcome.statuses[500] == 0, describe(outcome)
    if outcome.checkpoints:
        before = outcome.checkpoints[-1][0]

    async with serving(data) as served:
        async with template.attach(served.url, data, point) as h:
            health = await h.ok("GET", "/healthz")
            assert health["read_only"] is False, served.stderr()
            verified = await verify_log(h, outcome.promises, before=before)
            check_store(data, template.init.log_key)

            # Resent writes are idempotent: the same promise if they were committed.
            redone = await retry_drafts(h, outcome.unacked_drafts)
            redone += await retry_receipts(
                h,
                [(p.member, [r.to_json() for r in rs]) for p, rs in outcome.unacked_receipts],
            )
            committed = MemoryTree.from_entries(verified.entries)
            originals = [p for p in redone if p.index < committed.size]
            for promise in originals:
                assert committed.leaf(promise.index) == promise.leaf
            if point == "append.commit":
                # The killed batch was committed but never answered: its writes, resent,
                # get their original promises.
                assert originals, describe(outcome)
            final = await verify_log(h, outcome.promises + redone, before=verified.checkpoint)
            expected = len(outcome.promises) + len(redone)
            assert final.checkpoint.size == len(template.entries) + expected, describe(outcome)
            check_store(data, template.init.log_key)
        assert await served.stop() == 0
    check_store(data, template.init.log_key, stopped=True)
