"""``POST /v1/receipts`` decodes a canonical batch once (a fast path): it must accept
and refuse exactly what the strict parser does, with the same error codes."""

from __future__ import annotations

import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.encoding import Fields, canonical, parse
from protocol.errors import ProtocolError
from protocol.receipt import ACKNOWLEDGED, RECEIVED, REJECTED, Receipt, make_receipt
from server.handlers.drafts import MAX_RECEIPTS, _receipts_hot
from tests.protocol.builders import standard
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


# --- the byte-cutting fast path, in process ---------------------------------------------


@functools.cache
def _pool() -> tuple[bytes, ...]:
    t, sent, _ = standard("test_receipts_body/pool")
    return tuple(
        make_receipt(
            device=t.people[who].device,
            header=sent.sealed.header,
            index=sent.index,
            kind=kind,
            time=7,
            reason="bad_signature" if kind == REJECTED else None,
        ).to_bytes()
        for who in ("nb", "sa", "sh")
        for kind in (RECEIVED, ACKNOWLEDGED, REJECTED)
    )


def _strict(body: bytes) -> list[Receipt] | str:
    """What the general path makes of ``body``: the receipts, or the error code."""
    try:
        f = Fields(parse(body), "receipts")
        items = f.list("receipts", max_items=MAX_RECEIPTS)
        f.done()
        return [Receipt.from_json(item) for item in items]
    except ProtocolError as exc:
        return exc.code


_EDITS = st.sampled_from([b"},{", b"}", b"{", b",", b'"', b" ", b"0", b"A", b"\\", b""])


@settings(max_examples=300, deadline=None)
@given(
    picks=st.lists(st.integers(0, 8), min_size=1, max_size=5),
    cuts=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 3), _EDITS), max_size=3),
)
def test_hot_receipt_batches_agree_with_the_strict_parser(
    picks: list[int], cuts: list[tuple[int, int, bytes]]
) -> None:
    pool = _pool()
    body = b'{"receipts":[' + b",".join(pool[i] for i in picks) + b"]}"
    assert _receipts_hot(body) == _strict(body)  # the well-formed batch takes the fast path
    for where, drop, insert in cuts:
        at = where % (len(body) + 1)
        body = body[:at] + insert + body[at + drop :]
    hot = _receipts_hot(body)
    if hot is not None:
        assert hot == _strict(body)


def test_hot_path_declines_a_brace_inside_a_string() -> None:
    pool = _pool()
    tampered = pool[0].replace(b'"kind":"received"', b'"kind":"re},{ceived"', 1)
    body = b'{"receipts":[' + tampered + b"]}"
    assert _receipts_hot(body) is None
    assert isinstance(_strict(body), str)
