"""The OpenAPI 3.1 description of every route, served at ``/v1/openapi.json``.

The document is data, built here from a few helpers so that a new route is one entry
in :data:`PATHS` (tests/server/test_openapi.py fails, naming the route, when
``server/routes.py`` serves something this does not describe, or the reverse).  Schemas
are plain JSON Schema 2020-12 (``jsonSchemaDialect``), so any validator of that dialect
checks answers against them; the tests validate real answers of a real server.

Signed records (genesis, roster and channel changes, draft headers, receipts) are
described only as objects here: their exact fields and the checks on them are the
protocol's (docs/PROTOCOL.md), and clients verify them rather than trust a schema.
Every error answer of every operation is ``application/problem+json`` (``default``).
"""

from __future__ import annotations

import functools
from typing import Any

from protocol import annex
from protocol.encoding import canonical
from server.version import version

Schema = dict[str, Any]

JSON = "application/json"
PROBLEM = "application/problem+json"
TEXT = "text/plain"
BINARY = "application/octet-stream"


def ref(name: str) -> Schema:
    """A reference to ``components/schemas/<name>``."""
    return {"$ref": f"#/components/schemas/{name}"}


def obj(required: dict[str, Schema], optional: dict[str, Schema] | None = None) -> Schema:
    """A closed object: these members, the ``required`` ones always, no others."""
    return {
        "type": "object",
        "required": sorted(required),
        "properties": {**required, **(optional or {})},
        "additionalProperties": False,
    }


def array(items: Schema, **limits: int) -> Schema:
    """A list of ``items`` (``minItems``/``maxItems`` as keywords)."""
    return {"type": "array", "items": items, **limits}


INT: Schema = {"type": "integer", "minimum": 0}
MS: Schema = {"type": "integer", "minimum": 0, "description": "milliseconds since the epoch"}
B64: Schema = {"type": "string", "pattern": "^[A-Za-z0-9_-]*$", "description": "base64url"}
STR: Schema = {"type": "string"}
NULLABLE_STR: Schema = {"type": ["string", "null"]}
RECORD: Schema = {"type": "object", "description": "a signed record (docs/PROTOCOL.md)"}

SCHEMAS: dict[str, Schema] = {
    "Problem": obj(
        {
            "code": STR,
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "title": STR,
            "type": {"type": "string", "pattern": "^urn:docket:error:[a-z_0-9]+$"},
        },
        {
            "detail": STR,
            "request_id": {
                "type": "string",
                "pattern": "^[A-Za-z0-9._-]{1,64}$",
                "description": "the X-Request-Id of this request, to quote to the operator",
            },
        },
    ),
    "Promise": obj(
        {
            "index": INT,
            "leaf": B64,
            "origin": STR,
            "sig": B64,
            "t": {"const": "promise"},
            "time": MS,
            "v": {"const": 1},
        }
    ),
    "PromiseAnswer": obj({"promise": ref("Promise")}),
    "IndexedRecord": obj({"entry": RECORD, "index": INT}),
    "Notice": obj(
        {"index": INT, "kind": {"enum": ["draft", "receipt", "roster", "channel", "act"]}},
        {"draft": obj({"ciphertext": B64, "header": RECORD, "keys": {"type": "object"}})},
    ),
    "Proof": array(B64),
}


def body(schema: Schema, media: str = JSON) -> Schema:
    """A required request body."""
    return {"required": True, "content": {media: {"schema": schema}}}


def query(name: str, description: str, *, required: bool = False) -> Schema:
    """An integer query parameter."""
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": {"type": "integer"},
    }


def path_param(name: str, schema: Schema) -> Schema:
    """A path parameter."""
    return {"name": name, "in": "path", "required": True, "schema": schema}


def op(
    summary: str,
    answer: Schema | None,
    *,
    media: str = JSON,
    status: str = "200",
    auth: bool = True,
    request: Schema | None = None,
    params: list[Schema] | None = None,
) -> Schema:
    """One operation: its success answer and, for every error, a problem."""
    success: Schema = {"description": summary}
    if answer is not None:
        success["content"] = {media: {"schema": answer}}
    operation: Schema = {
        "summary": summary,
        "responses": {
            status: success,
            "default": {
                "description": "an error (docs/API.md lists the codes)",
                "content": {PROBLEM: {"schema": ref("Problem")}},
            },
        },
    }
    # Unauthenticated routes say so explicitly; the rest inherit the bearer requirement.
    if not auth:
        operation["security"] = []
    if request is not None:
        operation["requestBody"] = request
    if params:
        operation["parameters"] = params
    return operation


INDEX = path_param("index", {"type": "string", "pattern": "^[0-9]{1,16}$"})
INVITATION_ID = path_param("id", {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"})
ANNEX_ID = path_param("id", {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"})
CHUNK = path_param("chunk", {"type": "string", "pattern": "^[0-9]{1,9}$"})
# A tlog-tiles path spans several segments (``0/x001/234.p/7``, ``entries/000``): the
# route matches them all as one parameter, so this one may contain ``/``.
TILE_PATH = path_param(
    "path",
    {
        "type": "string",
        "pattern": "^[0-9a-z./]{1,200}$",
        "description": "<L>/<N>[.p/<W>] or entries/<N>[.p/<W>] (docs/API.md, Tiles)",
    },
)
HASH32: Schema = {**B64, "minLength": 43, "maxLength": 43, "description": "base64url, 32 bytes"}
TOKEN_ANSWER = obj({"expires": MS, "token": B64})
ANNEX_CHUNK: Schema = {
    "type": "integer",
    "minimum": annex.MIN_CHUNK,
    "maximum": annex.MAX_CHUNK,
    "description": "plaintext bytes per chunk",
}
ANNEX_LENGTH: Schema = {
    "type": "integer",
    "minimum": 0,
    "maximum": annex.MAX_LENGTH,
    "description": "plaintext bytes (at most the server's max_annex)",
}

PATHS: dict[str, dict[str, Schema]] = {
    "/healthz": {
        "get": op(
            "Liveness and whether writes are accepted",
            obj(
                {
                    "read_only": {"type": "boolean"},
                    "size": INT,
                    "status": {"enum": ["ok", "read_only"]},
                },
                {
                    "code": {"enum": ["read_only", "store_behind", "store_diverged"]},
                    "reason": {
                        "type": "string",
                        "description": "what is wrong and what the operator must do",
                    },
                },
            ),
            auth=False,
        )
    },
    "/metrics": {
        "get": op("Prometheus text exposition", STR, media=TEXT, auth=False),
    },
    "/v1/openapi.json": {
        "get": op("This description", {"type": "object"}, auth=False),
    },
    "/v1/talks": {
        "get": op(
            "The genesis and log identity (404 not_founded before founding)",
            obj({"genesis": RECORD, "log_key": B64, "origin": STR}),
            auth=False,
        ),
        "post": op(
            "Found the talks with the founding token",
            ref("PromiseAnswer"),
            auth=False,
            request=body(obj({"genesis": RECORD, "token": B64})),
        ),
    },
    "/v1/auth/challenge": {
        "post": op(
            "A single-use login challenge for a device",
            obj({"challenge": B64, "expires": MS}),
            auth=False,
            request=body(obj({"device": B64})),
        )
    },
    "/v1/auth/token": {
        "post": op(
            "A bearer token for a signed challenge",
            TOKEN_ANSWER,
            auth=False,
            request=body(obj({"challenge": B64, "device": B64, "sig": B64})),
        )
    },
    "/v1/auth/logout": {
        "post": op(
            "Revoke the presented bearer token at once",
            obj({"revoked": {"const": True}}),
        )
    },
    "/v1/auth/rotate": {
        "post": op(
            "Swap the presented bearer token for a new one; the old one is revoked",
            TOKEN_ANSWER,
        )
    },
    "/v1/invitations": {
        "post": op(
            "Invite a member (mediator, or a head for its own delegation)",
            obj({"expires": MS, "id": STR, "token": B64}),
            request=body(
                obj(
                    {
                        "delegation": NULLABLE_STR,
                        "member": STR,
                        "role": {"enum": ["head", "member", "staff", "observer", "auditor"]},
                    }
                )
            ),
        ),
        "get": op(
            "The invitations the caller created",
            obj(
                {
                    "invitations": array(
                        obj(
                            {
                                "delegation": NULLABLE_STR,
                                "device": {"type": ["object", "null"]},
                                "expires": MS,
                                "id": STR,
                                "member": STR,
                                "name": NULLABLE_STR,
                                "role": STR,
                                "state": {"enum": ["open", "accepted", "used"]},
                            }
                        )
                    )
                }
            ),
        ),
    },
    "/v1/invitations/{id}/accept": {
        "post": op(
            "Accept an invitation with a new device's keys",
            obj({"state": {"const": "accepted"}}),
            auth=False,
            params=[INVITATION_ID],
            request=body(
                obj(
                    {
                        "device": obj({"enc": B64, "sign": B64}),
                        "name": STR,
                        "sig": B64,
                        "token": B64,
                    }
                )
            ),
        )
    },
    "/v1/invitations/{id}/short": {
        "post": op(
            "The inviter stores the full code, sealed under its short code (open only)",
            obj({"state": {"const": "stored"}}),
            params=[INVITATION_ID],
            request=body(
                obj({"handle": HASH32, "sealed": {**B64, "minLength": 1, "maxLength": 5462}})
            ),
        )
    },
    "/v1/invitations/short": {
        "post": op(
            "The sealed code stored under a short code's handle (rate-limited by address)",
            obj({"sealed": B64}),
            auth=False,
            request=body(obj({"handle": HASH32})),
        )
    },
    "/v1/roster": {
        "post": op(
            "Log a signed roster or channel change",
            ref("PromiseAnswer"),
            request=body(RECORD),
        )
    },
    "/v1/acts": {
        "post": op(
            "Log a signed act (docs/PROTOCOL.md §8a)",
            ref("PromiseAnswer"),
            request=body(RECORD),
        )
    },
    "/v1/drafts": {
        "post": op(
            "Upload a draft: u32 BE meta length, canonical {header, keys}, ciphertext",
            ref("PromiseAnswer"),
            request=body({"type": "string", "contentMediaType": BINARY}, BINARY),
        )
    },
    "/v1/drafts/{index}": {
        "get": op(
            "A draft's signed header and wrapped keys (recipients only)",
            obj({"header": RECORD, "index": INT, "keys": {"type": "object"}}),
            params=[INDEX],
        )
    },
    "/v1/drafts/{index}/ciphertext": {
        "get": op(
            "A draft's ciphertext (recipients only)",
            {"type": "string", "contentMediaType": BINARY},
            media=BINARY,
            params=[INDEX],
        )
    },
    "/v1/drafts/{index}/receipts": {
        "get": op(
            "The receipts logged for a draft",
            obj({"receipts": array(ref("IndexedRecord"))}),
            params=[INDEX],
        )
    },
    "/v1/receipts": {
        "post": op(
            "Log 1-256 signed receipts, all or none",
            obj({"promises": array(ref("Promise"), minItems=1, maxItems=256)}),
            request=body(obj({"receipts": array(RECORD, minItems=1, maxItems=256)})),
        )
    },
    "/v1/annexes": {
        "post": op(
            "Declare an annex upload",
            obj({"id": STR}),
            status="201",
            request=body(
                obj(
                    {
                        "chunk": ANNEX_CHUNK,
                        "chunks": {"type": "integer", "minimum": 1},
                        "length": ANNEX_LENGTH,
                    }
                )
            ),
        )
    },
    "/v1/annexes/{id}": {
        "get": op(
            "An upload's state for its uploader, with the hashes of the chunks held",
            obj(
                {
                    "chunk": ANNEX_CHUNK,
                    "chunks": {"type": "integer", "minimum": 1},
                    "draft": {"type": ["integer", "null"], "minimum": 1},
                    "hash": {"anyOf": [HASH32, {"type": "null"}]},
                    "hashes": {
                        "type": "object",
                        "description": "chunk index (decimal) -> the hash of the chunk held",
                        "propertyNames": {"pattern": "^(0|[1-9][0-9]*)$"},
                        "additionalProperties": HASH32,
                    },
                    "id": STR,
                    "length": ANNEX_LENGTH,
                    "received": INT,
                }
            ),
            params=[ANNEX_ID],
        )
    },
    "/v1/annexes/{id}/chunks/{chunk}": {
        "put": op(
            "One ciphertext chunk, exactly its length; acknowledged once durable",
            obj({"received": {"type": "integer", "minimum": 1}}),
            params=[ANNEX_ID, CHUNK],
            request=body({"type": "string", "contentMediaType": BINARY}, BINARY),
        )
    },
    "/v1/annexes/{id}/finish": {
        "post": op(
            "Close the upload with the annex hash, checked over the chunks held",
            obj({"finished": {"const": True}}),
            params=[ANNEX_ID],
            request=body(obj({"hash": HASH32})),
        )
    },
    "/v1/annexes/{id}/attach": {
        "post": op(
            "Attach the finished annex to the uploader's own logged draft",
            obj({"attached": {"type": "integer", "minimum": 1}}),
            params=[ANNEX_ID],
            request=body(obj({"index": {"type": "integer", "minimum": 1}})),
        )
    },
    "/v1/drafts/{index}/annex/{chunk}": {
        "get": op(
            "One ciphertext chunk of a draft's annex (the draft's readers only)",
            {"type": "string", "contentMediaType": BINARY},
            media=BINARY,
            params=[INDEX, CHUNK],
        )
    },
    "/v1/inbox": {
        "get": op(
            "Entries relevant to the caller after an index (long-poll with wait)",
            obj({"items": array(ref("Notice")), "next": {"type": "integer", "minimum": -1}}),
            params=[
                query("after", "log index to start after (default 0)"),
                query("wait", "seconds to wait for news, at most 30 (default 0)"),
                query("limit", "at most this many items, 1-1000 (default 100)"),
                query("inline", "1: recent small drafts carry their content"),
            ],
        )
    },
    "/v1/ws": {
        "get": op(
            "WebSocket push of inbox notices until the token expires",
            None,
            status="101",
            params=[
                query("after", "log index to start after (default 0)"),
                query("inline", "1: small drafts carry their content"),
                query("batch", "1: each message is a JSON array of notices"),
            ],
        )
    },
    "/v1/log/checkpoint": {
        "get": op(
            "The C2SP checkpoint note with its cosignatures (latest, or at size)",
            STR,
            media=TEXT,
            params=[query("size", "the checkpoint signed at this tree size")],
        )
    },
    "/v1/log/entries": {
        "get": op(
            "Log entries [start, end), at most 1000 and 8 MiB per call",
            obj({"entries": array(ref("IndexedRecord"), maxItems=1000)}),
            params=[
                query("start", "first index", required=True),
                query("end", "index after the last", required=True),
            ],
        )
    },
    "/v1/log/proof/inclusion": {
        "get": op(
            "An RFC 9162 inclusion proof",
            obj({"index": INT, "proof": ref("Proof"), "size": INT}),
            params=[
                query("index", "the entry", required=True),
                query("size", "the tree size", required=True),
            ],
        )
    },
    "/v1/log/proof/consistency": {
        "get": op(
            "An RFC 9162 consistency proof",
            obj({"new": INT, "old": INT, "proof": ref("Proof")}),
            params=[
                query("old", "the older tree size", required=True),
                query("new", "the newer tree size", required=True),
            ],
        )
    },
    "/v1/log/cosignatures": {
        "post": op(
            "Store a witness cosignature of a signed checkpoint",
            obj({"cosigners": array(STR)}),
            request=body(obj({"signature": STR, "size": {"type": "integer", "minimum": 1}})),
        )
    },
    "/checkpoint": {
        "get": op(
            "C2SP tlog-tiles: the latest checkpoint note (no token with public_tiles)",
            STR,
            media=TEXT,
        )
    },
    "/tile/{path}": {
        "get": op(
            "C2SP tlog-tiles: a hash tile or an entry bundle (no token with public_tiles)",
            {"type": "string", "contentMediaType": BINARY},
            media=BINARY,
            params=[TILE_PATH],
        )
    },
}


def document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "Docket relay and log server",
            "version": version(),
            "description": "Relays end-to-end encrypted drafts and keeps a signed Merkle "
            "log. All JSON bodies are canonical JSON; see docs/API.md.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "security": [{"bearer": []}],
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a token from POST /v1/auth/token",
                }
            },
        },
    }


@functools.cache
def document_bytes() -> bytes:
    """The document as canonical JSON, built once."""
    return canonical(document())
