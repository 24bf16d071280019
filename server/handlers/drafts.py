"""``/v1/drafts``: streamed upload, and downloads for recipients."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from protocol.encoding import Fields, parse
from protocol.envelope import MAX_META
from protocol.errors import BadValueError, MalformedError, TooLargeError
from protocol.hotparse import parse_hot
from protocol.receipt import Receipt
from server.appkeys import QUOTAS, RECEIPTS, RELAY, SETTINGS
from server.errors import RequestTimeoutError
from server.handlers.common import caller_of, path_int, raw_json, read_body


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
    quotas = request.app[QUOTAS]
    quotas.draft(caller.member.id)
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
    chunks = quotas.metered(
        caller.member.id,
        _chunks(
            request.content,
            idle=settings.body_timeout,
            deadline=loop.time() + settings.upload_timeout,
        ),
    )
    promise = await request.app[RELAY].upload(caller, meta, chunks)
    # The promise's bytes are canonical already: embed them (no parse and re-encode).
    return raw_json(b'{"promise":' + promise.raw + b"}")


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
    found = await request.app[RELAY].ciphertext(caller, path_int(request, "index"))
    if isinstance(found, bytes):  # small: held in the database, at most 64 KiB
        return web.Response(body=found, headers={"Content-Type": "application/octet-stream"})
    return _DeadlineFileResponse(
        found,
        deadline=request.app[SETTINGS].upload_timeout,
        headers={"Content-Type": "application/octet-stream"},
    )


class _DeadlineFileResponse(web.FileResponse):
    """A file download cut off after ``deadline`` seconds.

    A reader that stops reading must not hold the connection and the open file forever:
    a download gets as long as an upload may take.  (aiohttp sends the file in
    ``prepare``, which it calls once the handler returned.)
    """

    def __init__(self, path: Path, *, deadline: float, headers: dict[str, str]) -> None:
        super().__init__(path, headers=headers)
        self._deadline = deadline

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self.prepared:
            return self._payload_writer
        try:
            async with asyncio.timeout(self._deadline):
                return await super().prepare(request)
        except TimeoutError:
            if request.transport is not None:
                request.transport.close()
            return None


async def get_receipts(request: web.Request) -> web.Response:
    """``{"receipts": [{"entry", "index"}]}`` for sender, recipients, mediator, auditors."""
    caller = caller_of(request)
    items = await request.app[RECEIPTS].for_draft(caller, path_int(request, "index"))
    parts = [b'{"entry":' + body + b',"index":' + str(i).encode() + b"}" for i, body in items]
    return raw_json(b'{"receipts":[' + b",".join(parts) + b"]}")


async def post_receipts(request: web.Request) -> web.Response:
    """``{"receipts": [...]}`` (1-256) -> ``{"promises": [...]}``, all or none."""
    caller = caller_of(request)
    limit = request.app[SETTINGS].max_body
    body = await read_body(request, limit)
    receipts = _receipts_hot(body)
    if receipts is None:
        if not body:
            raise MalformedError("expected a JSON body")
        f = Fields(parse(body, max_size=limit), "receipts")
        items = f.list("receipts", max_items=MAX_RECEIPTS)
        f.done()
        if not items:
            raise BadValueError("receipts: at least one receipt")
        receipts = [Receipt.from_json(item) for item in items]
    promises = await request.app[RECEIPTS].submit(caller, receipts)
    return raw_json(b'{"promises":[' + b",".join(p.raw for p in promises) + b"]}")


MAX_RECEIPTS = 256
_RECEIPTS_HEAD = b'{"receipts":['


_RECEIPTS_TAIL = b"]}"
_BETWEEN = b"},{"


def _receipts_hot(body: bytes) -> list[Receipt] | None:
    """The receipts of a canonical batch of canonical receipts, cut apart by bytes and
    built by :func:`~protocol.hotparse.parse_hot`; ``None`` for anything else (then the
    general path decides and reports the exact error).

    Why it accepts only what the general path accepts, with equal receipts: the body is
    cut at every ``},{`` between ``{"receipts":[`` and ``]}``; each piece must be a
    receipt ``parse_hot`` accepts, i.e. canonical receipt JSON (which holds no braces:
    base64url, integers, ``null`` and ``[a-z0-9_]`` words only), equal to what
    :meth:`Receipt.from_bytes` builds.  The body is then exactly ``{"receipts":[`` + the
    receipts' canonical bytes joined by ``,`` + ``]}``: the canonical encoding of the
    document the general path would parse.  A piece that is not a whole receipt (a
    ``},{`` inside some string, another member, any non-canonical byte) is declined.
    """
    if not body.startswith(_RECEIPTS_HEAD) or not body.endswith(_RECEIPTS_TAIL):
        return None
    inner = body[len(_RECEIPTS_HEAD) : -len(_RECEIPTS_TAIL)]  # "{...},...,{...}"
    if inner[:1] != b"{" or inner[-1:] != b"}":
        return None
    pieces = inner[1:-1].split(_BETWEEN)
    if len(pieces) > MAX_RECEIPTS:
        return None
    receipts: list[Receipt] = []
    for piece in pieces:
        receipt = parse_hot(b"{" + piece + b"}")
        if type(receipt) is not Receipt:
            return None
        receipts.append(receipt)
    return receipts
