"""The client as a witness: cosign a checkpoint only if it extends what it cosigned before.

Each delegation's head and the mediator witness the log (``protocol.genesis``).  A
cosignature says "I have seen this tree head, and it is consistent with every head I
cosigned before".  The rule itself is :class:`protocol.checkpoint.WitnessState`; this
module adds the part that makes it hold across restarts: the new state is written to the
local state file *before* the cosignature is returned, so a crash after signing can
never let the witness sign a conflicting head later (the opposite order could).
"""

from __future__ import annotations

from collections.abc import Sequence

from client.errors import Alarm
from client.state import LocalState
from protocol.checkpoint import Checkpoint, cosign
from protocol.errors import ProtocolError
from protocol.genesis import witness_name
from protocol.keys import DeviceKeys


class Witness:
    """A witness identity (``<origin>/witness/<id>``) backed by a persisted state."""

    def __init__(self, state: LocalState, *, origin: str, witness_id: str, keys: DeviceKeys):
        self.state = state
        self.origin = origin
        self.name = witness_name(origin, witness_id)
        self.keys = keys

    @property
    def size(self) -> int:
        """Size of the last checkpoint this witness cosigned (0 before the first)."""
        return self.state.witness_state(self.origin).size

    def cosign(self, checkpoint: Checkpoint, proof: Sequence[bytes], *, timestamp: int) -> str:
        """Check ``checkpoint`` against the last cosigned one and return a cosignature line.

        ``proof`` is the consistency proof from the last cosigned size to
        ``checkpoint.size``.  A smaller checkpoint raises the ``rollback`` alarm, another
        root at the same size or a failing proof the ``fork`` alarm; either is recorded
        in the state (which freezes sending) and nothing is signed.
        """
        current = self.state.witness_state(self.origin)
        try:
            current.check_next(checkpoint, proof)
        except ProtocolError as exc:
            alarm = Alarm.from_protocol(exc, what="witness refused to cosign")
            self.state.record_alarm(alarm)
            raise alarm from exc
        self.state.set_witness_state(current.advance(checkpoint))
        return cosign(checkpoint, self.name, self.keys.signing, timestamp=timestamp)
