"""Founding the talks: the one write allowed before there is a roster."""

from __future__ import annotations

import logging

from protocol import crypto
from protocol.errors import BadValueError
from protocol.genesis import Genesis
from protocol.receipt import Promise
from server.errors import AlreadyFoundedError, BadTokenError
from server.services.checkpoints import Checkpointer
from server.services.sequencer import Sequencer
from server.services.state import LogState
from server.storage.auth import get_meta_txn
from server.storage.db import Store

log = logging.getLogger("docket.talks")


class TalksService:
    """The genesis, and founding the talks with it."""

    def __init__(
        self, *, state: LogState, store: Store, sequencer: Sequencer, checkpointer: Checkpointer
    ) -> None:
        self._state = state
        self._store = store
        self._sequencer = sequencer
        self._checkpointer = checkpointer

    def genesis(self) -> Genesis:
        """The founding record (404 ``not_founded`` before founding)."""
        return self._state.require_ledger().genesis

    async def found(self, token: bytes, genesis: Genesis) -> Promise:
        """Log the mediator-signed genesis as entry 0, once, with the founding token."""
        if self._state.ledger is not None:
            raise AlreadyFoundedError("the talks are already founded")
        stored = await self._store.read(get_meta_txn, "founding_token")
        if stored is None:
            raise AlreadyFoundedError("the talks are already founded")
        if not crypto.equal(crypto.sha256(token), stored):
            raise BadTokenError("wrong founding token")
        if not crypto.equal(genesis.log_key, self._state.log_public):
            raise BadValueError("the genesis names another checkpoint key than this server's")
        if genesis.origin != self._state.origin:
            raise BadValueError("the genesis names another origin than this server's")
        [promise] = await self._sequencer.submit([genesis])
        # Publish the first checkpoint at once, so a founded log always has one.  The
        # genesis is durable either way: a failure here must not cost its promise (the
        # checkpointer retries on its own).
        try:
            await self._checkpointer.sign_now()
        except Exception:
            log.exception("could not sign the first checkpoint")
        return promise
