"""Hypothesis fuzzing of every HTTP route: random bodies, query strings, path segments
and ``Authorization`` headers, each answer held to :func:`tests.fuzz.routes.check`, and
the database's row counts unchanged at the end.

:data:`EXAMPLES` examples per route (derandomized, so CI runs are repeatable); with
``DOCKET_SOAK=1`` twenty times as many, freshly random each run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.crypto import Rng
from tests.fuzz.routes import ROUTES, Route, Talks, check, paths, prepare, route_id, splice, upload
from tests.server.harness import Harness

T = TypeVar("T")
SOAK = os.environ.get("DOCKET_SOAK") == "1"
EXAMPLES = 50 * (20 if SOAK else 1)

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=not SOAK,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)

FIELD_NAMES = sorted(
    {
        "genesis", "token", "device", "challenge", "sig", "delegation", "member", "role",
        "name", "args", "author", "op", "prev", "seq", "t", "talks", "time", "v", "receipts",
        "signature", "size", "header", "keys", "sign", "enc", "kind", "index", "entry",
        "ct_hash", "commit", "reason", "channel", "devices", "members", "delegations",
    }
)  # fmt: skip

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.text(max_size=24)
    | st.sampled_from(["AAAAAAAAAAAAAAAAAAAAAA", "A" * 43, "A" * 86, "north", "plenary", "—"])
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=20,
)


def encode(value: Any, *, pretty: bool) -> bytes:
    """JSON text of ``value`` (lone surrogates kept as they are)."""
    text = json.dumps(
        value, sort_keys=not pretty, ensure_ascii=pretty, indent=1 if pretty else None
    )
    return text.encode("utf-8", "surrogatepass")


header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)


class Background:
    """The talks served by a loop on a thread of its own, so that plain (synchronous)
    Hypothesis tests can drive them one example at a time."""

    def __init__(self, tmp_path: Path, rng: Rng) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self._stop = asyncio.Event()
        ready: concurrent.futures.Future[Talks] = concurrent.futures.Future()
        self._task = asyncio.run_coroutine_threadsafe(self._serve(tmp_path, rng, ready), self.loop)
        self.talks = ready.result(timeout=60)

    async def _serve(
        self, tmp_path: Path, rng: Rng, ready: concurrent.futures.Future[Talks]
    ) -> None:
        try:
            async with Harness.start(tmp_path, rng) as h:
                ready.set_result(await prepare(h))
                await self._stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self._task.result(timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=60)
        self.loop.close()


@pytest.fixture
def served(tmp_path: Path, rng: Rng) -> Iterator[Background]:
    background = Background(tmp_path, rng)
    try:
        yield background
    finally:
        background.close()


def _bodies(t: Talks, route: Route) -> st.SearchStrategy[bytes]:
    base = t.bases.get(route.path)
    plain = st.binary(max_size=400) | st.builds(encode, json_values, pretty=st.booleans())
    if base is None:
        return plain
    spots = paths(base.body)
    mutated = st.builds(
        lambda path, value: splice(base.body, path, encode(value, pretty=False)),
        st.sampled_from(spots),
        json_values,
    )
    if route.body == "upload":
        framed = st.builds(lambda meta: upload(meta, base.tail), mutated | plain)
        prefixed = st.builds(
            lambda n, rest: n.to_bytes(4, "big") + rest,
            st.integers(0, 2**32 - 1),
            st.binary(max_size=200),
        )
        return framed | prefixed | plain
    return mutated | plain


def _queries(route: Route) -> st.SearchStrategy[str]:
    names = st.sampled_from([*route.query, "x", "after", "size"])
    values = st.text(max_size=12) | st.integers(-(2**60), 2**60).map(str)
    return st.lists(st.tuples(names, values), max_size=4).map(
        lambda pairs: "&".join(f"{quote(k)}={quote(v)}" for k, v in pairs)
    )


@pytest.mark.parametrize("route", ROUTES, ids=route_id)
def test_fuzz_route(served: Background, route: Route) -> None:
    t = served.talks
    before = served.run(_counts(t))
    segment = st.text(max_size=20).map(lambda s: quote(s, safe=""))

    async def send(url: str, body: bytes | None, headers: dict[str, str]) -> None:
        resp = await t.h.session.request(route.method, url, data=body, headers=headers)
        raw = await resp.read()
        check(resp.status, resp.content_type, raw, ok=route.ok, what=(route_id(route), url))

    @FUZZ
    @given(
        body=_bodies(t, route) if route.body != "none" else st.none(),
        query=_queries(route),
        seg=segment,
        auth=st.none() | st.just("valid") | header_text,
    )
    def one(body: bytes | None, query: str, seg: str, auth: str | None) -> None:
        path = route.path
        if "{" in path:
            path = (
                path.replace("{index}", seg or "0")
                .replace("{id}", seg or "x")
                .replace("{path}", seg or "0/000")
            )
        headers: dict[str, str] = {}
        if auth == "valid":
            headers = t.headers(route)
        elif auth is not None:
            headers = {"Authorization": auth}
        url = f"{t.h.base}{path}?{query}" if query else t.h.base + path
        served.run(send(url, body, headers))

    one()
    assert served.run(_counts(t)) == before, route_id(route)


async def _counts(t: Talks) -> dict[str, int]:
    return t.h.counts()
