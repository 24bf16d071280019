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
    return raw_json(b'{"index":%d,"proof":%s,"size":%d}' % (index, _hashes(proof), size))


async def get_consistency(request: web.Request) -> web.Response:
    """``?old=M&new=N`` -> ``{"new", "old", "proof"}``."""
    caller_of(request)
    old = query_int(request, "old")
    new = query_int(request, "new")
    proof = await request.app[LOG].consistency(old, new)
    return raw_json(b'{"new":%d,"old":%d,"proof":%s}' % (new, old, _hashes(proof)))


def _hashes(proof: list[bytes]) -> bytes:
    """A proof as a canonical JSON list of base64url strings (base64url needs no JSON
    escaping; the answers above are canonical JSON, as a test checks against
    :func:`~protocol.encoding.canonical`, built without a JSON encoder per hash)."""
    return ("[" + ",".join(f'"{b64e(p)}"' for p in proof) + "]").encode("ascii")


async def post_cosignature(request: web.Request) -> web.Response:
    """``{"signature", "size"}`` -> ``{"cosigners": [names]}``."""
    caller_of(request)
    f = Fields(await read_json(request), "cosignature")
    line = f.str("signature", max_len=1024)
    size = f.int("size", lo=1)
    f.done()
    names = await request.app[LOG].cosign(size, line)
    return json_response({"cosigners": list(names)})
