"""``/v1/drafts``: streamed upload, and downloads for recipients."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from protocol.encoding import Fields
from protocol.envelope import MAX_META
from protocol.errors import BadValueError, MalformedError, TooLargeError
from protocol.receipt import Receipt
from server.appkeys import RECEIPTS, RELAY, SETTINGS
from server.errors import RequestTimeoutError
from server.handlers.common import caller_of, json_response, path_int, raw_json, read_json


async def _chunks(
    reader: aiohttp.StreamReader, *, idle: float, deadline: float
) -> AsyncIterator[bytes]:
    """The rest of the body, chunk by chunk, with an idle and an overall timeout."""
    loop = asyncio.get_running_loop()
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise RequestTimeoutError("the upload took too long")
        try:
            async with asyncio.timeout(min(idle, remaining)):
                chunk = await reader.readany()
        except TimeoutError:
            raise RequestTimeoutError("the upload stalled") from None
        except (ConnectionError, aiohttp.ClientPayloadError) as exc:
            raise MalformedError("the upload was interrupted") from exc
        if not chunk:
            return
        yield chunk


async def post_draft(request: web.Request) -> web.Response:
    """u32 BE meta length, canonical ``{"header", "keys"}``, ciphertext -> ``{"promise"}``."""
    caller = caller_of(request)
    settings = request.app[SETTINGS]
    limit = 4 + MAX_META + settings.max_draft
    if request.content_length is not None and request.content_length > limit:
        raise TooLargeError("upload larger than the largest draft")
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(settings.body_timeout):
            (length,) = struct.unpack(">I", await request.content.readexactly(4))
            if length > MAX_META:
                raise TooLargeError(f"upload meta larger than {MAX_META} bytes")
            meta = await request.content.readexactly(length)
    except TimeoutError:
        raise RequestTimeoutError("the upload header arrived too slowly") from None
    except asyncio.IncompleteReadError:
        raise MalformedError("the upload is truncated") from None
    except (ConnectionError, aiohttp.ClientPayloadError) as exc:
        raise MalformedError("the upload was interrupted") from exc
    chunks = _chunks(
        request.content,
        idle=settings.body_timeout,
        deadline=loop.time() + settings.upload_timeout,
    )
    promise = await request.app[RELAY].upload(caller, meta, chunks)
    return json_response({"promise": promise.to_json()})


async def get_draft(request: web.Request) -> web.Response:
    """``{"header", "index", "keys"}`` for a recipient device; 404 for anyone else."""
    caller = caller_of(request)
    index = path_int(request, "index")
    stored = await request.app[RELAY].draft(caller, index)
    # Canonical key order header < index < keys; the stored parts are canonical already.
    return raw_json(
        b'{"header":'
        + stored.header
        + b',"index":'
        + str(index).encode()
        + b',"keys":'
        + stored.keys
        + b"}"
    )


async def get_ciphertext(request: web.Request) -> web.StreamResponse:
    """The raw ciphertext for a recipient device; 404 for anyone else."""
    caller = caller_of(request)
    path, _ = await request.app[RELAY].ciphertext(caller, path_int(request, "index"))
    return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})


async def get_receipts(request: web.Request) -> web.Response:
    """``{"receipts": [{"entry", "index"}]}`` for sender, recipients, mediator, auditors."""
    caller = caller_of(request)
    items = await request.app[RECEIPTS].for_draft(caller, path_int(request, "index"))
    parts = [b'{"entry":' + body + b',"index":' + str(i).encode() + b"}" for i, body in items]
    return raw_json(b'{"receipts":[' + b",".join(parts) + b"]}")


async def post_receipts(request: web.Request) -> web.Response:
    """``{"receipts": [...]}`` (1-256) -> ``{"promises": [...]}``, all or none."""
    caller = caller_of(request)
    f = Fields(await read_json(request), "receipts")
    items = f.list("receipts", max_items=256)
    f.done()
    if not items:
        raise BadValueError("receipts: at least one receipt")
    receipts = [Receipt.from_json(item) for item in items]
    promises = await request.app[RECEIPTS].submit(caller, receipts)
    return json_response({"promises": [p.to_json() for p in promises]})
