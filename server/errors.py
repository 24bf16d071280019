"""Errors only the server raises, in the protocol's one hierarchy.

They subclass :class:`protocol.errors.ProtocolError` so the single error middleware
turns every refusal, whatever its origin, into the same problem+json answer with a
stable ``code``.  The codes are part of the HTTP contract (docs/API.md).
"""

from __future__ import annotations

from protocol.errors import MalformedError, ProtocolError


class NotFoundError(ProtocolError):
    """Nothing there, or nothing the caller may see (the two answer alike)."""

    code = "not_found"
    status = 404


class NotFoundedError(ProtocolError):
    """The talks have not been founded yet."""

    code = "not_founded"
    status = 404


class AlreadyFoundedError(ProtocolError):
    """A second founding attempt."""

    code = "already_founded"
    status = 409


class UnauthenticatedError(ProtocolError):
    """No bearer token on a route that needs one."""

    code = "unauthenticated"
    status = 401


class BadTokenError(ProtocolError):
    """A bearer, founding or invitation token that is unknown, expired or revoked."""

    code = "bad_token"
    status = 401


class BadChallengeError(ProtocolError):
    """A challenge response that does not prove possession of a roster device key."""

    code = "bad_challenge"
    status = 401


class ForbiddenError(ProtocolError):
    """An authenticated caller acting beyond its role (e.g. posting as another device)."""

    code = "forbidden"
    status = 403


class BadQueryError(MalformedError):
    """A query string parameter that is missing, not an integer or out of range."""

    code = "bad_query"


class MethodNotAllowedError(ProtocolError):
    """A route that exists, called with another HTTP method."""

    code = "method_not_allowed"
    status = 405


class RequestTimeoutError(ProtocolError):
    """The client sent its request body too slowly."""

    code = "timeout"
    status = 408


class RateLimitedError(ProtocolError):
    """Too many requests; ``retry_after`` seconds until the bucket has a token again."""

    code = "rate_limited"
    status = 429

    def __init__(self, detail: str = "", *, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = max(1, retry_after)


class ReadOnlyError(ProtocolError):
    """The server refuses writes: its store failed the self-check or could not recover."""

    code = "read_only"
    status = 503


class StoreBehindError(ReadOnlyError):
    """Read-only because the store holds less than this log published (an older backup,
    a copy without its WAL): see docs/OPERATIONS.md."""

    code = "store_behind"
    status = 503


class StoreDivergedError(ReadOnlyError):
    """Read-only because the stored tree differs from a checkpoint this log published."""

    code = "store_diverged"
    status = 503


class UnavailableError(ProtocolError):
    """A transient refusal: shutting down, a failed commit, too many connections."""

    code = "unavailable"
    status = 503


class InsufficientStorageError(ProtocolError):
    """The disk is full; nothing was written."""

    code = "insufficient_storage"
    status = 507


class BadOriginError(ProtocolError):
    """A browser WebSocket handshake from an origin other than the server's own or one
    listed in ``ws_origins`` (cross-site WebSocket hijacking)."""

    code = "bad_origin"
    status = 403


class QuotaExceededError(RateLimitedError):
    """A participant's drafts or bytes per window are used up (server/services/quota.py)."""

    code = "quota_exceeded"
    status = 429
