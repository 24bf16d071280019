"""The log's in-memory state, shared by the services and mutated only by the sequencer."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from protocol import crypto
from protocol.genesis import Genesis
from protocol.ledger import Ledger, LedgerIndex
from protocol.merkle import EMPTY_ROOT, Frontier
from server.errors import (
    NotFoundedError,
    ReadOnlyError,
    StoreBehindError,
    StoreDivergedError,
)

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
    read_only_code: str = "read_only"
    """The problem code writes are refused with (``store_behind`` after a rollback)."""
    index_factory: Callable[[], LedgerIndex] | None = None
    """Makes the ledger index of a newly founded log (``None``: in memory).  The app
    plugs in :class:`~server.storage.ledger_index.SqliteLedgerIndex`, so memory stays
    flat in the log's size; recovery builds its own on the same file."""
    key_check: Callable[[], str | None] | None = None
    """Whether the key file still holds :attr:`log_key` (server/keyguard.py); checked
    before every signature, by :meth:`require_writable` and the checkpointer."""

    def new_ledger(self, genesis: Genesis) -> Ledger:
        """A ledger for a log being founded with ``genesis``."""
        index = None if self.index_factory is None else self.index_factory()
        return Ledger(genesis, index=index)

    @property
    def log_public(self) -> bytes:
        """The log's public checkpoint key."""
        return self.log_key.public_bytes()

    def require_ledger(self) -> Ledger:
        """The ledger, or :class:`NotFoundedError` before the talks are founded."""
        if self.ledger is None:
            if self.read_only is not None:  # a store too damaged to rebuild the log from
                raise self._read_only_error()
            raise NotFoundedError("the talks have not been founded")
        return self.ledger

    def check_key(self) -> None:
        """Go read-only if the checkpoint key was removed or changed on disk."""
        if self.key_check is not None and self.read_only is None:
            problem = self.key_check()
            if problem is not None:
                self.go_read_only(problem)

    def require_writable(self) -> None:
        """Raise :class:`ReadOnlyError` when writes are refused (or the key is gone)."""
        self.check_key()
        if self.read_only is not None:
            raise self._read_only_error()

    def _read_only_error(self) -> ReadOnlyError:
        kind = _READ_ONLY_ERRORS.get(self.read_only_code, ReadOnlyError)
        return kind("the server is read-only: " + (self.read_only or ""))

    def go_read_only(self, reason: str, *, code: str = "read_only") -> None:
        """Refuse every write from now on (loudly: an operator must look)."""
        if self.read_only is None:
            log.critical("going read-only: %s", reason)
            self.read_only = reason
            self.read_only_code = code


_READ_ONLY_ERRORS: dict[str, type[ReadOnlyError]] = {
    StoreBehindError.code: StoreBehindError,
    StoreDivergedError.code: StoreDivergedError,
}
