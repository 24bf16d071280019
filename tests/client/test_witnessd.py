"""The witness daemon against c2sp.org/tlog-witness, as a real process on loopback.

Every test drives ``python -m client.witnessd serve`` over HTTP with checkpoints signed
by a test log (protocol functions only) and checks the spec's status codes, the
cosignatures and the durable state in ``witness.db``.
"""

from __future__ import annotations

import base64
import hashlib
import sqlite3
import stat
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from client.witnessd.home import DB_FILE, KEY_FILE
from client.witnessd.wire import AddCheckpoint
from protocol import crypto
from protocol.checkpoint import (
    Checkpoint,
    NoteSignature,
    format_note,
    open_checkpoint,
    parse_note,
    sign_checkpoint,
    verify_cosignature,
)
from protocol.crypto import Rng
from protocol.merkle import MemoryTree
from tests.client.witnessproc import WitnessProc, witness_init

ORIGIN = "witness.test/log"
NAME = f"{ORIGIN}/witness/w1"
TIMEOUT = 10.0


class TestLog:
    """A log that signs checkpoints of an in-memory tree (``entries`` appended so far)."""

    __test__ = False

    def __init__(self, rng: Rng, origin: str = ORIGIN, tag: bytes = b"e") -> None:
        self.origin = origin
        self.key = crypto.SigningKey.generate(rng)
        self.tree = MemoryTree()
        self.tag = tag

    def grow(self, size: int) -> None:
        while self.tree.size < size:
            self.tree.append(self.tag + b"%d" % self.tree.size)

    def checkpoint(self, size: int, key: crypto.SigningKey | None = None) -> Checkpoint:
        self.grow(size)
        return Checkpoint(origin=self.origin, size=size, root=self.tree.root(size))

    def note(self, cp: Checkpoint, key: crypto.SigningKey | None = None) -> bytes:
        return format_note(cp.body(), [sign_checkpoint(cp, self.origin, key or self.key)])

    def body(self, old: int, size: int, *, proof: list[bytes] | None = None) -> bytes:
        cp = self.checkpoint(size)
        if proof is None:
            proof = self.tree.consistency_proof(old, size) if 0 < old < size else []
        return AddCheckpoint(old=old, proof=tuple(proof), note=self.note(cp)).to_bytes()


def post(url: str, body: bytes, path: str = "/add-checkpoint") -> tuple[int, str, bytes]:
    """POST and return (status, content type, body) whatever the status."""
    req = urllib.request.Request(url + path, data=body, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
            return resp.status, resp.headers.get_content_type(), resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.headers.get_content_type(), err.read()


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.read()


@pytest.fixture
def log(rng: Rng) -> TestLog:
    return TestLog(rng)


@pytest.fixture
def info(tmp_path: Path, log: TestLog) -> dict[str, object]:
    key = base64.b64encode(log.key.public_bytes()).decode()
    return witness_init(tmp_path / "witness", "w1", "--log", f"{ORIGIN}={key}")


@pytest.fixture
def witness(tmp_path: Path, info: dict[str, object]) -> Iterator[WitnessProc]:
    proc = WitnessProc(tmp_path / "witness").start()
    try:
        yield proc
    finally:
        proc.stop()


def witness_key(info: dict[str, object]) -> bytes:
    return base64.urlsafe_b64decode(str(info["key"]) + "==")


def cosigned(log: TestLog, info: dict[str, object], size: int, answer: bytes) -> int:
    """Check the answer is exactly one valid cosignature on the checkpoint; its time."""
    lines = answer.decode().splitlines(keepends=True)
    assert len(lines) == 1
    return verify_cosignature(
        log.checkpoint(size), NoteSignature.from_line(lines[0]), NAME, witness_key(info)
    )


def stored_size(home: Path) -> int | None:
    with sqlite3.connect(home / DB_FILE) as conn:
        row = conn.execute("SELECT size FROM cosigned WHERE origin = ?", (ORIGIN,)).fetchone()
    return None if row is None else int(row[0])


# --- init ---------------------------------------------------------------------------------


def test_init_makes_a_private_home_and_prints_the_vkey(
    tmp_path: Path, info: dict[str, object]
) -> None:
    home = tmp_path / "witness"
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / KEY_FILE).stat().st_mode) == 0o600
    entry: dict[str, str] = info["logs"][0]  # type: ignore[index]
    assert entry["name"] == NAME
    assert entry["vkey"].startswith(NAME + "+")
    assert entry["vkey"].endswith(base64.b64encode(b"\x04" + witness_key(info)).decode())


def test_init_refuses_to_overwrite_a_witness_key(tmp_path: Path, info: dict[str, object]) -> None:
    with pytest.raises(Exception, match="exit status 1"):
        witness_init(tmp_path / "witness", "w2", "--log", f"{ORIGIN}={info['key']}")


# --- the protocol -----------------------------------------------------------------------------


def test_first_checkpoint_then_growth_are_cosigned(
    log: TestLog, info: dict[str, object], witness: WitnessProc
) -> None:
    status, _, answer = post(witness.url, log.body(0, 3))
    assert status == 200, answer
    first = cosigned(log, info, 3, answer)
    assert abs(first - time.time()) < 60
    status, _, answer = post(witness.url, log.body(3, 10))
    assert status == 200, answer
    assert cosigned(log, info, 10, answer) >= first
    assert stored_size(witness.home) == 10


def test_stale_old_size_gets_409_with_the_cosigned_size(log: TestLog, witness: WitnessProc) -> None:
    assert post(witness.url, log.body(0, 5))[0] == 200
    status, ctype, answer = post(witness.url, log.body(0, 8))
    assert (status, ctype, answer) == (409, "text/x.tlog.size", b"5\n")
    status, ctype, answer = post(witness.url, log.body(2, 8))
    assert (status, ctype, answer) == (409, "text/x.tlog.size", b"5\n")


def test_unknown_old_size_learns_the_size_from_409(log: TestLog, witness: WitnessProc) -> None:
    """A client that does not know the witness's size sends 0 and learns it."""
    assert post(witness.url, log.body(0, 4))[0] == 200
    status, _, answer = post(witness.url, log.body(0, 9))
    assert status == 409
    assert post(witness.url, log.body(int(answer), 9))[0] == 200


def test_wrong_consistency_proof_is_refused(log: TestLog, witness: WitnessProc) -> None:
    assert post(witness.url, log.body(0, 5))[0] == 200
    log.grow(12)
    proof = log.tree.consistency_proof(5, 12)
    proof[0] = bytes(32)
    status, _, _ = post(witness.url, log.body(5, 12, proof=proof))
    assert status == 422
    status, _, _ = post(witness.url, log.body(5, 12, proof=proof[:-1]))
    assert status == 422
    assert stored_size(witness.home) == 5


def test_proof_from_size_zero_is_refused(log: TestLog, witness: WitnessProc) -> None:
    status, _, _ = post(witness.url, log.body(0, 5, proof=[bytes(32)]))
    assert status == 422


def test_size_zero_checkpoint_with_a_root_is_refused(log: TestLog, witness: WitnessProc) -> None:
    cp = Checkpoint(origin=ORIGIN, size=0, root=hashlib.sha256(b"not empty").digest())
    body = AddCheckpoint(old=0, proof=(), note=log.note(cp)).to_bytes()
    assert post(witness.url, body)[0] == 422
    empty = Checkpoint(origin=ORIGIN, size=0, root=hashlib.sha256(b"").digest())
    assert (
        post(witness.url, AddCheckpoint(old=0, proof=(), note=log.note(empty)).to_bytes())[0] == 200
    )


def test_unknown_origin_is_404(rng: Rng, witness: WitnessProc) -> None:
    other = TestLog(rng, origin="other.test/log")
    assert post(witness.url, other.body(0, 3))[0] == 404


def test_checkpoint_signed_by_a_foreign_key_is_403(
    log: TestLog, rng: Rng, witness: WitnessProc
) -> None:
    cp = log.checkpoint(3)
    forged = log.note(cp, crypto.SigningKey.generate(rng))
    assert post(witness.url, AddCheckpoint(old=0, proof=(), note=forged).to_bytes())[0] == 403
    # The log's key name and id, but a signature that does not verify.
    good = parse_note(log.note(cp))
    sig = good.signatures[0]
    broken = NoteSignature(
        name=sig.name,
        key_id=sig.key_id,
        sig_bytes=bytes([sig.sig_bytes[0] ^ 1]) + sig.sig_bytes[1:],
    )
    note = format_note(cp.body(), [broken.line()])
    assert post(witness.url, AddCheckpoint(old=0, proof=(), note=note).to_bytes())[0] == 403
    assert stored_size(witness.home) is None


@pytest.mark.parametrize(
    "mutation",
    [
        "no-blank-line",
        "old-leading-zero",
        "old-missing",
        "proof-not-base64",
        "proof-short-hash",
        "proof-too-many-lines",
        "note-garbage",
        "body-too-large",
        "old-larger-than-size",
    ],
)
def test_malformed_request_is_400(log: TestLog, witness: WitnessProc, mutation: str) -> None:
    note = log.note(log.checkpoint(4))
    bodies = {
        "no-blank-line": b"old 0\n" + note.replace(b"\n\n", b"\n"),
        "old-leading-zero": b"old 00\n\n" + note,
        "old-missing": b"\n" + note,
        "proof-not-base64": b"old 0\n!!!!\n\n" + note,
        "proof-short-hash": b"old 0\n" + base64.b64encode(bytes(31)) + b"\n\n" + note,
        "proof-too-many-lines": b"old 1\n" + (base64.b64encode(bytes(32)) + b"\n") * 64
        + b"\n" + note,
        "note-garbage": b"old 0\n\nnot a note\n",
        "body-too-large": b"old 0\n\n" + note + b"x" * 70_000,
        "old-larger-than-size": b"old 5\n\n" + note,
    }  # fmt: skip
    status, _, answer = post(witness.url, bodies[mutation])
    assert status == 400, answer
    assert b"Traceback" not in answer


def test_wrong_method_and_path_do_not_crash(witness: WitnessProc) -> None:
    assert get(witness.url + "/add-checkpoint")[0] == 405
    assert get(witness.url + "/nothing")[0] == 404
    assert get(witness.url + "/healthz")[0] == 200


# --- forks, restarts, durability -----------------------------------------------------------


def test_fork_at_the_same_size_is_refused(log: TestLog, rng: Rng, witness: WitnessProc) -> None:
    assert post(witness.url, log.body(0, 6))[0] == 200
    fork = TestLog(rng, tag=b"fork")
    fork.key = log.key
    assert post(witness.url, fork.body(6, 6))[0] == 422
    assert post(witness.url, fork.body(6, 9))[0] == 422  # inconsistent growth
    assert stored_size(witness.home) == 6


def test_fork_after_restart_is_refused(log: TestLog, rng: Rng, witness: WitnessProc) -> None:
    assert post(witness.url, log.body(0, 6))[0] == 200
    witness.stop()
    witness.start()
    fork = TestLog(rng, tag=b"fork")
    fork.key = log.key
    assert post(witness.url, fork.body(0, 9))[:3] == (409, "text/x.tlog.size", b"6\n")
    assert post(witness.url, fork.body(6, 9))[0] == 422
    assert post(witness.url, fork.body(6, 6))[0] == 422
    assert post(witness.url, log.body(6, 9))[0] == 200


def test_cosignature_is_durable_before_it_is_returned(log: TestLog, witness: WitnessProc) -> None:
    """SIGKILL right after the answer: the database already holds the new state."""
    for size in (3, 7, 12):
        old = stored_size(witness.home) or 0
        status, _, _ = post(witness.url, log.body(old, size))
        assert status == 200
        witness.kill()
        assert stored_size(witness.home) == size
        witness.start()
    assert post(witness.url, log.body(0, 13))[2] == b"12\n"


def test_resubmitting_the_same_checkpoint_gives_a_fresh_timestamp(
    log: TestLog, info: dict[str, object], witness: WitnessProc
) -> None:
    status, _, answer = post(witness.url, log.body(0, 4))
    assert status == 200
    first = cosigned(log, info, 4, answer)
    deadline = time.monotonic() + 5
    later = first
    while later == first and time.monotonic() < deadline:
        time.sleep(0.3)
        status, _, answer = post(witness.url, log.body(4, 4))
        assert status == 200
        later = cosigned(log, info, 4, answer)
    assert later > first


def test_racing_submissions_never_roll_back(log: TestLog, witness: WitnessProc) -> None:
    """The spec's race: requests from the same old size for different sizes at once."""
    assert post(witness.url, log.body(0, 4))[0] == 200
    log.grow(40)
    bodies = [log.body(4, size) for size in range(5, 25)]
    results: list[int] = []

    def send(body: bytes) -> None:
        results.append(post(witness.url, body)[0])

    threads = [threading.Thread(target=send, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=TIMEOUT * 2)
    assert sorted(results) == [200] + [409] * (len(bodies) - 1)
    size = stored_size(witness.home)
    assert size is not None and size >= 5
    assert post(witness.url, log.body(0, 40))[2] == b"%d\n" % size


def test_monitoring_url_serves_the_last_cosigned_checkpoint(
    log: TestLog, info: dict[str, object], witness: WitnessProc
) -> None:
    origin_hash = hashlib.sha256(ORIGIN.encode()).hexdigest()
    assert get(f"{witness.url}/{origin_hash}/checkpoint")[0] == 404
    assert post(witness.url, log.body(0, 5))[0] == 200
    status, note = get(f"{witness.url}/{origin_hash}/checkpoint")
    assert status == 200
    cp, signed = open_checkpoint(
        note, origin=ORIGIN, log_name=ORIGIN, log_key=log.key.public_bytes()
    )
    assert cp.size == 5
    mine = [s for s in signed.signatures if s.name == NAME]
    assert len(mine) == 1
    verify_cosignature(cp, mine[0], NAME, witness_key(info))
