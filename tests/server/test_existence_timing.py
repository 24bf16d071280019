"""Existence must not leak through timing (nor through the answer).

A device that may not see a draft must not learn whether it exists: ``GET
/v1/drafts/{i}``, ``.../ciphertext`` and ``.../receipts`` answer a forbidden draft and a
non-existent one with the same ``404 not_found`` body, after the same work (one lookup
of three primary keys, then the authorisation, storage/relay.py ``draft_access_txn``).

The timing check is statistical but bounded: requests for the two cases are
interleaved (alternating which goes first, so drift and load hit both alike), many
samples are taken, and the medians must agree within a generous relative margin.  The
figures themselves are measured in ``bench`` (``python -m bench timing``), not here.
"""

from __future__ import annotations

import statistics
import time

from tests.server.harness import Harness

PAIRS = 300
TIME_BUDGET = 40.0  # seconds per route, whatever the machine's load
RELATIVE_MARGIN = 0.15
ABSOLUTE_SLACK = 60e-6


async def _timed(h: Harness, path: str, token: str) -> tuple[float, int, bytes]:
    # Each problem names its request id: the same one on every request, so that two
    # answers can be the same byte for byte.
    headers = {"Authorization": f"Bearer {token}", "X-Request-Id": "probe"}
    started = time.perf_counter()
    resp = await h.session.get(h.base + path, headers=headers)
    body = await resp.read()
    return time.perf_counter() - started, resp.status, body


async def _medians(h: Harness, forbidden: str, missing: str, token: str) -> tuple[float, float]:
    a: list[float] = []
    b: list[float] = []
    deadline = time.monotonic() + TIME_BUDGET
    for i in range(PAIRS):
        if time.monotonic() > deadline and len(a) >= 50:
            break
        order = ((forbidden, a), (missing, b)) if i % 2 == 0 else ((missing, b), (forbidden, a))
        for path, samples in order:
            elapsed, status, body = await _timed(h, path, token)
            assert status == 404, (path, body)
            samples.append(elapsed)
    return statistics.median(a), statistics.median(b)


async def test_forbidden_and_missing_drafts_are_answered_alike_and_in_equal_time(
    talks: Harness,
) -> None:
    h = talks
    sender = h.people["n-adv"]
    sealed = h.seal(sender, "north-med", "for north and the mediator only")
    index = (await h.send(sender, sealed)).index
    head = h.people["n-head"]
    assert (await h.post_receipts(head, [h.receipt(head, sealed, index)])).status == 200
    await h.sync()
    outsider = await h.token(h.people["s-adv"])  # a roster device, not a recipient
    missing = index + 10_000
    for suffix in ("", "/ciphertext", "/receipts"):
        forbidden_path = f"/v1/drafts/{index}{suffix}"
        missing_path = f"/v1/drafts/{missing}{suffix}"
        # The same answer, byte for byte.
        _, s1, b1 = await _timed(h, forbidden_path, outsider)
        _, s2, b2 = await _timed(h, missing_path, outsider)
        assert (s1, b1) == (s2, b2) == (404, b1)
        for _ in range(20):  # warm both paths
            await _timed(h, forbidden_path, outsider)
            await _timed(h, missing_path, outsider)
        forbidden_median, missing_median = await _medians(h, forbidden_path, missing_path, outsider)
        gap = abs(forbidden_median - missing_median)
        allowed = RELATIVE_MARGIN * min(forbidden_median, missing_median) + ABSOLUTE_SLACK
        assert gap <= allowed, (
            f"{suffix or '/'}: forbidden {forbidden_median * 1e6:.0f} µs, "
            f"missing {missing_median * 1e6:.0f} µs"
        )
