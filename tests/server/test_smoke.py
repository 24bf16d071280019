from __future__ import annotations

from tests.server.harness import Harness


async def test_standard_talks_and_a_draft(talks: Harness) -> None:
    h = talks
    sealed = h.seal(h.people["n-adv"], "plenary", "hello")
    promise = await h.send(h.people["n-adv"], sealed)
    assert promise.index == h.require_ledger().size - 1
    got = await h.ok("GET", f"/v1/drafts/{promise.index}", person=h.people["s-adv"])
    assert got["index"] == promise.index
