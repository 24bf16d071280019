"""A witness never cosigns a checkpoint inconsistent with one it cosigned, even after a
restart (the witness state is persisted before the cosignature leaves)."""

from __future__ import annotations

from pathlib import Path

import pytest

from client.errors import Alarm
from client.state import LocalState
from client.witness import Witness
from protocol.checkpoint import Checkpoint, parse_note, verify_cosignature
from protocol.merkle import MemoryTree
from tests.protocol.builders import ORIGIN, standard


def _witness(home: Path) -> tuple[Witness, MemoryTree, LocalState]:
    talks, _, _ = standard("client-witness")
    state = LocalState(home)
    keys = talks.mediator.device
    return Witness(state, origin=ORIGIN, witness_id="mediator", keys=keys), talks.tree, state


def _cp(tree: MemoryTree, size: int) -> Checkpoint:
    return Checkpoint(origin=ORIGIN, size=size, root=tree.root(size))


def test_cosignature_verifies(home: Path) -> None:
    witness, tree, _ = _witness(home)
    cp = _cp(tree, 5)
    line = witness.cosign(cp, [], timestamp=1000)
    sig = parse_note(cp.body() + b"\n" + line.encode()).signatures[0]
    assert verify_cosignature(cp, sig, witness.name, witness.keys.public.sign_pk) == 1000
    assert witness.size == 5


def test_refuses_fork_and_rollback_after_restart(home: Path) -> None:
    witness, tree, state = _witness(home)
    witness.cosign(_cp(tree, 6), [], timestamp=1)
    state.close()

    # A fresh process: only the state file remembers what was cosigned.
    state = LocalState(home)
    witness = Witness(state, origin=ORIGIN, witness_id="mediator", keys=witness.keys)
    forked = Checkpoint(origin=ORIGIN, size=6, root=bytes(32))
    with pytest.raises(Alarm) as info:
        witness.cosign(forked, [], timestamp=2)
    assert info.value.name == "fork"

    with pytest.raises(Alarm) as info:
        witness.cosign(_cp(tree, 4), [], timestamp=3)
    assert info.value.name == "rollback"

    # A larger checkpoint whose proof does not connect is a fork, too.
    bad_proof = tree.consistency_proof(5, tree.size)
    with pytest.raises(Alarm) as info:
        witness.cosign(_cp(tree, tree.size), bad_proof, timestamp=4)
    assert info.value.name == "fork"

    # Alarms are recorded, and rollback/fork freeze sending.
    assert [a.name for a in state.alarms()] == ["fork", "rollback", "fork"]
    assert state.get("frozen")["alarm"] == "fork"
    assert witness.size == 6

    # The honest extension is still accepted.
    proof = tree.consistency_proof(6, tree.size)
    witness.cosign(_cp(tree, tree.size), proof, timestamp=5)
    assert witness.size == tree.size


def test_other_origin_is_refused(home: Path) -> None:
    witness, tree, _ = _witness(home)
    other = Checkpoint(origin="elsewhere/log", size=2, root=tree.root(2))
    with pytest.raises(Alarm) as info:
        witness.cosign(other, [], timestamp=1)
    assert info.value.name == "forged"
    assert witness.size == 0
