"""A server error names the request id the server logged it under, so a user can quote
it to the host; a request id the client cannot trust to be the server's is not shown."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from client.errors import ServerError
from client.transport import Transport
from tests.client.serverproc import start_server


async def test_server_errors_carry_the_request_id(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data")
    try:
        async with Transport(server.url) as transport:
            with pytest.raises(ServerError) as raised:
                await transport.request("GET", "/v1/nothing", auth=False)
    finally:
        server.stop()
    err = raised.value
    assert (err.status, err.code) == (404, "not_found")
    assert len(err.request_id) == 16
    assert f"(request id {err.request_id})" in str(err)


async def test_a_hostile_request_id_is_not_printed() -> None:
    async def answer(request: web.Request) -> web.Response:
        body = '{"code":"internal","request_id":"\\u001b[2Jx","status":500,"title":"E"}'
        return web.Response(status=500, text=body, content_type="application/problem+json")

    app = web.Application()
    app.router.add_get("/v1/x", answer)
    async with TestServer(app) as server:
        transport = Transport(str(server.make_url("/")).rstrip("/"))
        try:
            with pytest.raises(ServerError) as raised:
                await transport.request("GET", "/v1/x", auth=False)
        finally:
            await transport.close()
    assert raised.value.request_id == ""
    assert "request id" not in str(raised.value) and "\x1b" not in str(raised.value)
