"""The negotiation's acts on a real app and SQLite file: refused cleanly (a stable code,
nothing written), and replayed when the server restarts."""

from __future__ import annotations

from pathlib import Path

from protocol.crypto import Rng, sha256
from protocol.encoding import JSONValue, b64e, canonical
from protocol.ledger import Ledger
from protocol.merkle import MemoryTree
from protocol.negotiation import InitialsState, RoundsState
from server.datadir import init_data_dir
from tests.server.harness import ORIGIN, Harness


async def log_root(h: Harness, size: int) -> bytes:
    got = await h.ok("GET", f"/v1/log/entries?start=0&end={size}", person=h.people["obs"])
    assert isinstance(got, dict)
    entries = got["entries"]
    assert isinstance(entries, list)
    return MemoryTree.from_entries([canonical(e["entry"]) for e in entries]).root(size)


async def refused(h: Harness, person: str, kind: str, body: dict[str, JSONValue]) -> str:
    before = h.counts()
    act = h.make_act(h.people[person], kind, body)
    resp = await h.request("POST", "/v1/acts", person=h.people[person], body=act.to_json())
    assert resp.status in (403, 409, 422), resp.status
    assert h.counts() == before
    code = (await resp.json())["code"]
    assert isinstance(code, str)
    return code


def initial_body(h: Harness, index: int) -> dict[str, JSONValue]:
    header = h.require_ledger().drafts[h.require_ledger().draft_at[index]].header
    return {
        "channel": header.channel, "commit": b64e(header.commit), "draft": b64e(header.draft),
        "entry": b64e(header.leaf), "index": index,
    }  # fmt: skip


async def test_round_record_over_a_checkpoint_the_log_never_had_is_refused_by_the_server(
    talks: Harness,
) -> None:
    h = talks
    await h.act(h.people["med"], "round.open", {"channel": None, "round": 1})
    await h.sync()
    size = h.require_ledger().size
    forged: dict[str, JSONValue] = {
        "channel": None, "round": 1, "root": b64e(sha256(b"not this log")), "size": size,
    }  # fmt: skip
    assert await refused(h, "med", "round.close", forged) == "unknown_checkpoint"
    future = dict(forged, size=size + 7, root=b64e(await log_root(h, size)))
    assert await refused(h, "med", "round.close", future) == "unknown_checkpoint"
    assert await refused(h, "n-head", "round.open", {"channel": None, "round": 2}) == (
        "not_entitled"
    )


async def test_release_by_a_non_mediator_and_a_late_proposal_are_refused_by_the_server(
    talks: Harness,
) -> None:
    h = talks
    await h.act(h.people["med"], "call.open", {
        "call": 1, "channel": "plenary", "deadline": 1 << 50, "delegations": ["north"],
    })  # fmt: skip
    promise = await h.send(h.people["n-adv"], h.seal(h.people["n-adv"], "plenary", "sealed"))
    commit: dict[str, JSONValue] = {
        "call": 1, "commit": b64e(bytes(32)), "entry": b64e(promise.leaf), "index": promise.index,
    }  # fmt: skip
    assert await refused(h, "med", "call.release", {"call": 1}) == "bad_call"  # none yet
    await h.act(h.people["n-adv"], "proposal.commit", commit)
    assert await refused(h, "n-head", "call.release", {"call": 1}) == "not_entitled"
    await h.act(h.people["med"], "call.release", {"call": 1})
    late = await h.send(h.people["n-head"], h.seal(h.people["n-head"], "plenary", "late"))
    body = dict(commit, entry=b64e(late.leaf), index=late.index)
    assert await refused(h, "n-head", "proposal.commit", body) == "late_proposal"


async def test_negotiation_acts_are_replayed_when_the_server_restarts(
    tmp_path: Path, rng: Rng
) -> None:
    init = init_data_dir(tmp_path / "data", ORIGIN)
    async with Harness.start(tmp_path, rng, init=init) as h:
        await h.standard_talks()
        await h.act(h.people["med"], "round.open", {"channel": "plenary", "round": 1})
        sent = await h.send(h.people["n-adv"], h.seal(h.people["n-adv"], "plenary", "Art. 1."))
        await h.act(h.people["n-head"], "initial", initial_body(h, sent.index))
        people, genesis = h.people, h.genesis
    assert genesis is not None
    async with Harness.start(tmp_path, rng, init=init) as h2:
        h2.people, h2.genesis, h2.ledger = people, genesis, Ledger(genesis)
        await h2.sync()
        # the restarted server remembers the north's initial: a second one is refused
        assert await refused(h2, "n-head", "initial", initial_body(h2, sent.index)) == (
            "bad_initial"
        )
        await h2.act(people["s-head"], "initial", initial_body(h2, sent.index))
        await h2.sync()
        size = h2.require_ledger().size
        close: dict[str, JSONValue] = {
            "channel": "plenary", "round": 1, "root": b64e(await log_root(h2, size)),
            "size": size,
        }  # fmt: skip
        await h2.act(people["med"], "round.close", close)
        await h2.act(people["s-head"], "round.countersign", close)
        await h2.sync()
        initials = h2.require_ledger().act_state("initials")
        rounds = h2.require_ledger().act_state("rounds")
        assert isinstance(initials, InitialsState) and isinstance(rounds, RoundsState)
        assert sorted(initials.agreed[sent.leaf].initials) == ["north", "south"]
        assert list(rounds.all()[0].countersigns) == ["south"]
