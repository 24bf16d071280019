"""``/v1/annexes`` and ``/v1/drafts/{index}/annex/{i}``: chunked annex streams
(see :mod:`server.services.annexes`)."""

from __future__ import annotations

from aiohttp import web

from protocol import annex
from protocol.encoding import Fields
from server.appkeys import ANNEXES
from server.handlers.common import caller_of, json_response, path_int, read_body, read_json


def _id(request: web.Request) -> str:
    return request.match_info["id"]


async def post_annex(request: web.Request) -> web.Response:
    """``{"length", "chunk", "chunks"}`` -> ``{"id"}``: declare an upload."""
    caller = caller_of(request)
    f = Fields(await read_json(request), "annex upload")
    length = f.int("length", lo=0, hi=annex.MAX_LENGTH)
    chunk = f.int("chunk", lo=1)
    chunks = f.int("chunks", lo=1)
    f.done()
    upload = await request.app[ANNEXES].create(caller, length=length, chunk=chunk, chunks=chunks)
    return json_response({"id": upload.id}, status=201)


async def get_annex(request: web.Request) -> web.Response:
    """The upload's state for its owner: chunks held and their hashes (to resume)."""
    return json_response(await request.app[ANNEXES].status(caller_of(request), _id(request)))


async def put_chunk(request: web.Request) -> web.Response:
    """One ciphertext chunk -> ``{"received": n}`` once it is durable."""
    caller = caller_of(request)
    index = path_int(request, "chunk")
    data = await read_body(request, annex.MAX_CHUNK + annex.ABYTES)
    received = await request.app[ANNEXES].put_chunk(caller, _id(request), index, data)
    return json_response({"received": received})


async def post_finish(request: web.Request) -> web.Response:
    """``{"hash"}``: the annex hash the sender will name; checked over the chunks held."""
    caller = caller_of(request)
    f = Fields(await read_json(request), "annex finish")
    claimed = f.bytes("hash", length=32)
    f.done()
    await request.app[ANNEXES].finish(caller, _id(request), claimed)
    return json_response({"finished": True})


async def post_attach(request: web.Request) -> web.Response:
    """``{"index"}``: attach the finished annex to the caller's logged draft."""
    caller = caller_of(request)
    f = Fields(await read_json(request), "annex attach")
    index = f.int("index", lo=1)
    f.done()
    await request.app[ANNEXES].attach(caller, _id(request), index)
    return json_response({"attached": index})


async def get_chunk(request: web.Request) -> web.StreamResponse:
    """Chunk ``i`` of the annex of the draft at ``index``, for the draft's readers."""
    caller = caller_of(request)
    path = await request.app[ANNEXES].chunk_path(
        caller, path_int(request, "index"), path_int(request, "chunk")
    )
    return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})
