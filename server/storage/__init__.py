"""Storage: the only package that speaks SQL.

Functions named ``*_txn`` take an open :class:`sqlite3.Connection` and run inside a
transaction their caller opened: the single writer thread wraps each call in
``BEGIN IMMEDIATE`` ... ``COMMIT`` (see :class:`server.storage.db.Store`); readers run
theirs in a deferred read transaction on their own connection, so one call sees one
consistent snapshot.
"""
