"""``/v1/log/*``: checkpoints, entries, proofs and cosignatures."""

from __future__ import annotations

from aiohttp import web

from protocol.encoding import Fields, b64e
from server.appkeys import LOG
from server.handlers.common import caller_of, json_response, query_int, raw_json, read_json


async def get_checkpoint(request: web.Request) -> web.Response:
    """The C2SP checkpoint note (latest or ``?size=N``) with collected cosignatures."""
    caller_of(request)
    size = query_int(request, "size", default=-1, lo=-1)
    note = await request.app[LOG].checkpoint(None if size < 0 else size)
    return web.Response(body=note, content_type="text/plain", charset="utf-8")


async def get_entries(request: web.Request) -> web.Response:
    """``?start=A&end=B`` -> ``{"entries": [{"entry", "index"}]}`` (end exclusive)."""
    caller_of(request)
    start = query_int(request, "start")
    end = query_int(request, "end")
    items = await request.app[LOG].entries(start, end)
    parts = [b'{"entry":' + body + b',"index":' + str(i).encode() + b"}" for i, body in items]
    return raw_json(b'{"entries":[' + b",".join(parts) + b"]}")


async def get_inclusion(request: web.Request) -> web.Response:
    """``?index=I&size=N`` -> ``{"index", "proof", "size"}``."""
    caller_of(request)
    index = query_int(request, "index")
    size = query_int(request, "size")
    proof = await request.app[LOG].inclusion(index, size)
    return json_response({"index": index, "proof": [b64e(p) for p in proof], "size": size})


async def get_consistency(request: web.Request) -> web.Response:
    """``?old=M&new=N`` -> ``{"new", "old", "proof"}``."""
    caller_of(request)
    old = query_int(request, "old")
    new = query_int(request, "new")
    proof = await request.app[LOG].consistency(old, new)
    return json_response({"new": new, "old": old, "proof": [b64e(p) for p in proof]})


async def post_cosignature(request: web.Request) -> web.Response:
    """``{"signature", "size"}`` -> ``{"cosigners": [names]}``."""
    caller_of(request)
    f = Fields(await read_json(request), "cosignature")
    line = f.str("signature", max_len=1024)
    size = f.int("size", lo=1)
    f.done()
    names = await request.app[LOG].cosign(size, line)
    return json_response({"cosigners": list(names)})
