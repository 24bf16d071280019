"""``/tile/...`` and ``/checkpoint``: the log as C2SP tlog-tiles (:mod:`protocol.tiles`).

Tiles are reads of stored perfect-subtree hashes (a slice of the in-memory upper tree
that proofs use, :class:`~server.services.log.ProofNodes`, or one range read of the
``nodes`` table), so serving one never hashes.  A tile whose nodes do not all exist
yet in the committed tree is ``404 not_found``; a full tile is immutable and says so to
caches, a partial one is cached briefly (it is superseded as the tree grows), and the
checkpoint not at all beyond a second.  Like ``/v1/log/*`` (the log's metadata is for
the talks' participants and witnesses), every route needs a bearer token, and the cache
headers are ``private``: a mirror that fetched tiles with a token may republish them as
static files.
"""

from __future__ import annotations

from aiohttp import web

from protocol.errors import ProtocolError
from protocol.tiles import (
    ENTRIES,
    TILE_WIDTH,
    encode_bundle,
    parse_tile_path,
    tile_coords,
    tile_width,
)
from server.appkeys import LOG, SETTINGS, STATE
from server.errors import NotFoundError
from server.handlers.common import caller_of

FULL_CACHE = "private, max-age=31536000, immutable"
PARTIAL_CACHE = "private, max-age=10"
CHECKPOINT_CACHE = "private, max-age=1, must-revalidate"


def _reader(request: web.Request) -> str:
    """Check the caller unless the operator made the tiles public (``public_tiles``);
    return the cache scope the answer may have."""
    if request.app[SETTINGS].public_tiles:
        return "public"
    caller_of(request)
    return "private"


def _cache(value: str, scope: str) -> str:
    return value.replace("private", scope, 1)


async def get_tile_checkpoint(request: web.Request) -> web.Response:
    """The latest checkpoint note, with its cosignatures (as ``/v1/log/checkpoint``)."""
    scope = _reader(request)
    note = await request.app[LOG].checkpoint(None)
    response = web.Response(body=note, content_type="text/plain", charset="utf-8")
    response.headers["Cache-Control"] = _cache(CHECKPOINT_CACHE, scope)
    return response


async def get_tile(request: web.Request) -> web.Response:
    """A hash tile ``tile/<L>/<N>[.p/<W>]`` or entry bundle ``tile/entries/<N>[.p/<W>]``."""
    scope = _reader(request)
    level, index, width = parse_tile_path("tile/" + request.match_info["path"])
    state = request.app[STATE]
    state.require_ledger()
    size = state.committed_size
    have = tile_width(0 if level == ENTRIES else int(level), index, size)
    if have < width:
        raise NotFoundError("that tile does not exist yet in the committed tree")
    log = request.app[LOG]
    if level == ENTRIES:
        start = index * TILE_WIDTH
        entries: list[bytes] = []
        while len(entries) < width:
            got = await log.entries(start + len(entries), start + width)
            if not got:  # pragma: no cover - within the committed size
                raise NotFoundError("that tile does not exist yet in the committed tree")
            entries.extend(body for _, body in got)
        try:
            body = encode_bundle(entries)
        except ProtocolError as exc:
            raise NotFoundError(
                "an entry of this bundle is longer than a bundle can carry: read it from "
                "/v1/log/entries"
            ) from exc
    else:
        coords = tile_coords(int(level), index, width)
        body = await log.nodes.run(coords[0][0], coords[0][1], coords[-1][1] + 1)
    response = web.Response(body=body, content_type="application/octet-stream")
    cache = FULL_CACHE if width == TILE_WIDTH else PARTIAL_CACHE
    response.headers["Cache-Control"] = _cache(cache, scope)
    return response
