"""``docket-witnessd``: a standalone C2SP tlog-witness for Docket logs.

Each delegation, the mediator or an outside observer runs one on its own machine.  It
holds its own Ed25519 key, knows the logs it witnesses (origin and log public key) and
answers the tlog-witness ``add-checkpoint`` call (c2sp.org/tlog-witness): it cosigns a
checkpoint only if it extends the last one it cosigned for that origin.

Theory of operation
===================
1. :mod:`client.witnessd.wire` parses a request body (sans-IO): ``old <size>``, up to 63
   consistency proof hashes, a blank line, the checkpoint note.
2. :class:`client.witnessd.service.WitnessService` checks it in the spec's order: a
   well-formed note (400), a known origin (404), a valid signature by the log key (403),
   ``old`` no larger than the checkpoint (400); then, serialised per origin and inside
   one ``BEGIN IMMEDIATE`` transaction that re-reads the stored state, ``old`` equal to
   the size last cosigned (409 with that size), the consistency rules of
   :class:`protocol.checkpoint.WitnessState` (422).
3. The new state (size, root, the checkpoint note, the cosignature) is committed with
   ``synchronous=FULL`` *before* the cosignature is returned: a witness that crashed
   after answering remembers what it signed, so it can never cosign two inconsistent
   checkpoints, across restarts too.
4. Re-submitting the checkpoint last cosigned (``old`` equal to its size, same root)
   yields a cosignature with a fresh timestamp: that is how a quiet log keeps fresh
   cosignatures.

Commands: see :mod:`client.witnessd.cli`.  This package never imports ``server``.
"""
