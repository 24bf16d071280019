"""Every HTTP route, a well-formed request for it, and the check every answer must pass.

The route table is checked against the server's own router
(``test_every_route_is_fuzzed``), so a new route cannot escape the fuzzers.

The well-formed bodies are chosen so that no mutation of them can ever be *stored*, even
one re-signed by the right key: the roster change names a stale roster state, the
receipt answers a draft its device already receipted, the upload re-sends a logged draft
with another body, the genesis founds talks that are founded.  What a mutation can still
do is get past the parser and the signature check into the rules, which is the point of
re-signing it.

:func:`check` is the contract for bad input: never a 5xx, never a traceback or a Python
``repr`` in the body; a 4xx is ``application/problem+json`` whose ``code`` is listed for
its status in the README's "Error codes" table; a 2xx only where the route may answer
one without storing anything (reads, a login challenge).  The invitation is one a head
may not create (another delegation's), refused only after every field was checked.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocol import crypto
from protocol.acts import make_act
from protocol.encoding import JSONValue, b64d, b64e, canonical
from protocol.envelope import Payload, SealedDraft, keys_to_json, seal
from protocol.keys import DeviceKeys
from protocol.receipt import Receipt
from protocol.records import sign_record
from protocol.roster import CONTEXTS, ChangeArgs, Roster, make_change
from server.clock import now_ms
from tests.faults.counters import bump
from tests.server.harness import Harness, Person

README = Path(__file__).resolve().parents[2] / "README.md"
PLACEHOLDER = "\x00fuzz\x00"


@dataclass(frozen=True)
class Route:
    """One route: how to reach it and what it takes."""

    method: str
    path: str
    """As registered, with ``{index}`` / ``{id}`` placeholders."""
    auth: str | None = None
    """The participant who calls it (``None``: unauthenticated)."""
    body: str = "none"
    """``none``, ``json`` or ``upload``."""
    query: tuple[str, ...] = ()
    """Integer query parameters."""
    ok: bool = False
    """May answer 2xx to a bad request without storing anything."""


ROUTES: tuple[Route, ...] = (
    Route("GET", "/healthz", ok=True),
    Route("GET", "/metrics", ok=True),
    Route("GET", "/v1/talks", ok=True),
    Route("POST", "/v1/talks", body="json"),
    Route("POST", "/v1/auth/challenge", body="json", ok=True),
    Route("POST", "/v1/auth/token", body="json"),
    # Logout and rotation revoke the caller's token (the first good request does; the
    # rest are 401): a 2xx stores nothing the row counts see.
    Route("POST", "/v1/auth/logout", auth="obs", ok=True),
    Route("POST", "/v1/auth/rotate", auth="obs", ok=True),
    Route("POST", "/v1/invitations", auth="n-head", body="json"),
    Route("GET", "/v1/invitations", auth="n-head", ok=True),
    Route("POST", "/v1/invitations/{id}/accept", body="json"),
    Route("POST", "/v1/roster", auth="med", body="json"),
    Route("POST", "/v1/acts", auth="n-head", body="json"),
    Route("POST", "/v1/drafts", auth="n-adv", body="upload"),
    Route("GET", "/v1/drafts/{index}", auth="s-adv", ok=True),
    Route("GET", "/v1/drafts/{index}/ciphertext", auth="s-adv", ok=True),
    Route("GET", "/v1/drafts/{index}/receipts", auth="s-adv", ok=True),
    Route("POST", "/v1/receipts", auth="s-adv", body="json"),
    Route("GET", "/v1/inbox", auth="s-adv", query=("after", "wait", "limit", "inline"), ok=True),
    Route("GET", "/v1/ws", auth="s-adv", query=("after", "inline", "batch"), ok=True),
    Route("GET", "/v1/log/checkpoint", auth="aud", query=("size",), ok=True),
    Route("GET", "/v1/log/entries", auth="aud", query=("start", "end"), ok=True),
    Route("GET", "/v1/log/proof/inclusion", auth="aud", query=("index", "size"), ok=True),
    Route("GET", "/v1/log/proof/consistency", auth="aud", query=("old", "new"), ok=True),
    Route("POST", "/v1/log/cosignatures", auth="n-head", body="json"),
)


def route_id(route: Route) -> str:
    return f"{route.method} {route.path}"


# --- the documented error table -------------------------------------------------------------


def documented_codes() -> dict[int, set[str]]:
    """status -> codes, from the README's "Error codes" table."""
    text = README.read_text()
    section = text.split("### Error codes", 1)[1].split("\n\n", 2)[1]
    out: dict[int, set[str]] = {}
    for line in section.splitlines():
        match = re.match(r"\|\s*(\d{3})\s*\|(.*)\|\s*$", line)
        if match:
            out[int(match.group(1))] = set(re.findall(r"`([a-z_]+)`", match.group(2)))
    assert out.get(400) and out.get(422), "README error table not found"
    return out


DOCUMENTED = documented_codes()
_LEAKS = (b"Traceback", b'File "', b"sqlite3.", b"Error(", b"/work/", b"site-packages")


def check(
    status: int, content_type: str, body: bytes, *, ok: bool, what: object
) -> tuple[int, str]:
    """The contract for a bad request's answer; returns ``(status, code)``."""
    bump("bad inputs tried")
    if status >= 500:
        bump("500s seen")
    assert status < 500, (what, status, body[:300])
    for leak in _LEAKS:
        assert leak not in body, (what, leak, body[:300])
    if status < 400:
        assert ok, (what, status, "a bad request was accepted", body[:300])
        return status, ""
    assert content_type == "application/problem+json", (what, status, content_type, body[:200])
    problem = json.loads(body)
    code = problem["code"]
    assert code in DOCUMENTED.get(status, set()), (what, status, code, "not in the README table")
    assert problem["type"] == f"urn:docket:error:{code}"
    assert problem["status"] == status
    return status, str(code)


# --- well-formed requests -----------------------------------------------------------------------


@dataclass
class Signer:
    """Re-signs the record at ``path`` of a body after a mutation inside it."""

    path: tuple[str | int, ...]
    key: crypto.SigningKey
    context: bytes


@dataclass
class Base:
    """A well-formed request of one route (see the module docstring)."""

    body: JSONValue = None
    signer: Signer | None = None
    tail: bytes = b""
    """For uploads: the ciphertext after the meta part (``body`` is the meta)."""


@dataclass
class Talks:
    """What the fuzzers know of the talks they attack."""

    h: Harness
    tokens: dict[str, str]
    draft: SealedDraft
    draft_index: int
    bases: dict[str, Base] = field(default_factory=dict)

    def fill(self, path: str) -> str:
        return path.replace("{index}", str(self.draft_index)).replace(
            "{id}", "AAAAAAAAAAAAAAAAAAAAAA"
        )

    def headers(self, route: Route) -> dict[str, str]:
        if route.auth is None:
            return {}
        return {"Authorization": f"Bearer {self.tokens[route.auth]}"}


async def prepare(h: Harness) -> Talks:
    """Standard talks, one draft receipted by ``s-adv``, everyone logged in."""
    await h.standard_talks()
    sender, me = h.people["n-adv"], h.people["s-adv"]
    sealed = h.seal(sender, "plenary", "the draft under attack")
    promise = await h.send(sender, sealed)
    receipt = h.receipt(me, sealed, promise.index)
    resp = await h.post_receipts(me, [receipt])
    assert resp.status == 200, await resp.text()
    await h.sync()
    tokens = {name: await h.token(p) for name, p in h.people.items()}
    talks = Talks(h=h, tokens=tokens, draft=sealed, draft_index=promise.index)
    talks.bases = _bases(talks, receipt)
    return talks


def _bases(t: Talks, receipt: Receipt) -> dict[str, Base]:
    h = t.h
    med, adv = h.people["med"], h.people["n-adv"]
    genesis = h.genesis
    assert genesis is not None
    newcomer = DeviceKeys.generate(h.rng)
    stale = make_change(
        author=med.keys,
        roster=Roster(genesis),  # the roster as founded: long stale
        op="staff.enrol",
        args=ChangeArgs(
            member="fuzz-staff", member_name="Fuzz", role="observer", devices=(newcomer.public,)
        ),
        time=now_ms(),
    )
    stale_act = make_act(  # signed on the founding roster head: refused as stale
        kind="tally.add",
        body={"n": 1},
        device=h.people["n-head"].keys,
        talks=genesis.talks_id,
        roster=Roster(genesis).head,
        time=now_ms(),
    )
    again = h.receipt(h.people["s-adv"], t.draft, t.draft_index)  # a second receipt: 409
    other = _reseal(h, adv, t.draft)
    meta = {"header": other.header.to_json(), "keys": keys_to_json(other.keys)}
    return {
        "/v1/talks": Base(
            body={"genesis": genesis.to_json(), "token": b64e(b"t" * 32)},
            signer=Signer(("genesis",), med.keys.signing, crypto.CTX_GENESIS),
        ),
        "/v1/auth/challenge": Base(body={"device": b64e(adv.device)}),
        "/v1/auth/token": Base(
            body={"challenge": b64e(b"c" * 32), "device": b64e(adv.device), "sig": b64e(b"s" * 64)}
        ),
        # A head inviting into another delegation: refused after every field checked.
        "/v1/invitations": Base(body={"delegation": "south", "member": "newbie", "role": "member"}),
        "/v1/invitations/{id}/accept": Base(
            body={
                "device": newcomer.public.to_json(),
                "name": "Newcomer",
                "sig": b64e(b"s" * 64),
                "token": b64e(b"t" * 32),
            }
        ),
        "/v1/roster": Base(
            body=stale.to_json(),
            signer=Signer((), med.keys.signing, CONTEXTS[stale.record_type]),
        ),
        "/v1/acts": Base(
            body=stale_act.to_json(),
            signer=Signer((), h.people["n-head"].keys.signing, crypto.CTX_ACT),
        ),
        "/v1/receipts": Base(
            body={"receipts": [again.to_json()]},
            signer=Signer(("receipts", 0), h.people["s-adv"].keys.signing, crypto.CTX_RECEIPT),
        ),
        "/v1/log/cosignatures": Base(body={"signature": "— n-head AAAA", "size": 1}),
        "/v1/drafts": Base(
            body=meta,
            signer=Signer(("header",), adv.keys.signing, crypto.CTX_DRAFT),
            tail=other.ciphertext,
        ),
    }


def _reseal(h: Harness, sender: Person, logged: SealedDraft) -> SealedDraft:
    """Another draft reusing ``logged``'s message id: any upload of it is a duplicate."""
    ledger = h.require_ledger()
    return seal(
        sender=sender.keys,
        talks=ledger.talks,
        channel="plenary",
        counter=logged.header.counter,
        msg=logged.header.msg,
        draft=logged.header.draft,
        version=1,
        parents=(),
        roster=logged.header.roster,
        recipients=ledger.roster.channel_devices("plenary"),
        payload=Payload(title="other", body="other bytes"),
        time=now_ms(),
        rng=h.rng,
    )


# --- mutations ----------------------------------------------------------------------------------


def paths(value: JSONValue, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every path to a node inside ``value`` (not the root), depth first."""
    out: list[tuple[str | int, ...]] = []
    if isinstance(value, dict):
        for key in sorted(value):
            out.append((*prefix, key))
            out.extend(paths(value[key], (*prefix, key)))
    elif isinstance(value, list):
        for i, item in enumerate(value[:2]):
            out.append((*prefix, i))
            out.extend(paths(item, (*prefix, i)))
    return out


def _get(value: Any, path: tuple[str | int, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


def _set(value: Any, path: tuple[str | int, ...], new: Any) -> None:
    _get(value, path[:-1])[path[-1]] = new


def splice(body: JSONValue, path: tuple[str | int, ...], raw: bytes) -> bytes:
    """``body`` (canonical) with the node at ``path`` replaced by the raw bytes ``raw``."""
    mutated = copy.deepcopy(body)
    _set(mutated, path, PLACEHOLDER)
    return canonical(mutated).replace(canonical(PLACEHOLDER), raw, 1)


def resigned(base: Base, path: tuple[str | int, ...], value: JSONValue) -> bytes | None:
    """``base`` with ``value`` at ``path`` and the enclosing record signed again, or
    ``None`` if no record encloses ``path`` or ``value`` cannot be encoded."""
    signer = base.signer
    if signer is None or path[: len(signer.path)] != signer.path or path == signer.path:
        return None
    if path[len(signer.path) :] == ("sig",):
        return None
    mutated = copy.deepcopy(base.body)
    _set(mutated, path, value)
    record = _get(mutated, signer.path)
    try:
        signed = sign_record(signer.key, signer.context, record)
    except Exception:  # noqa: BLE001 - not encodable: nothing to sign
        return None
    if signer.path:
        _set(mutated, signer.path, signed)
    else:
        mutated = signed
    try:
        return canonical(mutated)
    except Exception:  # noqa: BLE001
        return None


def value_of(case: Mapping[str, Any]) -> tuple[bytes, JSONValue | None]:
    """A corpus value: its raw bytes, and the value itself when it is plain JSON."""
    if "bytes" in case:
        return b64d(case["bytes"]), None
    text = str(case["json"])
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        value = None
    if isinstance(value, float):  # NaN, Infinity, 1.5: not JSON the encoder may sign
        value = None
    return text.encode("utf-8"), value


def upload(meta: bytes, tail: bytes) -> bytes:
    """The ``POST /v1/drafts`` body for a meta part and a ciphertext."""
    return len(meta).to_bytes(4, "big") + meta + tail
