"""The tlog-witness ``add-checkpoint`` wire format, sans-IO: bytes in, a request out.

A request body is ``old <size>\\n``, zero to 63 consistency proof lines (one standard
base64 hash each), an empty line and a checkpoint signed note.  The header never holds
an empty line, so the first blank line ends it and the note (which contains its own
blank line before its signatures) is everything after.  Parsing never raises anything
but :class:`WitnessRefusal` (status 400).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from protocol.merkle import HASH_LEN

MAX_BODY = 64 * 1024
"""Largest request body accepted."""
MAX_PROOF_LINES = 63
"""The spec: a client MUST NOT send more than 63 consistency proof lines."""
SIZE_CONTENT_TYPE = "text/x.tlog.size"
"""The content type of a 409 answer: the size last cosigned, in decimal."""

_OLD_RE = re.compile(rb"old (0|[1-9][0-9]{0,18})")
_HASH_RE = re.compile(rb"[A-Za-z0-9+/]{43}=")


class WitnessRefusal(Exception):
    """Why a checkpoint is not cosigned, with the tlog-witness HTTP status."""

    def __init__(self, status: int, detail: str, *, size: int | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.size = size
        """For 409: the size of the latest checkpoint cosigned for that origin."""


def malformed(detail: str) -> WitnessRefusal:
    return WitnessRefusal(400, detail)


def conflict(size: int) -> WitnessRefusal:
    detail = f"old size does not match the latest cosigned size {size}"
    return WitnessRefusal(409, detail, size=size)


@dataclass(frozen=True, slots=True, kw_only=True)
class AddCheckpoint:
    """A parsed ``add-checkpoint`` request; the note is checked later, by the service."""

    old: int
    proof: tuple[bytes, ...]
    note: bytes

    def __post_init__(self) -> None:
        if isinstance(self.old, bool) or not isinstance(self.old, int) or self.old < 0:
            raise malformed("old size must be a non-negative integer")
        if len(self.proof) > MAX_PROOF_LINES:
            raise malformed(f"more than {MAX_PROOF_LINES} consistency proof lines")
        if not all(isinstance(h, bytes) and len(h) == HASH_LEN for h in self.proof):
            raise malformed("consistency proof hashes must be 32 bytes")

    def to_bytes(self) -> bytes:
        """The request body (the inverse of :func:`parse_add_checkpoint`)."""
        lines = [b"old %d" % self.old, *(base64.b64encode(h) for h in self.proof)]
        return b"".join(line + b"\n" for line in lines) + b"\n" + self.note

    @classmethod
    def from_bytes(cls, body: bytes) -> AddCheckpoint:
        """Parse a request body strictly; raises :class:`WitnessRefusal` (400)."""
        if not isinstance(body, bytes):
            raise malformed("body must be bytes")
        if len(body) > MAX_BODY:
            raise malformed(f"body larger than {MAX_BODY} bytes")
        end = body.find(b"\n\n")
        if end < 0:
            raise malformed("no empty line after the old size and proof lines")
        header, note = body[:end].split(b"\n"), body[end + 2 :]
        old = _OLD_RE.fullmatch(header[0])
        if old is None:
            raise malformed("first line must be 'old <size>' in decimal without leading zeros")
        if len(header) - 1 > MAX_PROOF_LINES:
            raise malformed(f"more than {MAX_PROOF_LINES} consistency proof lines")
        proof = []
        for line in header[1:]:
            if not _HASH_RE.fullmatch(line):
                raise malformed("a consistency proof line is not a base64 SHA-256 hash")
            try:
                proof.append(base64.b64decode(line, validate=True))
            except (binascii.Error, ValueError) as exc:  # pragma: no cover - regex guards
                raise malformed("a consistency proof line is not base64") from exc
            if base64.b64encode(proof[-1]) != line:
                raise malformed("a consistency proof line is not canonical base64")
        if not note:
            raise malformed("no checkpoint after the empty line")
        return cls(old=int(old.group(1)), proof=tuple(proof), note=note)
