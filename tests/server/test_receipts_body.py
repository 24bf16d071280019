"""``POST /v1/receipts`` decodes a canonical batch once (a fast path): it must accept
and refuse exactly what the strict parser does, with the same error codes."""

from __future__ import annotations

import pytest

from protocol.encoding import canonical, parse
from protocol.errors import ProtocolError
from tests.server.harness import Harness


def _expected_code(body: bytes) -> str:
    try:
        parse(body)
    except ProtocolError as exc:
        return exc.code
    raise AssertionError("the mutation should not parse")


MUTATIONS = {
    "space-inside-receipt": lambda raw: raw.replace(b'"kind":', b'"kind": ', 1),
    "duplicate-key": lambda raw: raw.replace(
        b'"kind":"received"', b'"kind":"received","kind":"received"', 1
    ),
    "float-index": lambda raw: raw.replace(b'"index":', b'"index":1.0,"zz":', 1),
    "escaped-ascii": lambda raw: raw.replace(b'"received"', b'"\\u0072eceived"', 1),
    "trailing-space": lambda raw: raw + b" ",
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
async def test_mutated_batches_fail_as_the_strict_parser_says(
    talks: Harness, mutation: str
) -> None:
    h = talks
    sender, me = h.people["n-adv"], h.people["s-adv"]
    sealed = h.seal(sender, "plenary", "x")
    promise = await h.send(sender, sealed)
    receipt = h.receipt(me, sealed, promise.index)
    good = b'{"receipts":[' + receipt.to_bytes() + b"]}"
    assert good == canonical({"receipts": [receipt.to_json()]})
    body = MUTATIONS[mutation](good)
    before = h.counts()
    resp = await h.request("POST", "/v1/receipts", person=me, data=body)
    got = await resp.json()
    assert resp.status in (400, 422), got
    assert got["code"] == _expected_code(body)
    assert h.counts() == before
    # The well-formed batch still goes through afterwards.
    resp = await h.request("POST", "/v1/receipts", person=me, data=good)
    assert resp.status == 200, await resp.text()
    assert len((await resp.json())["promises"]) == 1
