"""Refuse compressed request bodies before they are inflated (gzip and deflate bombs).

aiohttp inflates a request body sent with ``Content-Encoding: gzip`` (or ``deflate``,
``br``) as it arrives, on the event loop, whatever the route: 200 KiB of gzip is 200 MiB
of zeros and a second of CPU, even when the handler has already refused the request,
because a kept-alive connection reads the rest of the body.  No Docket client
compresses requests (ciphertext does not compress), so any encoding other than
``identity`` is answered ``413 too_large`` at once and the connection is closed, which
stops the inflating.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from server.middlewares import problem


@web.middleware
async def refuse_encoded_bodies(request: web.Request, handler: Handler) -> web.StreamResponse:
    """``413 too_large`` for a request body with a ``Content-Encoding``."""
    encodings = request.headers.getall("Content-Encoding", [])
    if any(e.strip().lower() not in ("", "identity") for e in encodings):
        response = problem(413, "too_large", "compressed request bodies are not accepted")
        response.force_close()
        return response
    return await handler(request)
