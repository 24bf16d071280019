"""The desk's guards, each failing closed, named after the attack they stop."""

from __future__ import annotations

import asyncio

from client.desk.guards import COOKIE
from tests.adversarial.conftest import D1, World
from tests.desk.conftest import DeskFactory, base, launch

T = 30.0


async def test_no_token_is_refused(open_desk: DeskFactory) -> None:
    async with asyncio.timeout(T):
        desk, tc = await open_desk("s-adv")
        for path in ("/", "/draft/10", "/board", "/events", "/launch", "/launch?token=x"):
            resp = await tc.get(path, allow_redirects=False)
            assert resp.status == 403, path
            assert "proposal" not in await resp.text()


async def test_token_becomes_httponly_strict_cookie_and_leaves_the_url(
    open_desk: DeskFactory,
) -> None:
    async with asyncio.timeout(T):
        desk, tc = await open_desk("s-adv")
        resp = await tc.get(f"/launch?token={desk.sessions.token}", allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"] == "/"
        cookie = resp.headers["Set-Cookie"]
        assert cookie.startswith(COOKIE + "=")
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert desk.sessions.token not in cookie  # the session is not the launch token


async def test_forged_session_cookie_is_refused(open_desk: DeskFactory) -> None:
    async with asyncio.timeout(T):
        desk, tc = await open_desk("s-adv")
        resp = await tc.get("/", headers={"Cookie": f"{COOKIE}={desk.sessions.token}"})
        assert resp.status == 403


async def test_dns_rebinding_wrong_host_is_refused(open_desk: DeskFactory) -> None:
    async with asyncio.timeout(T):
        desk, tc = await open_desk("s-adv")
        await launch(desk, tc)
        for host in ("evil.example:80", "evil.example", "127.0.0.1", "127.0.0.1.evil.example"):
            resp = await tc.get("/", headers={"Host": host})
            assert resp.status == 421, host
            assert resp.headers["X-Docket-Error"] == "bad_host"
        resp = await tc.get(
            f"/launch?token={desk.sessions.token}", headers={"Host": "rebound.example:1"}
        )
        assert resp.status == 421


async def test_wrong_origin_is_refused(open_desk: DeskFactory) -> None:
    async with asyncio.timeout(T):
        desk, tc = await open_desk("s-adv")
        csrf = await launch(desk, tc)
        resp = await tc.get("/", headers={"Origin": "http://evil.example"})
        assert resp.status == 403
        resp = await tc.post(
            f"/ack/{D1}", data={"csrf": csrf}, headers={"Origin": "http://evil.example"}
        )
        assert resp.status == 403
        assert resp.headers["X-Docket-Error"] == "bad_origin"


async def test_cross_site_form_post_is_refused(open_desk: DeskFactory, world: World) -> None:
    """A form on another site posting to the desk: the browser sends the cookie only
    with SameSite=None, but even a request carrying it is refused by Sec-Fetch-Site,
    and one with no Origin at all (an old browser) by the Origin rule."""
    async with asyncio.timeout(T):
        desk, tc = await open_desk("s-adv")
        csrf = await launch(desk, tc)
        form = {"csrf": csrf, "channel": "plenary", "text": "forged"}
        size = desk.client.log.size
        resp = await tc.post("/compose", data=form, headers={"Sec-Fetch-Site": "cross-site"})
        assert resp.status == 403
        resp = await tc.post("/compose", data=form)  # no Origin
        assert resp.status == 403
        await desk.client.sync()
        assert desk.client.log.size == size


async def test_missing_csrf_token_is_refused(open_desk: DeskFactory) -> None:
    async with asyncio.timeout(T):
        desk, tc = await open_desk("s-adv")
        await launch(desk, tc)
        origin = {"Origin": base(tc)}
        for data in ({"channel": "plenary", "text": "x"}, {"csrf": "wrong", "text": "x"}):
            resp = await tc.post("/compose", data=data, headers=origin)
            assert resp.status == 403
            assert resp.headers["X-Docket-Error"] == "bad_csrf"
        resp = await tc.post(f"/ack/{D1}", headers={**origin, "X-Docket-CSRF": "wrong"})
        assert resp.status == 403


async def test_every_answer_has_strict_csp_and_no_store(open_desk: DeskFactory) -> None:
    async with asyncio.timeout(T):
        desk, tc = await open_desk("s-adv")
        await launch(desk, tc)
        for path in (
            "/",
            f"/draft/{D1}",
            "/board",
            "/roster",
            "/health",
            "/audit",
            "/evidence",
            "/compose",
            "/static/desk.js",
            "/nope",
            "/board/grid",
        ):
            resp = await tc.get(path)
            csp = resp.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
            assert "unsafe-inline" not in csp
            assert resp.headers["Cache-Control"] == "no-store", path
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
            assert resp.headers["Referrer-Policy"] == "no-referrer"
            text = await resp.text()
            assert "<script>" not in text and "onclick" not in text.lower(), path


async def test_null_origin_from_another_site_is_refused(open_desk: DeskFactory) -> None:
    """A sandboxed frame on another site posts with ``Origin: null``: without the
    browser's ``Sec-Fetch-Site: same-origin`` it is refused."""
    async with asyncio.timeout(T):
        desk, tc = await open_desk("s-adv")
        csrf = await launch(desk, tc)
        form = {"csrf": csrf, "channel": "plenary", "text": "forged"}
        for extra in ({}, {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}):
            resp = await tc.post("/compose", data=form, headers={"Origin": "null", **extra})
            assert resp.status == 403, extra
