"""Docket's protocol: pure, sans-IO.

Encoding, crypto recipes, keys, genesis, roster, envelopes, receipts, the ledger rules,
the Merkle log, C2SP checkpoints and evidence bundles.  Nothing in this package touches
sockets, asyncio, SQLite, files, the clock or the OS random number generator: bytes and
values go in, typed objects or :class:`protocol.errors.ProtocolError` come out; time and
randomness are parameters (``time=``, ``rng=``).  The server, the client and the auditor
all build on this one implementation, so they cannot disagree about what is valid.
"""
