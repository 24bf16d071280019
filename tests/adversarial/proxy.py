"""A malicious server: a reverse proxy in front of a real Docket server that lies on purpose.

The real client talks to the proxy exactly as to a server.  The proxy forwards every
request to its upstream (a real ``docket-server`` app) and lets a test rewrite the
exchange:

* a **before** hook sees the request and may answer it itself (the request is then never
  forwarded: a swallowed write, a withheld draft, a frozen checkpoint);
* an **after** hook sees the upstream's answer and may change it (a mutated header,
  tampered ciphertext, a receipts list with one missing).

A :class:`LogView` goes further and replaces the whole log the proxy shows: entries,
checkpoints re-signed with the server's own log key (a compromised server holds it),
inclusion and consistency proofs, and the cosignatures witnesses post to it.  A view is
internally consistent, so a client can only catch a rewritten log by the signatures and
rules inside it, never by a sloppy proof: that is the strongest server the protocol must
withstand.

Every request the proxy saw is kept in :attr:`Proxy.requests` (``"GET /path?query"``).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientSession, ClientTimeout, web

from protocol import crypto
from protocol.checkpoint import Checkpoint, NoteSignature, format_note, sign_checkpoint
from protocol.encoding import JSONValue, b64e, canonical, parse
from protocol.errors import ProtocolError
from protocol.merkle import MemoryTree

PROBLEM_TYPE = "application/problem+json"


@dataclass(slots=True)
class Exchange:
    """One request through the proxy and, once known, its answer (``status`` 0: none yet)."""

    method: str
    path: str
    query: dict[str, str]
    body: bytes
    authorization: str | None
    status: int = 0
    content_type: str = ""
    response: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def route(self) -> str:
        """``"METHOD /path"``, what hook patterns match."""
        return f"{self.method} {self.path}"

    def json(self) -> Any:
        """The answer as parsed canonical JSON."""
        return parse(self.response, max_size=len(self.response) + 1, max_depth=32)

    def request_json(self) -> Any:
        """The request body as parsed canonical JSON."""
        return parse(self.body, max_size=len(self.body) + 1, max_depth=32)

    def answer(self, body: bytes, *, status: int = 200, content_type: str) -> None:
        """Answer with raw bytes (replacing any answer so far)."""
        self.status = status
        self.content_type = content_type
        self.response = body
        self.headers = {}

    def answer_json(self, value: JSONValue, *, status: int = 200) -> None:
        """Answer with canonical JSON, as the real server does."""
        self.answer(canonical(value), status=status, content_type="application/json")

    def answer_problem(self, status: int, code: str, detail: str = "") -> None:
        """Answer with the server's problem+json error shape."""
        body = {
            "code": code,
            "detail": detail or code,
            "status": status,
            "title": code.replace("_", " "),
            "type": f"urn:docket:error:{code}",
        }
        self.answer(canonical(body), status=status, content_type=PROBLEM_TYPE)


Hook = Callable[[Exchange], Awaitable[None] | None]


class Proxy:
    """A reverse proxy on 127.0.0.1 with per-test hooks (see the module docstring)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.view: LogView | None = None
        self.requests: list[str] = []
        self._before: list[tuple[re.Pattern[str], Hook]] = []
        self._after: list[tuple[re.Pattern[str], Hook]] = []
        self._session: ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        """Listen on a free loopback port; return the proxy's URL."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._session = ClientSession(timeout=ClientTimeout(total=30))
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = int(self._runner.addresses[0][1])
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def close(self) -> None:
        """Stop listening and close the upstream session."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def before(self, route: str, hook: Hook) -> None:
        """Run ``hook`` on requests whose ``"METHOD /path"`` fully matches ``route``
        before forwarding; a hook that answers stops the request from being forwarded."""
        self._before.append((re.compile(route), hook))

    def after(self, route: str, hook: Hook) -> None:
        """Run ``hook`` on the upstream's answer to matching requests."""
        self._after.append((re.compile(route), hook))

    def clear(self) -> None:
        """Behave honestly again (hooks and view removed)."""
        self._before.clear()
        self._after.clear()
        self.view = None

    def seen(self, route: str) -> int:
        """How many requests fully matched ``route`` (``"METHOD /path"``, no query)."""
        pattern = re.compile(route)
        return sum(1 for r in self.requests if pattern.fullmatch(r.split("?", 1)[0]))

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        ex = Exchange(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            body=await request.read(),
            authorization=request.headers.get("Authorization"),
        )
        self.requests.append(f"{request.method} {request.path_qs}")
        for pattern, hook in self._before:
            if pattern.fullmatch(ex.route):
                await _call(hook, ex)
                if ex.status:
                    return _response(ex)
        if self.view is not None:
            await self.view.handle(ex)
        if not ex.status:
            await self._forward(request, ex)
        for pattern, hook in self._after:
            if pattern.fullmatch(ex.route):
                await _call(hook, ex)
        return _response(ex)

    async def _forward(self, request: web.Request, ex: Exchange) -> None:
        assert self._session is not None
        headers = {
            k: v for k, v in request.headers.items() if k in ("Authorization", "Content-Type")
        }
        async with self._session.request(
            ex.method,
            self.upstream + request.path_qs,
            data=ex.body or None,
            headers=headers,
            allow_redirects=False,
        ) as resp:
            ex.status = resp.status
            ex.content_type = resp.headers.get("Content-Type", "")
            ex.response = await resp.read()
            ex.headers = {k: v for k, v in resp.headers.items() if k == "Retry-After"}


async def _call(hook: Hook, ex: Exchange) -> None:
    result = hook(ex)
    if inspect.isawaitable(result):
        await result


def _response(ex: Exchange) -> web.Response:
    headers = dict(ex.headers)
    if ex.content_type:
        headers["Content-Type"] = ex.content_type
    return web.Response(status=ex.status, body=ex.response, headers=headers)


# --- a whole rewritten log ------------------------------------------------------------------


class LogView:
    """A log the proxy serves instead of the real one, consistent in itself.

    ``entries`` are the raw entries from index 0.  Checkpoints are signed with ``key``
    (the server's log key, under ``log_name``) at the view's size, or at
    :attr:`frozen` when set; cosignatures posted to the proxy are kept and served with
    the checkpoint at their size, as a real server would.
    """

    def __init__(
        self, entries: Sequence[bytes], *, key: crypto.SigningKey, origin: str, log_name: str
    ) -> None:
        self.entries = list(entries)
        self.tree = MemoryTree.from_entries(self.entries)
        self.key = key
        self.origin = origin
        self.log_name = log_name
        self.frozen: int | None = None
        self.cosignatures: dict[int, list[str]] = {}

    @property
    def size(self) -> int:
        return len(self.entries)

    def root(self, size: int | None = None) -> bytes:
        return self.tree.root(self.size if size is None else size)

    def note(self, size: int | None = None) -> bytes:
        """The signed checkpoint note at ``size`` (default: the latest) with the
        cosignatures collected for it."""
        if size is None:
            size = self.size if self.frozen is None else self.frozen
        cp = Checkpoint(origin=self.origin, size=size, root=self.root(size))
        lines = [sign_checkpoint(cp, self.log_name, self.key), *self.cosignatures.get(size, [])]
        return format_note(cp.body(), lines)

    async def handle(self, ex: Exchange) -> None:
        """Answer the log routes from the view; leave every other request alone."""
        latest = self.size if self.frozen is None else self.frozen
        try:
            if ex.route == "GET /v1/log/checkpoint":
                size = int(ex.query.get("size", "-1"))
                if size > latest:
                    ex.answer_problem(404, "not_found", "no checkpoint at that size")
                    return
                note = self.note(None if size < 0 else size)
                ex.answer(note, content_type="text/plain; charset=utf-8")
            elif ex.route == "GET /v1/log/entries":
                start, end = int(ex.query["start"]), min(int(ex.query["end"]), latest)
                items: list[JSONValue] = [
                    {"entry": parse(self.entries[i]), "index": i}
                    for i in range(start, min(end, start + 1000))
                ]
                ex.answer_json({"entries": items})
            elif ex.route == "GET /v1/log/proof/consistency":
                old, new = int(ex.query["old"]), int(ex.query["new"])
                if not 0 < old <= new <= latest:
                    ex.answer_problem(400, "bad_query", "sizes out of range")
                    return
                proof = self.tree.consistency_proof(old, new)
                ex.answer_json({"new": new, "old": old, "proof": [b64e(p) for p in proof]})
            elif ex.route == "GET /v1/log/proof/inclusion":
                index, size = int(ex.query["index"]), int(ex.query["size"])
                if not 0 <= index < size <= latest:
                    ex.answer_problem(400, "bad_query", "index out of range")
                    return
                proof = self.tree.inclusion_proof(index, size)
                ex.answer_json({"index": index, "proof": [b64e(p) for p in proof], "size": size})
            elif ex.route == "POST /v1/log/cosignatures":
                body = ex.request_json()
                line = str(body["signature"])
                NoteSignature.from_line(line)
                names = self.cosignatures.setdefault(int(body["size"]), [])
                names.append(line if line.endswith("\n") else line + "\n")
                ex.answer_json({"cosigners": [n.split(" ")[1] for n in names]})
        except (KeyError, ValueError, ProtocolError) as exc:
            ex.answer_problem(400, "bad_query", str(exc))
