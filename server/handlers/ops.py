"""``/healthz`` and ``/metrics``."""

from __future__ import annotations

from aiohttp import web

from protocol.encoding import JSONValue
from server.appkeys import METRICS, STATE
from server.handlers.common import json_response


async def healthz(request: web.Request) -> web.Response:
    """``{"read_only", "size", "status"}``: status is ``ok`` or ``read_only``; a
    read-only server adds ``code`` and ``reason`` (what the operator must do)."""
    state = request.app[STATE]
    read_only = state.read_only is not None
    body: dict[str, JSONValue] = {
        "read_only": read_only,
        "size": state.committed_size,
        "status": "read_only" if read_only else "ok",
    }
    if state.read_only is not None:
        body["code"] = state.read_only_code
        body["reason"] = state.read_only
    return json_response(body)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition."""
    return web.Response(
        text=request.app[METRICS].render(), content_type="text/plain", charset="utf-8"
    )
