"""The committed bad-input corpus, sent to every HTTP route.

For each route (tests/fuzz/routes.py) every case that fits it is sent, authenticated as
the route's caller where it needs one:

* JSON routes: every whole body of ``bodies.json``; every value of ``values.json``
  spliced into every field of the route's well-formed body, and the hostile ones once
  more with the enclosing signed record re-signed (so they reach the rules, not only
  the signature check);
* the upload route: every framing of ``uploads.json``, every value spliced into every
  field of the upload's meta part (re-signed too), and the bodies as whole uploads;
* routes with ``{id}`` or ``{index}``: every segment of ``segments.json``;
* routes with integer query parameters: every value of ``queries.json`` in each, the
  parameter repeated, and stray extra parameters;
* authenticated routes: every ``Authorization`` value of ``headers.json``;
* every route: the methods it does not take.

Every answer must pass :func:`tests.fuzz.routes.check`, every tenth is sent twice and
must answer the same (stable codes), and the database's row counts must not move.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from protocol.crypto import Rng
from tests.fuzz import gen_corpus
from tests.fuzz.routes import (
    ROUTES,
    Route,
    Talks,
    check,
    paths,
    prepare,
    resigned,
    route_id,
    splice,
    upload,
    value_of,
)
from tests.server.harness import Harness

CORPUS = Path(__file__).resolve().parent / "corpus"
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")


def load(name: str) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads((CORPUS / name).read_text())
    return cases


@pytest.fixture(scope="module")
def corpus() -> dict[str, list[dict[str, Any]]]:
    return {name: load(name) for name in gen_corpus.FILES}


@pytest.fixture
async def talks(tmp_path: Path, rng: Rng) -> AsyncIterator[Talks]:
    async with Harness.start(tmp_path, rng) as h:
        yield await prepare(h)


class Sender:
    """Sends requests to one route and checks every answer (some twice)."""

    def __init__(self, t: Talks, route: Route) -> None:
        self.t = t
        self.route = route
        self.sent = 0

    async def send(
        self,
        what: str,
        *,
        method: str | None = None,
        path: str | None = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        ok: bool | None = None,
    ) -> tuple[int, str]:
        route = self.route
        hdrs = self.t.headers(route) if headers is None else headers
        url = self.t.h.base + (path if path is not None else self.t.fill(route.path))
        method = method or route.method
        allowed = route.ok if ok is None else ok
        answers = []
        for _ in range(2 if self.sent % 10 == 0 else 1):
            resp = await self.t.h.session.request(method, url, data=data, headers=hdrs)
            body = await resp.read()
            answers.append(
                check(
                    resp.status,
                    resp.content_type,
                    body,
                    ok=allowed,
                    what=(route_id(route), what),
                )
            )
        self.sent += 1
        assert len(set(answers)) == 1, (route_id(route), what, answers)
        return answers[0]


async def _json_route(s: Sender, corpus: dict[str, list[dict[str, Any]]]) -> None:
    base = s.t.bases[s.route.path]
    for case in corpus["bodies.json"]:
        raw, _ = value_of(case)
        await s.send(f"body {case['name']}", data=raw)
    await _mutations(s, corpus, base.body, lambda body: body)


async def _mutations(
    s: Sender,
    corpus: dict[str, list[dict[str, Any]]],
    body: Any,
    frame: Any,
) -> None:
    base = s.t.bases[s.route.path]
    for path in paths(body):
        original = json.dumps(_at(body, path))
        for case in corpus["values.json"]:
            raw, value = value_of(case)
            if value is not None and json.dumps(value) == original:
                continue  # not a mutation
            await s.send(f"{path} = {case['name']}", data=frame(splice(body, path, raw)))
            if case["hostile"] and value is not None:
                again = resigned(base, path, value)
                if again is not None:
                    await s.send(f"{path} = {case['name']} (re-signed)", data=frame(again))


def _at(value: Any, path: tuple[str | int, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


async def _upload_route(s: Sender, corpus: dict[str, list[dict[str, Any]]]) -> None:
    base = s.t.bases["/v1/drafts"]
    octets = {**s.t.headers(s.route), "Content-Type": "application/octet-stream"}
    s_headers = octets
    for case in corpus["uploads.json"]:
        raw, _ = value_of(case)
        await s.send(f"upload {case['name']}", data=raw, headers=s_headers)
    for case in corpus["bodies.json"]:
        raw, _ = value_of(case)
        await s.send(f"meta {case['name']}", data=upload(raw, base.tail), headers=s_headers)

    def frame(meta: bytes) -> bytes:
        return upload(meta, base.tail)

    await _mutations(s, corpus, base.body, frame)


async def _path_route(s: Sender, corpus: dict[str, list[dict[str, Any]]]) -> None:
    route = s.route
    base = s.t.bases.get(route.path)
    data = None if base is None else json.dumps(base.body).encode()
    for case in corpus["segments.json"]:
        seg = str(case["segment"])
        path = route.path.replace("{index}", seg).replace("{id}", seg).replace("{path}", seg)
        await s.send(f"segment {case['name']}", path=path, data=data)


async def _query_route(s: Sender, corpus: dict[str, list[dict[str, Any]]]) -> None:
    route = s.route
    good = {"after": "0", "wait": "0", "limit": "10", "size": "1", "start": "0", "end": "1",
            "index": "0", "old": "1", "new": "2", "inline": "0", "batch": "0"}  # fmt: skip
    for name in route.query:
        for case in corpus["queries.json"]:
            params = {p: good[p] for p in route.query}
            params[name] = str(case["value"])
            query = "&".join(f"{k}={v}" for k, v in params.items())
            await s.send(f"?{name}={case['name']}", path=f"{route.path}?{query}")
        repeated = "&".join(f"{p}={good[p]}" for p in route.query) + f"&{name}=1"
        await s.send(f"?{name} twice", path=f"{route.path}?{repeated}")
    stray = "&".join(f"{p}={good[p]}" for p in route.query)
    await s.send("stray params", path=f"{route.path}?{stray}&x=1;DROP%20TABLE%20entries&%00=1")


async def _auth_headers(s: Sender, corpus: dict[str, list[dict[str, Any]]]) -> None:
    route = s.route
    base = s.t.bases.get(route.path)
    data = None if base is None else json.dumps(base.body).encode()
    for case in corpus["headers.json"]:
        value = str(case["authorization"])
        await s.send(f"authorization {case['name']}", headers={"Authorization": value}, data=data)
    await s.send("no authorization", headers={}, data=data)


@pytest.mark.parametrize("route", ROUTES, ids=route_id)
async def test_corpus_on_route(
    talks: Talks, corpus: dict[str, list[dict[str, Any]]], route: Route
) -> None:
    t = talks
    s = Sender(t, route)
    before = t.h.counts()
    if route.body == "json":
        await _json_route(s, corpus)
    elif route.body == "upload":
        await _upload_route(s, corpus)
    if "{" in route.path:
        await _path_route(s, corpus)
    if route.query:
        await _query_route(s, corpus)
    if route.auth is not None:
        await _auth_headers(s, corpus)
    taken = {r.method for r in ROUTES if r.path == route.path}
    for method in METHODS:
        if method not in taken:
            status, code = await s.send(f"method {method}", method=method, ok=False)
            assert (status, code) in ((405, "method_not_allowed"), (404, "not_found")), method
    # GET routes with a body they do not expect, and an empty POST body.
    await s.send("unexpected body" if route.method == "GET" else "empty body", data=b"{}")
    assert t.h.counts() == before, route_id(route)
    assert s.sent > 0


def test_every_route_is_fuzzed(tmp_path: Path) -> None:
    from server.app import create_app
    from server.datadir import init_data_dir

    data = tmp_path / "data"
    init_data_dir(data, "docket.test/talks")
    app = create_app(Harness.make_settings(data))
    registered = {
        (r.method, r.resource.canonical): r.handler
        for r in app.router.routes()
        if r.method != "HEAD" and r.resource is not None
    }
    assert set(registered) == {(r.method, r.path) for r in ROUTES}
    # And every query parameter a handler reads is fuzzed.
    for route in ROUTES:
        source = inspect.getsource(registered[(route.method, route.path)])
        read = set(re.findall(r'query_int\(\s*request,\s*"(\w+)"', source))
        assert read == set(route.query), route_id(route)


def test_corpus_is_up_to_date() -> None:
    for name in gen_corpus.FILES:
        assert gen_corpus.render(name) == (CORPUS / name).read_text(), (
            f"run python -m tests.fuzz.gen_corpus ({name} is stale)"
        )
