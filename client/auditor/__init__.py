"""The auditor: verify a whole Docket log from outside and report on it.

Theory of operation
-------------------
An auditor holds nothing but the pinned talks id, the log entries and the checkpoint
notes the server (and its witnesses) signed.  It never sees plaintext.  This package is
pure: no network, files or clock (the CLI fetches and feeds it), so the same bytes
always give the same :class:`AuditReport`.

:func:`audit_log` checks, for the whole log (each step is spelt out in the module that
carries it out):

1. **Trust root** (:mod:`~client.auditor.audit`).  Entry 0 is a genesis signed by its
   mediator whose leaf hash is the pinned talks id; without it the audit stops.
2. **Signatures** (:mod:`~client.auditor.chunks`, :mod:`~client.auditor.pipeline`).
   Every draft and receipt signature verifies under its device's key, in worker
   processes; every roster and channel change verifies in the main process.
3. **Rules** (:mod:`~client.auditor.replay`).  Every entry replays through
   :class:`protocol.ledger.Ledger`, the machine the server and the clients run, against
   the roster in force at its index; an entry dated long before one logged earlier is
   ``backdated``.
4. **Merkle root** (:mod:`~client.auditor.checkpoints`).  The RFC 9162 root over all
   entries, as served, equals every checkpoint's root at its size; checkpoints must be
   signed by the log and, to be trusted, carry the witness quorum of the roster at
   their size.
5. **Consistency with the previous audit** (:mod:`~client.auditor.checkpoints`).  A log
   shorter than the :class:`AuditState` saved last time is a ``rollback``; a different
   root at the old size is a ``fork``.

The audit does not stop at the first bad entry.  An entry that fails to parse or to
apply becomes an :class:`Alarm` ``{index, code, reason}`` (the code is the
:class:`~protocol.errors.ProtocolError` code the server would have answered), the ledger
steps past it (:meth:`~protocol.ledger.Ledger.skip_entry`) and the replay goes on, so one
report lists every problem.  Invalid entries still count in the Merkle tree: the root is
over the bytes the log holds.  :attr:`AuditReport.ok` is true only without alarms.

Ed25519 verification is most of the work, so it is spread over ``workers`` processes
(:mod:`~client.auditor.pipeline` explains how); with ``workers=1`` the same functions run
in-process, so both paths share every line that decides validity, and their reports are
identical.

Modules
-------
* :mod:`~client.auditor.report`: alarm codes, :class:`AuditState`, :class:`AuditReport`
  and its parts, as JSON and as text;
* :mod:`~client.auditor.export`: reading a ``docket-server export`` file;
* :mod:`~client.auditor.audit`: :func:`audit_log`, the steps in order;
* :mod:`~client.auditor.chunks`: parsing a chunk, verifying its signatures and leaves;
* :mod:`~client.auditor.pipeline`: the worker processes and the chunks in flight;
* :mod:`~client.auditor.replay`: the ledger replay and the counts;
* :mod:`~client.auditor.checkpoints`: roots, checkpoints, quorum, the previous audit;
* :mod:`~client.auditor.summary`: channels, delegations, drafts still waiting;
* :mod:`~client.auditor.promises`: broken-promise bundles handed in by clients.
"""

from __future__ import annotations

# Besides the public names in __all__, the internals that tests exercise directly.
from client.auditor.audit import Progress, audit_log
from client.auditor.chunks import _cut_verifies as _cut_verifies
from client.auditor.chunks import _parse_chunk as _parse_chunk
from client.auditor.chunks import _verify_chunk as _verify_chunk
from client.auditor.export import EXPORT_MAX_LINE, ExportedLog, read_export
from client.auditor.pipeline import DEFAULT_CHUNK
from client.auditor.pipeline import _share as _share
from client.auditor.pipeline import _verify_shared as _verify_shared
from client.auditor.replay import BACKDATE_TOLERANCE_MS, BRACKET_TOLERANCE_MS
from client.auditor.report import (
    BACKDATED,
    BAD_CHECKPOINT,
    BROKEN_PROMISE,
    EMPTY_LOG,
    ENTRY_KINDS,
    FORK,
    LOG_TRUNCATED,
    NO_CHECKPOINT,
    NO_QUORUM,
    OUT_OF_BRACKET,
    ROLLBACK,
    ROOT_MISMATCH,
    STATE_VERSION,
    WRONG_TALKS,
    Alarm,
    AuditReport,
    AuditState,
    ChannelReport,
    CheckpointReport,
    DelegationReport,
    Pending,
)

__all__ = [
    "BACKDATED",
    "BACKDATE_TOLERANCE_MS",
    "BAD_CHECKPOINT",
    "BRACKET_TOLERANCE_MS",
    "BROKEN_PROMISE",
    "DEFAULT_CHUNK",
    "EMPTY_LOG",
    "ENTRY_KINDS",
    "EXPORT_MAX_LINE",
    "FORK",
    "LOG_TRUNCATED",
    "NO_CHECKPOINT",
    "NO_QUORUM",
    "OUT_OF_BRACKET",
    "ROLLBACK",
    "ROOT_MISMATCH",
    "STATE_VERSION",
    "WRONG_TALKS",
    "Alarm",
    "AuditReport",
    "AuditState",
    "ChannelReport",
    "CheckpointReport",
    "DelegationReport",
    "ExportedLog",
    "Pending",
    "Progress",
    "audit_log",
    "read_export",
]
