"""Desk fixtures: the adversarial suite's prepared talks and real server (see
:mod:`tests.adversarial.conftest`), and a desk over one participant's real client."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient, TestServer

from client.desk.app import Desk, build_app
from tests.adversarial.conftest import World, client_env, template, world  # noqa: F401

CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')

DeskFactory = Callable[[str], Awaitable[tuple[Desk, TestClient]]]  # type: ignore[type-arg]


@pytest.fixture
async def open_desk(world: World) -> AsyncIterator[DeskFactory]:  # noqa: F811
    """Open a desk (not yet logged in) for a member over the world's real server."""
    opened: list[TestClient] = []  # type: ignore[type-arg]

    async def make(member: str) -> tuple[Desk, TestClient]:  # type: ignore[type-arg]
        client = world.client(member)
        await client.sync()
        desk = Desk(client=client, follow=False)
        tc = TestClient(TestServer(build_app(desk), host="127.0.0.1"))
        await tc.start_server()
        opened.append(tc)
        return desk, tc

    yield make
    for tc in opened:
        await tc.close()


def base(tc: TestClient) -> str:  # type: ignore[type-arg]
    return str(tc.make_url("")).rstrip("/")


async def launch(desk: Desk, tc: TestClient) -> str:  # type: ignore[type-arg]
    """Open the launch URL (sets the session cookie); return the session's CSRF token."""
    resp = await tc.get(f"/launch?token={desk.sessions.token}", allow_redirects=False)
    assert resp.status == 303, await resp.text()
    assert resp.headers["Location"] == "/"
    page = await (await tc.get("/")).text()
    compose = await (await tc.get("/compose")).text()
    match = CSRF_RE.search(page) or CSRF_RE.search(compose)
    assert match is not None, compose[:800]
    return match.group(1)
