"""The log's in-memory state, shared by the services and mutated only by the sequencer."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from protocol import crypto
from protocol.ledger import Ledger
from protocol.merkle import EMPTY_ROOT, Frontier
from server.errors import NotFoundedError, ReadOnlyError

log = logging.getLogger("docket.state")


@dataclass(slots=True, kw_only=True)
class LogState:
    """What the sequencer knows.

    ``ledger`` and ``frontier`` may run ahead of the database by the batch being
    committed; ``committed_size``/``committed_root`` describe only what is durable, and
    everything served to clients (entries, proofs, checkpoints) stays within them.
    """

    origin: str
    log_key: crypto.SigningKey
    ledger: Ledger | None = None
    frontier: Frontier = field(default_factory=Frontier)
    committed_size: int = 0
    committed_root: bytes = EMPTY_ROOT
    read_only: str | None = None
    """Why writes are refused, or ``None`` when the server accepts writes."""

    @property
    def log_public(self) -> bytes:
        """The log's public checkpoint key."""
        return self.log_key.public_bytes()

    def require_ledger(self) -> Ledger:
        """The ledger, or :class:`NotFoundedError` before the talks are founded."""
        if self.ledger is None:
            raise NotFoundedError("the talks have not been founded")
        return self.ledger

    def require_writable(self) -> None:
        """Raise :class:`ReadOnlyError` when writes are refused."""
        if self.read_only is not None:
            raise ReadOnlyError("the server is read-only: " + self.read_only)

    def go_read_only(self, reason: str) -> None:
        """Refuse every write from now on (loudly: an operator must look)."""
        if self.read_only is None:
            log.critical("going read-only: %s", reason)
            self.read_only = reason
