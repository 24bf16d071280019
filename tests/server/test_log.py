"""The log API: checkpoints, entries, proofs that verify, cosignatures."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from protocol import merkle
from protocol.checkpoint import Checkpoint, cosign
from protocol.encoding import b64d, canonical
from protocol.evidence import require_trusted
from protocol.genesis import witness_name
from server.clock import now_ms
from server.services import log as log_service
from server.storage import log as log_storage
from tests.server.harness import ORIGIN, Harness


async def _grow(h: Harness, n: int) -> None:
    for i in range(n):
        await h.send(h.people["n-adv"], h.seal(h.people["n-adv"], "plenary", f"d{i}"))


async def _entries(h: Harness, start: int, end: int) -> list[Any]:
    got = await h.ok("GET", f"/v1/log/entries?start={start}&end={end}", person=h.people["obs"])
    return list(got["entries"])


async def test_every_entry_is_included_in_the_served_checkpoint(talks: Harness) -> None:
    h = talks
    await _grow(h, 4)
    cp, _, _ = await h.checkpoint()
    entries = await _entries(h, 0, cp.size)
    assert [e["index"] for e in entries] == list(range(cp.size))
    for item in entries:
        leaf = merkle.leaf_hash(canonical(item["entry"]))
        got = await h.ok(
            "GET",
            f"/v1/log/proof/inclusion?index={item['index']}&size={cp.size}",
            person=h.people["obs"],
        )
        assert got["index"] == item["index"] and got["size"] == cp.size
        proof = [b64d(p) for p in got["proof"]]
        merkle.verify_inclusion(leaf, item["index"], cp.size, proof, cp.root)


async def test_consistency_between_checkpoints(talks: Harness) -> None:
    h = talks
    old, _, _ = await h.checkpoint()
    await _grow(h, 5)
    new, _, _ = await h.checkpoint()
    assert new.size > old.size
    # The old checkpoint is still served by size.
    resp = await h.request("GET", f"/v1/log/checkpoint?size={old.size}", person=h.people["obs"])
    assert (await resp.read()).startswith(old.body())
    got = await h.ok(
        "GET", f"/v1/log/proof/consistency?old={old.size}&new={new.size}", person=h.people["obs"]
    )
    proof = [b64d(p) for p in got["proof"]]
    merkle.verify_consistency(old.size, new.size, old.root, new.root, proof)
    # And the roots are what an independent tree over the entries says.
    tree = merkle.MemoryTree.from_entries(
        [canonical(e["entry"]) for e in await _entries(h, 0, new.size)]
    )
    assert tree.root(old.size) == old.root
    assert tree.root() == new.root


def _count_node_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the number of coordinates of every batched node read the service makes."""
    calls: list[int] = []
    original = log_storage.nodes_txn

    def counting(conn: Any, coords: Any) -> dict[Any, bytes]:
        calls.append(len(coords))
        return original(conn, coords)

    monkeypatch.setattr(log_service, "nodes_txn", counting)
    return calls


def _no_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep no tree level in memory: every node comes from the store."""
    monkeypatch.setattr(log_service, "cache_min_level", lambda size, budget=0: 64)


async def _verified_inclusion(
    h: Harness, index: int, cp: Checkpoint, leaf: merkle.LeafHash
) -> None:
    got = await h.ok(
        "GET", f"/v1/log/proof/inclusion?index={index}&size={cp.size}", person=h.people["obs"]
    )
    merkle.verify_inclusion(leaf, index, cp.size, [b64d(p) for p in got["proof"]], cp.root)


async def test_proofs_read_few_nodes_in_one_query(
    talks: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = talks
    _no_cache(monkeypatch)
    await _grow(h, 20)
    cp, _, _ = await h.checkpoint()
    calls = _count_node_reads(monkeypatch)
    await h.ok("GET", f"/v1/log/proof/inclusion?index=3&size={cp.size}", person=h.people["obs"])
    await h.ok("GET", f"/v1/log/proof/consistency?old=7&new={cp.size}", person=h.people["obs"])
    assert len(calls) == 2
    bound = 2 * cp.size.bit_length() + 2
    assert all(0 < n <= bound for n in calls), (calls, bound)


async def test_proofs_on_a_cached_tree_read_nothing(
    talks: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = talks
    await _grow(h, 20)
    cp, _, _ = await h.checkpoint()
    calls = _count_node_reads(monkeypatch)
    entries = await _entries(h, 0, cp.size)
    # The first proof loads the upper tree (here: all of it); the others stay in memory.
    for item in entries:
        leaf = merkle.leaf_hash(canonical(item["entry"]))
        await _verified_inclusion(h, item["index"], cp, leaf)
    old, new = 7, cp.size
    got = await h.ok(
        "GET", f"/v1/log/proof/consistency?old={old}&new={new}", person=h.people["obs"]
    )
    tree = merkle.MemoryTree.from_entries([canonical(e["entry"]) for e in entries])
    merkle.verify_consistency(old, new, tree.root(old), cp.root, [b64d(p) for p in got["proof"]])
    assert len(calls) == 1


async def test_concurrent_proofs_share_batched_reads(
    talks: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = talks
    _no_cache(monkeypatch)
    await _grow(h, 20)
    cp, _, _ = await h.checkpoint()
    entries = await _entries(h, 0, cp.size)
    calls = _count_node_reads(monkeypatch)
    await asyncio.gather(
        *(
            _verified_inclusion(h, e["index"], cp, merkle.leaf_hash(canonical(e["entry"])))
            for e in entries
        )
    )
    assert 1 <= len(calls) < len(entries)


def test_the_proof_cache_stays_within_its_budget() -> None:
    for size in (1, 2, 1000, 1 << 20, 10**6 + 1, 10**9):
        level = log_service.cache_min_level(size)
        cached = sum(size >> lv for lv in range(level, size.bit_length()))
        assert cached <= log_service.PROOF_CACHE_NODES
        if level:  # and it is the lowest such level
            assert cached + (size >> (level - 1)) > log_service.PROOF_CACHE_NODES


@pytest.mark.parametrize(
    "query",
    [
        "entries?start=5&end=4",
        "entries?start=-1&end=4",
        "entries?start=0",
        "entries?start=a&end=2",
        "proof/inclusion?index=5&size=5",
        "proof/inclusion?index=0&size=100000",
        "proof/inclusion?index=0&size=0",
        "proof/consistency?old=3&new=2",
        "proof/consistency?old=0&new=100000",
        "checkpoint?size=x",
    ],
)
async def test_bad_log_queries(talks: Harness, query: str) -> None:
    resp = await talks.request("GET", f"/v1/log/{query}", person=talks.people["obs"])
    assert resp.status == 400, query
    assert (await resp.json())["code"] == "bad_query"


async def test_entry_ranges_are_clamped(talks: Harness) -> None:
    h = talks
    size = h.require_ledger().size
    assert len(await _entries(h, 0, 10**9)) == size
    assert await _entries(h, size, size + 5) == []
    assert await _entries(h, 3, 3) == []
    resp = await h.request("GET", "/v1/log/checkpoint?size=999", person=h.people["obs"])
    assert resp.status == 404


async def test_witness_cosignatures_are_verified_stored_and_served(talks: Harness) -> None:
    h = talks
    cp, _, _ = await h.checkpoint()
    med, north = h.people["med"], h.people["n-head"]
    lines = {
        witness_name(ORIGIN, "mediator"): cosign(
            cp, witness_name(ORIGIN, "mediator"), med.keys.signing, timestamp=now_ms() // 1000
        ),
        witness_name(ORIGIN, "north"): cosign(
            cp, witness_name(ORIGIN, "north"), north.keys.signing, timestamp=now_ms() // 1000
        ),
    }
    names: list[str] = []
    for line in lines.values():
        got = await h.ok(
            "POST",
            "/v1/log/cosignatures",
            person=north,
            body={"signature": line, "size": cp.size},
        )
        names = got["cosigners"]
    assert names == sorted(lines)
    resp = await h.request("GET", f"/v1/log/checkpoint?size={cp.size}", person=h.people["obs"])
    note = await resp.read()
    from protocol.checkpoint import open_checkpoint

    served, signed = open_checkpoint(note, origin=ORIGIN, log_name=ORIGIN, log_key=h.init.log_key)
    assert served == cp
    assert require_trusted(served, signed, h.require_ledger().roster) == tuple(sorted(lines))


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("wrong-key", 422, "bad_checkpoint"),
        ("unknown-witness", 422, "bad_checkpoint"),
        ("garbage", 422, "bad_checkpoint"),
        ("unsigned-size", 404, "not_found"),
        ("other-checkpoint", 422, "bad_checkpoint"),
    ],
)
async def test_bad_cosignatures_change_nothing(
    talks: Harness, case: str, status: int, code: str
) -> None:
    h = talks
    cp, _, _ = await h.checkpoint()
    size = cp.size
    name = witness_name(ORIGIN, "north")
    ts = now_ms() // 1000
    if case == "wrong-key":
        line = cosign(cp, name, h.people["n-adv"].keys.signing, timestamp=ts)
    elif case == "unknown-witness":
        line = cosign(cp, f"{ORIGIN}/witness/west", h.people["n-adv"].keys.signing, timestamp=ts)
    elif case == "garbage":
        line = "— not a signature line"
    elif case == "unsigned-size":
        line = cosign(cp, name, h.people["n-head"].keys.signing, timestamp=ts)
        size = cp.size + 1000
    else:
        from protocol.checkpoint import Checkpoint

        other = Checkpoint(origin=ORIGIN, size=cp.size, root=b"\x00" * 32)
        line = cosign(other, name, h.people["n-head"].keys.signing, timestamp=ts)
    await h.token(h.people["n-head"])
    before = h.counts()
    resp = await h.request(
        "POST",
        "/v1/log/cosignatures",
        person=h.people["n-head"],
        body={"signature": line, "size": size},
    )
    assert resp.status == status, await resp.text()
    assert (await resp.json())["code"] == code
    assert h.counts() == before


@pytest.mark.parametrize(
    "case", ["dated-1970", "dated-in-the-future", "older-than-max-age", "older-than-the-last"]
)
async def test_cosignature_with_a_bad_timestamp_is_refused(talks: Harness, case: str) -> None:
    """A replayed or back-/forward-dated cosignature must never make a view look fresh."""
    h = talks
    cp, _, _ = await h.checkpoint()
    name = witness_name(ORIGIN, "north")
    head = h.people["n-head"]
    now = now_ms() // 1000
    if case == "older-than-the-last":
        good = cosign(cp, name, head.keys.signing, timestamp=now)
        await h.ok(
            "POST", "/v1/log/cosignatures", person=head, body={"signature": good, "size": cp.size}
        )
    ts = {
        "dated-1970": 0,
        "dated-in-the-future": now + 3600,
        "older-than-max-age": now - 24 * 3600,
        "older-than-the-last": now - 30,
    }[case]
    line = cosign(cp, name, head.keys.signing, timestamp=ts)
    await h.token(head)
    before = h.counts()
    resp = await h.request(
        "POST", "/v1/log/cosignatures", person=head, body={"signature": line, "size": cp.size}
    )
    assert resp.status == 422, await resp.text()
    assert (await resp.json())["code"] == "bad_cosignature_time"
    assert h.counts() == before
