"""``POST /v1/acts`` on a real app and SQLite file: logged, refused cleanly, replayed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol.crypto import Rng
from protocol.encoding import b64e
from protocol.ledger import Ledger
from server.datadir import init_data_dir
from tests.acts_family import Tally, TallyState, registered
from tests.server.harness import ORIGIN, Harness


@pytest.fixture
def tally() -> Iterator[Tally]:
    yield from registered()


def totals(h: Harness) -> dict[str, int]:
    st = h.require_ledger().act_state("tally")
    assert isinstance(st, TallyState)
    return st.totals


async def test_an_act_is_logged_broadcast_and_mirrored(talks: Harness, tally: Tally) -> None:
    h = talks
    head = h.people["n-head"]
    promise = await h.act(head, "tally.add", {"n": 4})
    assert totals(h) == {"n-head": 4}
    got = await h.ok(
        "GET",
        f"/v1/log/entries?start={promise.index}&end={promise.index + 1}",
        person=h.people["obs"],
    )
    assert got["entries"][0]["entry"]["a"] == "tally.add"
    inbox = await h.ok("GET", "/v1/inbox", person=h.people["s-adv"])
    kinds = [n["kind"] for n in inbox["items"]]
    assert "act" in kinds


async def test_an_act_the_ledger_refuses_writes_nothing(talks: Harness, tally: Tally) -> None:
    h = talks
    before = h.counts()
    act = h.make_act(h.people["n-adv"], "tally.add", {"n": 1})  # not a head
    resp = await h.request("POST", "/v1/acts", person=h.people["n-adv"], body=act.to_json())
    assert resp.status in (403, 422)
    problem = await resp.json()
    assert problem["code"] == "unauthorised_change"
    assert h.counts() == before


async def test_a_forged_act_signature_is_refused(talks: Harness, tally: Tally) -> None:
    h = talks
    before = h.counts()
    body = h.make_act(h.people["n-head"], "tally.add", {"n": 1}).to_json()
    body["sig"] = b64e(bytes(64))
    resp = await h.request("POST", "/v1/acts", person=h.people["n-head"], body=body)
    assert (await resp.json())["code"] == "bad_signature"
    assert h.counts() == before


async def test_an_unknown_act_kind_is_refused(talks: Harness, tally: Tally) -> None:
    h = talks
    body = h.make_act(h.people["n-head"], "tally.add", {"n": 1}).to_json()
    body["a"] = "no.such"
    resp = await h.request("POST", "/v1/acts", person=h.people["n-head"], body=body)
    assert resp.status == 422
    assert (await resp.json())["code"] == "bad_value"


async def test_acts_are_replayed_when_the_server_restarts(
    tmp_path: Path, rng: Rng, tally: Tally
) -> None:
    init = init_data_dir(tmp_path / "data", ORIGIN)
    async with Harness.start(tmp_path, rng, init=init) as h:
        await h.standard_talks()
        await h.act(h.people["n-head"], "tally.add", {"n": 2})
        await h.act(h.people["med"], "tally.freeze", {"channel": "plenary"})
        people, genesis = h.people, h.genesis
    assert genesis is not None
    async with Harness.start(tmp_path, rng, init=init) as h2:
        h2.people, h2.genesis, h2.ledger = people, genesis, Ledger(genesis)
        await h2.sync()
        # the restarted server's ledger refuses a draft to the frozen channel again
        sealed = h2.seal(people["n-adv"], "plenary", "after the freeze")
        resp = await h2.post_draft(people["n-adv"], sealed)
        assert resp.status in (400, 409, 422)
        assert "frozen" in (await resp.json())["detail"]
        await h2.act(people["s-head"], "tally.add", {"n": 3})
        assert totals(h2) == {"n-head": 2, "s-head": 3}
