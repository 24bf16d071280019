"""Founding: ``POST /v1/talks`` once, with the founding token; nothing else before it."""

from __future__ import annotations

import pytest

from protocol.checkpoint import open_checkpoint
from protocol.encoding import b64e, canonical, parse
from protocol.keys import DeviceKeys
from protocol.receipt import Promise
from tests.server.harness import ORIGIN, Harness, table_counts

UNFOUNDED_ROUTES = [
    ("POST", "/v1/auth/challenge"),
    ("POST", "/v1/auth/token"),
    ("POST", "/v1/invitations"),
    ("GET", "/v1/invitations"),
    ("POST", "/v1/invitations/AAAAAAAAAAAAAAAAAAAAAA/accept"),
    ("POST", "/v1/roster"),
    ("POST", "/v1/drafts"),
    ("GET", "/v1/drafts/1"),
    ("GET", "/v1/drafts/1/ciphertext"),
    ("GET", "/v1/drafts/1/receipts"),
    ("POST", "/v1/receipts"),
    ("GET", "/v1/inbox"),
    ("GET", "/v1/ws"),
    ("GET", "/v1/log/checkpoint"),
    ("GET", "/v1/log/entries?start=0&end=1"),
    ("GET", "/v1/log/proof/inclusion?index=0&size=1"),
    ("GET", "/v1/log/proof/consistency?old=0&new=1"),
    ("POST", "/v1/log/cosignatures"),
    ("GET", "/v1/talks"),
]


@pytest.mark.parametrize(("method", "path"), UNFOUNDED_ROUTES)
async def test_every_route_answers_not_founded_before_founding(
    bare: Harness, method: str, path: str
) -> None:
    body = {"device": b64e(b"\x00" * 16)} if method == "POST" else None
    resp = await bare.request(method, path, body=body)
    assert resp.status == 404
    assert resp.content_type == "application/problem+json"
    assert (await resp.json())["code"] == "not_founded"


async def test_health_and_metrics_answer_before_founding(bare: Harness) -> None:
    health = await bare.ok("GET", "/healthz")
    assert health == {"read_only": False, "size": 0, "status": "ok"}
    resp = await bare.request("GET", "/metrics")
    assert resp.status == 200
    assert "docket_log_size 0" in await resp.text()


async def test_founding_logs_the_genesis_as_entry_zero(bare: Harness) -> None:
    h = bare
    promise = await h.found()
    genesis = h.genesis
    assert genesis is not None
    promise.verify(h.init.log_key)
    assert promise.index == 0
    assert promise.leaf == genesis.leaf
    assert promise.origin == ORIGIN
    talks = await h.ok("GET", "/v1/talks")
    assert talks == {
        "genesis": genesis.to_json(),
        "log_key": b64e(h.init.log_key),
        "origin": ORIGIN,
    }
    # A founded log always has a checkpoint, covering the genesis.
    resp = await h.request("GET", "/v1/log/checkpoint", person=h.people["med"])
    cp, _ = open_checkpoint(
        await resp.read(), origin=ORIGIN, log_name=ORIGIN, log_key=h.init.log_key
    )
    assert cp.size == 1
    assert cp.root == genesis.leaf
    assert h.settings.checkpoint_path.read_bytes().startswith(cp.body())
    # The founding token is gone from the database.
    assert table_counts(h.settings.db_path)["meta"] == 3  # origin, founded, clock_high_water


async def test_second_founding_is_refused(bare: Harness) -> None:
    h = bare
    await h.found()
    genesis = h.genesis
    assert genesis is not None
    before = h.counts()
    resp = await h.request(
        "POST",
        "/v1/talks",
        body={"genesis": genesis.to_json(), "token": b64e(h.init.founding_token)},
    )
    assert resp.status == 409
    assert (await resp.json())["code"] == "already_founded"
    assert h.counts() == before


def _found_body(h: Harness, *, token: bytes | None = None, **genesis_changes: object) -> object:
    mediator = h.new_person("med", "mediator", None)
    genesis = h.make_genesis(mediator)
    if genesis_changes:
        from protocol.genesis import WitnessPolicy, found

        kw: dict[str, object] = {
            "mediator_keys": mediator.keys,
            "mediator": "med",
            "mediator_name": "M",
            "origin": ORIGIN,
            "title": "T",
            "log_key": h.init.log_key,
            "witness": WitnessPolicy(quorum=1),
            "time": genesis.time,
        }
        kw.update(genesis_changes)
        genesis = found(**kw)  # type: ignore[arg-type]
    return {
        "genesis": genesis.to_json(),
        "token": b64e(h.init.founding_token if token is None else token),
    }


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("wrong-token", 401, "bad_token"),
        ("wrong-log-key", 422, "bad_value"),
        ("wrong-origin", 422, "bad_value"),
        ("bad-signature", 422, "bad_signature"),
        ("unknown-field", 422, "unknown_field"),
        ("non-canonical", 400, "non_canonical"),
        ("short-token", 422, "bad_value"),
    ],
)
async def test_bad_founding_changes_nothing(
    bare: Harness, case: str, status: int, code: str
) -> None:
    h = bare
    before = h.counts()
    body: object
    if case == "wrong-token":
        body = _found_body(h, token=b"\x01" * 32)
    elif case == "wrong-log-key":
        body = _found_body(h, log_key=DeviceKeys.generate(h.rng).public.sign_pk)
    elif case == "wrong-origin":
        body = _found_body(h, origin="other.example/talks")
    elif case == "short-token":
        body = _found_body(h, token=b"\x01" * 31)
    else:
        body = _found_body(h)
    assert isinstance(body, dict)
    if case == "bad-signature":
        body["genesis"]["title"] = "Tampered"
    if case == "unknown-field":
        body["extra"] = 1
    data = canonical(body)
    if case == "non-canonical":
        data = data.replace(b'{"genesis":', b'{ "genesis":', 1)
    resp = await h.request("POST", "/v1/talks", data=data)
    assert resp.status == status, await resp.text()
    problem = parse(await resp.read())
    assert problem["code"] == code
    assert problem["type"] == f"urn:docket:error:{code}"
    assert h.counts() == before
    # The real token still works afterwards.
    promise = await h.found()
    assert isinstance(promise, Promise)
