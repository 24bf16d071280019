"""The Docket server: an aiohttp relay and append-only log for one mediated negotiation.

Layering (import-linter keeps ``server`` on top of ``protocol`` and away from ``client``)::

    routes.py      the whole URL map
    handlers/      thin HTTP: parse, call one service, serialise
    services/      rules of the host: auth, invitations, the sequencer, relay, log
    storage/       SQL only: ``*_txn`` functions run by one writer thread

The pure :class:`protocol.ledger.Ledger` decides what is valid; the server never
re-implements its rules, it only sequences, stores and serves what the ledger accepts.
"""
