"""The log as C2SP tlog-tiles, checked from outside: a monitor that knows only the log's
public key fetches ``/checkpoint`` and tiles over HTTP from a real ``docket-server``
process, rebuilds the tree and verifies it against the signed checkpoint."""

from __future__ import annotations

from pathlib import Path

from protocol import merkle
from protocol.checkpoint import open_checkpoint
from protocol.crypto import Rng
from protocol.encoding import canonical
from protocol.tiles import (
    ENTRIES,
    TILE_WIDTH,
    decode_bundle,
    split_hashes,
    subtree_root,
    tile_path,
    tile_width,
    tree_root,
)
from server.datadir import init_data_dir
from tests.server.harness import ORIGIN, Harness, Person
from tests.server.test_cli import serving

ENTRIES_WANTED = TILE_WIDTH + 40  # one full level-0 tile, one partial, one level-1 node


async def _fetch(h: Harness, reader: Person, path: str) -> tuple[int, bytes, str]:
    resp = await h.request("GET", "/" + path, person=reader)
    return resp.status, await resp.read(), resp.headers.get("Cache-Control", "")


async def _monitor(h: Harness, reader: Person, log_key: bytes) -> tuple[int, list[bytes]]:
    """What an outside monitor does: checkpoint, level-0 tiles, root, higher tiles,
    entry bundles.  Returns the verified size and the entries."""
    status, note, cache = await _fetch(h, reader, "checkpoint")
    assert status == 200 and "max-age=1" in cache
    cp, _ = open_checkpoint(note, origin=ORIGIN, log_name=ORIGIN, log_key=log_key)
    leaves: list[bytes] = []
    entries: list[bytes] = []
    for n in range((cp.size + TILE_WIDTH - 1) // TILE_WIDTH):
        width = tile_width(0, n, cp.size)
        status, data, cache = await _fetch(h, reader, tile_path(0, n, width))
        assert status == 200, data
        assert ("immutable" in cache) == (width == TILE_WIDTH)
        leaves += split_hashes(data, width)
        status, data, _ = await _fetch(h, reader, tile_path(ENTRIES, n, width))
        assert status == 200, data
        entries += decode_bundle(data, width)
    assert tree_root(leaves) == cp.root  # the tiles are the signed tree
    assert [merkle.leaf_hash(e) for e in entries] == leaves  # and the bundles its leaves
    for n in range(tile_width(1, 0, cp.size)):
        status, data, _ = await _fetch(h, reader, tile_path(1, 0, tile_width(1, 0, cp.size)))
        assert status == 200
        hashes = split_hashes(data, tile_width(1, 0, cp.size))
        assert hashes[n] == subtree_root(leaves[n * TILE_WIDTH : (n + 1) * TILE_WIDTH])
    return cp.size, entries


async def test_monitor_rebuilds_the_signed_tree_from_tiles(tmp_path: Path, rng: Rng) -> None:
    data = tmp_path / "data"
    init = init_data_dir(data, ORIGIN)
    async with serving(data) as server, Harness.attach(server.url, data, init, rng) as h:
        await h.standard_talks()
        sender = h.people["n-adv"]
        while h.require_ledger().size < ENTRIES_WANTED:
            await h.send(sender, h.seal(sender, "plenary", "tile"))
            await h.sync()
        await h.checkpoint()
        reader = h.people["obs"]
        size, entries = await _monitor(h, reader, init.log_key)
        assert size >= ENTRIES_WANTED
        served = await h.ok("GET", f"/v1/log/entries?start=0&end={TILE_WIDTH}", person=reader)
        assert [canonical(e["entry"]) for e in served["entries"]] == entries[:TILE_WIDTH]


async def test_tiles_refuse_what_does_not_exist_and_strangers(tmp_path: Path, rng: Rng) -> None:
    """A tile beyond the committed tree, a non-canonical path, a wider partial tile than
    exists: ``404``/``400`` with a problem code; without a token, ``401``."""
    data = tmp_path / "data"
    init = init_data_dir(data, ORIGIN)
    async with serving(data) as server, Harness.attach(server.url, data, init, rng) as h:
        await h.standard_talks()
        await h.checkpoint()
        reader = h.people["obs"]
        size = h.require_ledger().size
        for path, status, code in [
            (tile_path(0, 0), 404, "not_found"),  # not full yet
            (tile_path(0, 0, size + 1), 404, "not_found"),
            (tile_path(0, 1, 1), 404, "not_found"),
            (tile_path(1, 0, 1), 404, "not_found"),
            (tile_path(ENTRIES, 0), 404, "not_found"),
            ("tile/0/0", 400, "malformed"),
            ("tile/0/000.p/256", 400, "malformed"),
            ("tile/9/000", 400, "malformed"),
        ]:
            resp = await h.request("GET", "/" + path, person=reader)
            body = await resp.json(content_type=None)
            assert (resp.status, body["code"]) == (status, code), (path, body)
        ok, data_, _ = await _fetch(h, reader, tile_path(0, 0, size))
        assert ok == 200 and len(data_) == 32 * size
        for path in ("checkpoint", tile_path(0, 0, size)):
            resp = await h.request("GET", "/" + path)
            assert resp.status == 401


async def test_public_tiles_need_no_token_and_may_be_cached_by_anyone(
    tmp_path: Path, rng: Rng
) -> None:
    """With ``public_tiles`` an outside monitor or a CDN reads the tiles without a token;
    without it (above) a stranger gets ``401``."""
    data = tmp_path / "data"
    init = init_data_dir(data, ORIGIN)
    env = {"DOCKET_PUBLIC_TILES": "true"}
    async with serving(data, env=env) as server, Harness.attach(server.url, data, init, rng) as h:
        await h.standard_talks()
        await h.checkpoint()
        size = h.require_ledger().size
        note = await h.request("GET", "/checkpoint")
        assert note.status == 200
        assert note.headers["Cache-Control"].startswith("public")
        tile = await h.request("GET", "/" + tile_path(0, 0, size))
        assert tile.status == 200 and len(await tile.read()) == 32 * size
        assert tile.headers["Cache-Control"] == "public, max-age=10"
        assert (await h.request("GET", "/v1/log/checkpoint")).status == 401  # the API is not
