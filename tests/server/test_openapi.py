"""``/v1/openapi.json``: a valid OpenAPI 3.1 document that describes exactly the routes
``server/routes.py`` serves, and whose schemas the real answers of a real server meet.

When a route is added, ``test_every_route_is_described_and_nothing_else`` names it;
describe it in ``PATHS`` in server/openapi.py and exercise it in
``test_real_answers_match_the_described_schemas``.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
from aiohttp import ClientResponse
from openapi_spec_validator import validate as validate_openapi
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

import server.services.sequencer as sequencer_module
from protocol.checkpoint import cosign
from protocol.crypto import Rng
from protocol.encoding import b64e
from protocol.genesis import witness_name
from protocol.keys import DeviceKeys
from server.app import create_app
from server.clock import now_ms
from server.datadir import init_data_dir
from server.openapi import document
from tests.server.harness import ORIGIN, Harness
from tests.server.test_annexes import CHUNK, sealed_chunks
from tests.server.test_invitations_roster import _acceptance

DOC_URI = "urn:docket:openapi"
METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for path, item in doc["paths"].items():
        for method in item:
            if method in METHODS:
                yield method.upper(), path


def test_the_document_is_valid_openapi_3_1() -> None:
    doc = document()
    assert doc["openapi"].startswith("3.1.")
    validate_openapi(doc)  # raises with the offending location
    for schema in doc["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)


def test_every_route_is_described_and_nothing_else(tmp_path: Path) -> None:
    data = tmp_path / "data"
    init_data_dir(data, ORIGIN)
    app = create_app(Harness.make_settings(data))
    served = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        # aiohttp answers HEAD for every GET by itself; OpenAPI implies it likewise.
        if route.resource is not None and route.method != "HEAD"
    }
    described = set(_operations(document()))
    missing = sorted(served - described)
    extra = sorted(described - served)
    assert not missing, (
        "routes served by server/routes.py but not described in server/openapi.py PATHS: "
        + ", ".join(f"{m} {p}" for m, p in missing)
    )
    assert not extra, (
        "operations described in server/openapi.py PATHS that server/routes.py does not "
        "serve: " + ", ".join(f"{m} {p}" for m, p in extra)
    )


@dataclass
class Checker:
    """Validates recorded answers against the document's schemas."""

    doc: dict[str, Any]
    registry: Registry[Any] = field(init=False)
    answered: set[tuple[str, str]] = field(default_factory=set)
    errors: set[tuple[str, str, int]] = field(default_factory=set)

    def __post_init__(self) -> None:
        resource = Resource.from_contents(self.doc, default_specification=DRAFT202012)
        self.registry = Registry().with_resource(DOC_URI, resource)

    def template(self, path: str) -> str | None:
        for template in self.doc["paths"]:
            # A tile path spans segments (``/tile/0/x001/234``); other parameters do not.
            pattern = re.sub(r"\\\{path\\\}", ".+", re.escape(template))
            pattern = re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", pattern)
            if re.fullmatch(pattern, path):
                return str(template)
        return None

    def validate(self, pointer: str, instance: Any, what: str) -> None:
        validator = jsonschema.Draft202012Validator(
            {"$ref": f"{DOC_URI}#/{pointer}"}, registry=self.registry
        )
        problems = [e.message for e in validator.iter_errors(instance)]
        assert not problems, f"{what}: {problems}: {instance!r:.300}"

    def check(self, method: str, url: str, status: int, ctype: str, body: bytes) -> None:
        path = urlsplit(url).path
        what = f"{method} {path} {status}"
        template = self.template(path)
        item = {} if template is None else self.doc["paths"][template]
        if method.lower() not in item:
            # Not a described operation: the answer is the route table's own refusal.
            assert status == (404 if template is None else 405), what
            assert ctype == "application/problem+json", what
            self.validate("components/schemas/Problem", json.loads(body), what)
            self.errors.add((method, path, status))
            return
        assert template is not None
        responses = item[method.lower()]["responses"]
        key = str(status) if str(status) in responses else "default"
        if key == "default":
            assert status >= 400, what
        content = responses[key].get("content")
        if content is None:
            assert not body, what  # e.g. the WebSocket handshake
        else:
            assert ctype in content, f"{what}: {ctype} is not described"
            instance: Any = None  # bytes: the media type is the whole description
            if ctype in ("application/json", "application/problem+json"):
                instance = json.loads(body)
            elif ctype.startswith("text/"):
                instance = body.decode("utf-8")
            if instance is not None:
                pointer = "/".join(
                    part.replace("~", "~0").replace("/", "~1")
                    for part in ("paths", template, method.lower(), "responses", key)
                )
                self.validate(
                    f"{pointer}/content/{ctype.replace('/', '~1')}/schema", instance, what
                )
        if key == "default":
            self.errors.add((method, template, status))
        else:
            self.answered.add((method, template))


async def test_real_answers_match_the_described_schemas(
    tmp_path: Path, rng: Rng, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Harness.start(tmp_path, rng) as h:
        served = await h.request("GET", "/v1/openapi.json")
        doc = await served.json()
        assert doc == json.loads(json.dumps(document()))  # what is served is the module's
        checker = Checker(doc)
        original = Harness.request

        async def recorded(self: Harness, method: str, path: str, **kwargs: Any) -> ClientResponse:
            resp = await original(self, method, path, **kwargs)
            raw = await resp.read()  # cached: the caller reads it again
            checker.check(method, str(resp.url), resp.status, resp.content_type, raw)
            return resp

        monkeypatch.setattr(Harness, "request", recorded)

        await h.request("GET", "/v1/talks")  # 404 not_founded
        await h.standard_talks()  # founding, login, roster changes, entries, health
        for path in ("/healthz", "/metrics", "/v1/openapi.json", "/v1/talks"):
            await h.request("GET", path)

        med, head, sender, reader = (h.people[n] for n in ("med", "n-head", "n-adv", "s-adv"))
        small = h.seal(sender, "plenary", "small")
        large = h.seal(sender, "plenary", "L" * 100_000)
        small_at = (await h.send(sender, small)).index
        large_at = (await h.send(sender, large)).index
        await h.post_receipts(reader, [h.receipt(reader, small, small_at)])
        await h.sync()
        for path in (
            f"/v1/drafts/{small_at}",
            f"/v1/drafts/{small_at}/ciphertext",
            f"/v1/drafts/{large_at}/ciphertext",
            f"/v1/drafts/{small_at}/receipts",
            "/v1/inbox?after=0",
            "/v1/inbox?after=0&inline=1",
            "/v1/drafts/999999/receipts",  # 404
            "/v1/inbox?after=x",  # 400
        ):
            await h.request("GET", path, person=reader)
        await h.request("GET", f"/v1/drafts/{small_at}", person=h.people["obs"])  # 404

        cp, _, _ = await h.checkpoint()
        size = cp.size
        for path in (
            "/v1/log/checkpoint",
            f"/v1/log/checkpoint?size={size}",
            f"/v1/log/entries?start=0&end={size}",
            f"/v1/log/proof/inclusion?index=1&size={size}",
            f"/v1/log/proof/consistency?old=1&new={size}",
            "/v1/log/proof/consistency?old=5&new=1",  # 400
        ):
            await h.request("GET", path, person=head)
        line = cosign(
            cp, witness_name(ORIGIN, "north"), head.keys.signing, timestamp=now_ms() // 1000
        )
        await h.request(
            "POST", "/v1/log/cosignatures", person=head, body={"signature": line, "size": size}
        )
        assert size < 256  # so every tile below is the first, partial one
        for path in (
            "/checkpoint",
            f"/tile/0/000.p/{size}",
            f"/tile/entries/000.p/{size}",
            "/tile/0/001",  # 404, not in the tree yet
            "/tile/0/0",  # 400, not canonical
        ):
            await h.request("GET", path, person=head)
        await h.request("GET", "/checkpoint")  # 401

        await h.act(med, "round.open", {"channel": None, "round": 1})
        act = h.make_act(head, "round.open", {"channel": None, "round": 2})  # not the mediator
        await h.request("POST", "/v1/acts", person=head, body=act.to_json())

        length = CHUNK + 10
        declared = await h.request(
            "POST", "/v1/annexes", person=sender,
            body={"chunk": CHUNK, "chunks": 2, "length": length},
        )  # fmt: skip
        upload = (await declared.json())["id"]
        await h.request(  # 413: over max_annex
            "POST", "/v1/annexes", person=sender,
            body={"chunk": CHUNK, "chunks": 1, "length": h.settings.max_annex + 1},
        )  # fmt: skip
        sealer, chunks = sealed_chunks(length)
        octets = {"Content-Type": "application/octet-stream"}
        for i, chunk in enumerate(chunks):
            await h.request(
                "PUT", f"/v1/annexes/{upload}/chunks/{i}", person=sender, data=chunk,
                headers=octets,
            )  # fmt: skip
        _, other = sealed_chunks(length, "other")
        await h.request(  # 409 chunk_conflict: chunk 0 is held with other bytes
            "PUT", f"/v1/annexes/{upload}/chunks/0", person=sender, data=other[0], headers=octets
        )
        await h.request("GET", f"/v1/annexes/{upload}", person=sender)
        await h.request("GET", f"/v1/annexes/{upload}", person=reader)  # 404
        finish = f"/v1/annexes/{upload}/finish"
        await h.request("POST", finish, person=sender, body={"hash": b64e(bytes(32))})  # 409
        await h.request("POST", finish, person=sender, body={"hash": b64e(sealer.manifest().hash)})
        await h.request("GET", f"/v1/annexes/{upload}", person=sender)  # finished: a hash
        with_annex = (await h.send(sender, h.seal(sender, "plenary", "see annex"))).index
        await h.request("GET", f"/v1/drafts/{with_annex}/annex/0", person=reader)  # 404 pending
        attach = f"/v1/annexes/{upload}/attach"
        await h.request("POST", attach, person=sender, body={"index": with_annex})
        await h.request("POST", attach, person=sender, body={"index": small_at})  # 409
        await h.request("GET", f"/v1/annexes/{upload}", person=sender)  # attached: a draft
        await h.sync()
        for i in range(len(chunks)):
            await h.request("GET", f"/v1/drafts/{with_annex}/annex/{i}", person=reader)
        await h.request("GET", f"/v1/drafts/{with_annex}/annex/5", person=reader)  # 404

        invited = await h.request(
            "POST",
            "/v1/invitations",
            person=head,
            body={"delegation": "north", "member": "n-expert", "role": "member"},
        )
        inv = await invited.json()
        short = f"/v1/invitations/{inv['id']}/short"
        handle = b64e(b"h" * 32)
        stored = {"handle": handle, "sealed": b64e(b"sealed code")}
        await h.request("POST", short, person=head, body=stored)
        await h.request("POST", short, person=med, body=stored)  # 404, not the inviter
        await h.request("POST", "/v1/invitations/short", body={"handle": handle})
        await h.request("POST", "/v1/invitations/short", body={"handle": b64e(b"u" * 32)})  # 404
        keys = DeviceKeys.generate(h.rng)
        accept = f"/v1/invitations/{inv['id']}/accept"
        await h.request("POST", accept, body=_acceptance(h, inv["id"], inv["token"], keys, "E"))
        await h.request("POST", short, person=head, body=stored)  # 409, accepted
        await h.request("GET", "/v1/invitations", person=head)
        await h.request("GET", "/v1/invitations")  # 401
        await h.request("DELETE", "/v1/invitations", person=head)  # 405
        await h.request("GET", "/v1/nothing")  # 404, not a route

        fresh = {"Authorization": f"Bearer {await h.login(reader.keys)}"}
        rotated = await h.request("POST", "/v1/auth/rotate", headers=fresh)
        await h.request("POST", "/v1/auth/rotate", headers=fresh)  # 401, the old token
        renewed = {"Authorization": f"Bearer {(await rotated.json())['token']}"}
        await h.request("POST", "/v1/auth/logout", headers=renewed)
        await h.request("POST", "/v1/auth/logout", headers=renewed)  # 401, revoked

        token = await h.token(reader)
        ws = await h.session.ws_connect(
            f"{h.base}/v1/ws?after=0", headers={"Authorization": f"Bearer {token}"}
        )
        try:
            checker.check("GET", f"{h.base}/v1/ws", 101, "", b"")  # the handshake, no body
        finally:
            await ws.close()

        def broken(*args: Any, **kwargs: Any) -> None:
            raise sqlite3.OperationalError("disk I/O error")

        # A commit that cannot be recovered: writes are refused (503) and health says why.
        monkeypatch.setattr(sequencer_module, "append_batch_txn", broken)
        monkeypatch.setattr(sequencer_module, "recover_txn", broken)
        await h.post_draft(sender, h.seal(sender, "plenary", "lost"))
        health = await h.request("GET", "/healthz")
        assert (await health.json())["code"] == "read_only"

    missing = sorted(set(_operations(doc)) - checker.answered)
    assert not missing, f"operations never exercised with a successful answer: {missing}"
    assert {status for _, _, status in checker.errors} >= {400, 401, 404, 405, 409, 413, 503}
