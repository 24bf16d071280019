"""Benchmark the auditor: build a signed log of N entries, audit it, compare to Ed25519.

Usage::

    python -m bench.audit_bench                      # 100 000 entries
    python -m bench.audit_bench --entries 1000000
    python -m bench.audit_bench --profile            # cProfile of the in-process audit

The log is real: a genesis, four delegations of four members, mediator staff, a plenary,
bilateral and working-group channels, a device enrolled half-way (so the roster changes
mid-log), then drafts (every other one a version 2 of the channel's previous draft)
each followed by signed ``received`` receipts from its recipients and the mediator's
``acknowledged`` receipt; a few receipts are left out or are ``rejected``.  Every entry
is a canonical record signed with its device's Ed25519 key through protocol functions
(:func:`protocol.records.sign_record`, :func:`protocol.roster.make_change`, ...).  To
build a million entries quickly, draft headers are signed directly (the auditor only
ever sees headers; no payload is encrypted) and signing is spread over processes, in
three phases: version-1 drafts, version-2 drafts (which name a version-1 leaf), then
receipts (which name their draft's leaf).

It then measures, in the same run: the raw verification rate of
:func:`protocol.crypto.verify` on a draft-sized message in a loop, and
:func:`client.auditor.audit_log` with ``workers=1`` and ``workers=2``, and prints entries
per second and ``audit rate / (raw verify rate x processes)``, plus the same ratio in
CPU time (immune to other load on the host).

Results (2-vCPU AMD EPYC VM, CPython 3.11, PyNaCl 1.6; 2026-11-26 18:58-19:01 UTC,
raw verify ~25,650-26,070/s; bench/RESULTS.md has the history):

=========  =======  ==========  =========  ==========  =========
entries    workers  wall        entries/s  wall ratio  CPU ratio
=========  =======  ==========  =========  ==========  =========
100 000    1        4.8 s       20 550     0.79-0.81   0.79-0.81
100 000    2        2.7 s       36 700     0.70-0.73   0.76-0.78
1 000 000  1        48.7 s      20 540     0.80        0.80
1 000 000  2        27.1 s      36 890     0.72        0.76
=========  =======  ==========  =========  ==========  =========

Per entry (100k, one process): Ed25519 ~39-41 us of ~49 us of CPU; the hot parse
~3.8 us, the ledger replay ~2 us, the summary ~0.6 us, hashing ~1 us.  With two
processes each entry costs ~1.3 us more (copy-on-write faults after the fork, pickled
signature lists).  Peak RSS at 1M entries: 1.2 GB (the ledger keeps every draft and
receipt to report on them).
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import os
import pstats
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from client.auditor import AuditReport, audit_log
from protocol import checkpoint as cpt
from protocol import crypto, merkle
from protocol.encoding import JSONValue, b64e, canonical
from protocol.genesis import Genesis, WitnessPolicy, found, witness_name
from protocol.hotparse import SIG_MEMBER_HEAD, SIG_MEMBER_TAIL, parse_hot_signed
from protocol.keys import DeviceId, DeviceKeys
from protocol.ledger import parse_entry, signature_claim
from protocol.records import VERSION, sign_record
from protocol.roster import ChangeArgs, Roster, RosterChange, make_change

ORIGIN = "bench.docket.example/talks"
T0 = 1_700_000_000_000
DELEGATIONS = ("alpha", "beta", "gamma", "delta")
MEMBERS_PER_DELEGATION = 3  # besides the head
# channel id -> (delegations, mediator-side members, weight in the draft mix)
CHANNELS: dict[str, tuple[tuple[str, ...], tuple[str, ...], int]] = {
    "plenary": (DELEGATIONS, ("mediator",), 1),
    "wg-legal": (("alpha", "beta"), ("mediator", "clerk"), 2),
    "wg-humanitarian": (("gamma", "delta"), ("mediator",), 2),
    **{f"bilateral-{d}": ((d,), ("mediator",), 3) for d in DELEGATIONS},
}


def _seed(name: str) -> bytes:
    return hashlib.sha256(b"docket/bench/seed\x00" + name.encode()).digest()


def device_keys(name: str) -> DeviceKeys:
    """Deterministic keys per member name (re-derived in every worker process)."""
    seed = _seed(name)
    return DeviceKeys(crypto.SigningKey(seed), crypto.BoxKey(hashlib.sha256(seed).digest()))


_KEYS: dict[str, DeviceKeys] = {}


def _keys(name: str) -> DeviceKeys:
    keys = _KEYS.get(name)
    if keys is None:
        keys = _KEYS[name] = device_keys(name)
    return keys


def _h(*parts: object) -> bytes:
    return hashlib.sha256(repr(parts).encode()).digest()


# --- the plan ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DraftJob:
    index: int
    sender: str
    channel: str
    counter: int
    version: int
    draft: bytes
    parent: int | None  # index of the version-1 draft this one answers
    roster: bytes
    recipients: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class ReceiptJob:
    index: int
    signer: str
    draft_index: int
    kind: str


def _draft_fields(index: int) -> tuple[bytes, bytes, bytes, int]:
    """The ciphertext-derived fields of the draft at ``index`` (ct_hash, commit, wrapped,
    ct_len): deterministic, so receipts can name them without the header."""
    return _h("ct", index), _h("commit", index), _h("wrapped", index), 1000 + index % 500


def sign_draft(job: DraftJob, talks: bytes, parent_leaf: bytes | None) -> bytes:
    ct_hash, commit, wrapped, ct_len = _draft_fields(job.index)
    keys = _keys(job.sender)
    body: dict[str, JSONValue] = {
        "channel": job.channel,
        "commit": b64e(commit),
        "counter": job.counter,
        "ct_hash": b64e(ct_hash),
        "ct_len": ct_len,
        "draft": b64e(job.draft),
        "msg": b64e(_h("msg", job.index)[:16]),
        "parents": [] if parent_leaf is None else [b64e(parent_leaf)],
        "recipients": [b64e(r) for r in job.recipients],
        "roster": b64e(job.roster),
        "sender": b64e(keys.device_id),
        "t": "draft",
        "talks": b64e(talks),
        "time": T0 + job.index,
        "v": VERSION,
        "version": job.version,
        "wrapped": b64e(wrapped),
    }
    return canonical(sign_record(keys.signing, crypto.CTX_DRAFT, body))


def sign_receipt(job: ReceiptJob, talks: bytes, draft_leaf: bytes) -> bytes:
    ct_hash, commit, _, _ = _draft_fields(job.draft_index)
    keys = _keys(job.signer)
    body: dict[str, JSONValue] = {
        "commit": b64e(commit),
        "ct_hash": b64e(ct_hash),
        "device": b64e(keys.device_id),
        "entry": b64e(draft_leaf),
        "index": job.draft_index,
        "kind": job.kind,
        "reason": "decryption_failed" if job.kind == "rejected" else None,
        "t": "receipt",
        "talks": b64e(talks),
        "time": T0 + job.index,
        "v": VERSION,
    }
    return canonical(sign_record(keys.signing, crypto.CTX_RECEIPT, body))


def _sign_drafts(
    jobs: list[DraftJob], talks: bytes, parents: dict[int, bytes]
) -> list[tuple[int, bytes]]:
    return [
        (j.index, sign_draft(j, talks, None if j.parent is None else parents[j.parent]))
        for j in jobs
    ]


def _sign_receipts(
    jobs: list[ReceiptJob], talks: bytes, leaves: dict[int, bytes]
) -> list[tuple[int, bytes]]:
    return [(j.index, sign_receipt(j, talks, leaves[j.draft_index])) for j in jobs]


@dataclass
class BenchLog:
    entries: list[bytes]
    talks: bytes
    checkpoints: list[bytes]
    drafts: int
    receipts: int


def _split(items: Sequence[object], parts: int) -> list[list[object]]:
    size = max(1, -(-len(items) // (parts * 8)))
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def build_log(n: int, processes: int = os.cpu_count() or 1) -> BenchLog:
    """A valid log of about ``n`` entries (at least the roster prefix)."""
    log_key = crypto.SigningKey(_seed("log"))
    mediator = _keys("mediator")
    genesis = found(
        mediator_keys=mediator,
        mediator="mediator",
        mediator_name="Mediator",
        origin=ORIGIN,
        title="Benchmark talks",
        log_key=log_key.public_bytes(),
        witness=WitnessPolicy(quorum=3),
        time=T0,
    )
    talks = genesis.talks_id
    roster = Roster(genesis)
    entries: list[bytes] = [genesis.raw]

    def change(author: str, op: str, args: ChangeArgs, on: Roster) -> bytes:
        rc = make_change(author=_keys(author), roster=on, op=op, args=args, time=T0)
        on.apply(rc)
        return rc.raw

    def member_args(name: str, delegation: str | None = None) -> ChangeArgs:
        return ChangeArgs(
            delegation=delegation,
            member=name,
            member_name=name.title(),
            devices=(_keys(name).public,),
        )

    for d in DELEGATIONS:
        head = f"{d}-head"
        args = member_args(head, d)
        args = ChangeArgs(
            delegation=d, name=d.title(), member=head, member_name=head, devices=args.devices
        )
        entries.append(change("mediator", "delegation.create", args, roster))
        for i in range(MEMBERS_PER_DELEGATION):
            entries.append(change(head, "member.enrol", member_args(f"{d}-{i}", d), roster))
    staff = ChangeArgs(
        member="clerk", member_name="Clerk", role="staff", devices=(_keys("clerk").public,)
    )
    entries.append(change("mediator", "staff.enrol", staff, roster))
    for ch, (dels, mems, _) in CHANNELS.items():
        args = ChangeArgs(
            channel=ch,
            name=ch,
            kind="plenary" if ch == "plenary" else "working_group",
            delegations=tuple(sorted(dels)),
            members=tuple(sorted(mems)),
        )
        entries.append(change("mediator", "channel.create", args, roster))

    # Half-way, alpha-0 enrols a second device: the roster head and the recipient sets
    # of every channel alpha is in change for the second half.
    later = roster.copy()
    second = _keys("alpha-0/laptop")
    mid_change = change(
        "alpha-head",
        "device.add",
        ChangeArgs(member="alpha-0", devices=(second.public,)),
        later,
    )
    device_name = {mediator.device_id: "mediator"}
    for m in later.members.values():
        for dev_id in m.devices:
            device_name[dev_id] = m.id
    device_name[second.device_id] = "alpha-0/laptop"

    def view(r: Roster) -> dict[str, tuple[tuple[bytes, ...], list[str]]]:
        out: dict[str, tuple[tuple[bytes, ...], list[str]]] = {}
        for ch in CHANNELS:
            devs = tuple(r.channel_devices(ch))
            out[ch] = (devs, [device_name[DeviceId(d)] for d in devs])
        return out

    views = [view(roster), view(later)]
    heads = [roster.head, later.head]
    mix = [ch for ch, (_, _, w) in CHANNELS.items() for _ in range(w)]

    drafts: list[DraftJob] = []
    receipts: list[ReceiptJob] = []
    counters: dict[str, int] = {}
    last_v1: dict[str, DraftJob] = {}
    index = len(entries)
    mid_index = max(index, n // 2)
    mid_at: int | None = None
    k = 0
    while index < n or mid_at is None:
        if mid_at is None and index >= mid_index:
            mid_at = index
            index += 1
            continue
        phase = 0 if mid_at is None else 1
        ch = mix[k % len(mix)]
        devs, names = views[phase][ch]
        sender = names[k % len(names)]
        counters[sender] = counters.get(sender, 0) + 1
        prev = last_v1.get(ch)
        if prev is not None and prev.roster == heads[phase]:
            job = DraftJob(index, sender, ch, counters[sender], 2, prev.draft, prev.index,
                           heads[phase], devs)  # fmt: skip
            del last_v1[ch]
        else:
            job = DraftJob(index, sender, ch, counters[sender], 1, _h("draft", index)[:16],
                           None, heads[phase], devs)  # fmt: skip
            last_v1[ch] = job
        drafts.append(job)
        index += 1
        received = set()
        for j, name in enumerate(names):
            if name == sender or (k % 10 == 3 and j == 0):
                continue  # the sender's own device; now and then a missing receipt
            kind = "rejected" if k % 50 == 7 and j == 1 else "received"
            receipts.append(ReceiptJob(index, name, job.index, kind))
            received.add(name if kind == "received" else "")
            index += 1
        if "mediator" in received:
            receipts.append(ReceiptJob(index, "mediator", job.index, "acknowledged"))
            index += 1
        k += 1

    total = index
    out: list[bytes | None] = [None] * total
    for i, e in enumerate(entries):
        out[i] = e
    out[mid_at] = mid_change
    leaves: dict[int, bytes] = {}
    with ProcessPoolExecutor(max_workers=processes) as pool:
        for phase_jobs in (
            [d for d in drafts if d.version == 1],
            [d for d in drafts if d.version > 1],
        ):
            futures = [
                pool.submit(_sign_drafts, part, talks, leaves)  # type: ignore[arg-type]
                for part in _split(phase_jobs, processes)
            ]
            for f in futures:
                for i, raw in f.result():
                    out[i] = raw
                    leaves[i] = merkle.leaf_hash(raw)
        futures = [
            pool.submit(_sign_receipts, part, talks, leaves)  # type: ignore[arg-type]
            for part in _split(receipts, processes)
        ]
        for f in futures:
            for i, raw in f.result():
                out[i] = raw
    log = [e for e in out if e is not None]
    if len(log) != total:
        raise RuntimeError("plan left holes in the log")

    # The server's checkpoints (half-way and at the end), cosigned by every witness.
    frontier = merkle.Frontier()
    roots: dict[int, bytes] = {}
    for i, raw in enumerate(log):
        frontier.append(merkle.leaf_hash(raw))
        if i + 1 in (total // 2, total):
            roots[i + 1] = frontier.root()
    witnesses = {"mediator": mediator, **{d: _keys(f"{d}-head") for d in DELEGATIONS}}
    notes = []
    for size, root in sorted(roots.items()):
        cp = cpt.Checkpoint(origin=ORIGIN, size=size, root=root)
        lines = [cpt.sign_checkpoint(cp, ORIGIN, log_key)]
        for who, keys in witnesses.items():
            name = witness_name(ORIGIN, who)
            lines.append(cpt.cosign(cp, name, keys.signing, timestamp=T0 // 1000))
        notes.append(cpt.format_note(cp.body(), lines))
    return BenchLog(
        entries=log, talks=talks, checkpoints=notes, drafts=len(drafts), receipts=len(receipts)
    )


# --- measurements ---------------------------------------------------------------------------


def raw_verify_rate(sample: bytes, seconds: float = 2.0) -> tuple[float, float]:
    """Ed25519 verifications of :func:`protocol.crypto.verify` on ``sample`` per second of
    wall time and per second of CPU time (the latter ignores other load on the host)."""
    key = crypto.SigningKey(_seed("raw"))
    sig = key.sign(crypto.CTX_DRAFT, sample)
    pk = key.public_bytes()
    done = 0
    start, cpu = time.perf_counter(), time.process_time()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(1000):
            crypto.verify(pk, crypto.CTX_DRAFT, sample, sig)
        done += 1000
    return done / elapsed, done / (time.process_time() - cpu)


def raw_verify_rate_distinct(sample: bytes, seconds: float = 2.0) -> float:
    """Like :func:`raw_verify_rate` (per CPU-second), but cycling through 4096 distinct
    signatures by 64 keys, as a log presents them, instead of one signature again and
    again (Ed25519 verification is variable-time: a repeated input runs measurably
    faster).  Informative only: the ratios above use :func:`raw_verify_rate`."""
    keys = [crypto.SigningKey(_seed(f"raw-{i}")) for i in range(64)]
    jobs = []
    for i in range(4096):
        key = keys[i % len(keys)]
        message = i.to_bytes(4, "big") + sample[4:]
        jobs.append((key.public_bytes(), message, key.sign(crypto.CTX_DRAFT, message)))
    done = 0
    start, cpu = time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        for pk, message, sig in jobs:
            crypto.verify(pk, crypto.CTX_DRAFT, message, sig)
        done += len(jobs)
    return done / (time.process_time() - cpu)


def own_signatures_rate(entries: Sequence[bytes], seconds: float = 2.0) -> float:
    """Like :func:`raw_verify_rate_distinct` (per CPU-second), over the first 4096 draft
    and receipt signatures of the log itself: the verifications the audit performs, each
    on the bytes its signature covers.  Informative only."""
    keys: dict[bytes, bytes] = {}
    jobs = []
    for raw in entries:
        hot = parse_hot_signed(raw)
        if hot is None:
            entry = parse_entry(raw)
            if isinstance(entry, Genesis):
                keys[entry.mediator_device.device_id] = entry.mediator_device.sign_pk
            elif isinstance(entry, RosterChange):
                keys.update((d.device_id, d.sign_pk) for d in entry.args.devices)
            continue
        record, offset = hot
        claim = signature_claim(record)
        if claim is None or claim[0] not in keys:
            continue
        message = raw[: offset - SIG_MEMBER_HEAD] + raw[offset + SIG_MEMBER_TAIL :]
        jobs.append((keys[claim[0]], claim[1], message, record.sig))
        if len(jobs) == 4096:
            break
    done = 0
    start, cpu = time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        for pk, context, message, sig in jobs:
            crypto.verify(pk, context, message, sig)
        done += len(jobs)
    return done / (time.process_time() - cpu)


def timed(fn: Callable[[], AuditReport]) -> tuple[AuditReport, float, float]:
    """Run ``fn``; return its report, the wall time and the CPU time of this process and
    its (finished) worker processes."""
    before = os.times()
    start = time.perf_counter()
    report = fn()
    wall = time.perf_counter() - start
    after = os.times()
    cpu = sum(after[:4]) - sum(before[:4])  # user, system, children user, children system
    return report, wall, cpu


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--profile", action="store_true", help="cProfile the workers=1 run")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    log = build_log(args.entries)
    built = time.perf_counter() - start
    print(
        f"built {len(log.entries)} entries ({log.drafts} drafts, {log.receipts} receipts) "
        f"in {built:.1f} s"
    )
    mean = sum(map(len, log.entries)) // len(log.entries)
    raw, raw_cpu = raw_verify_rate(b"x" * mean)  # a message of the mean entry size
    print(
        f"raw Ed25519 verify (protocol.crypto.verify): {raw:,.0f} /s per process "
        f"({raw_cpu:,.0f} per CPU-second)"
    )

    distinct_cpu = raw_verify_rate_distinct(b"x" * mean)
    print(
        f"  (informative: {distinct_cpu:,.0f} per CPU-second over 4096 distinct signatures, "
        f"{1e6 / distinct_cpu:.1f} us each)"
    )
    own_cpu = own_signatures_rate(log.entries)
    print(
        f"  (informative: {own_cpu:,.0f} per CPU-second over this log's own signatures, "
        f"{1e6 / own_cpu:.1f} us each)"
    )

    for workers in args.workers:
        profiler = cProfile.Profile() if args.profile and workers == 1 else None

        def run(w: int = workers, p: cProfile.Profile | None = profiler) -> AuditReport:
            if p is not None:
                p.enable()
            try:
                return audit_log(
                    log.entries, pinned_talks=log.talks, checkpoints=log.checkpoints, workers=w
                )
            finally:
                if p is not None:
                    p.disable()

        report, seconds, cpu = timed(run)
        if not report.ok:
            print(report.render_text(limit=5))
            return 1
        rate = len(log.entries) / seconds
        print(
            f"audit workers={workers}: {seconds:6.2f} s  {rate:10,.0f} entries/s  "
            f"ratio audit/(raw x {workers}) = {rate / (raw * workers):.2f}  |  "
            f"CPU {cpu / len(log.entries) * 1e6:.0f} us/entry of which Ed25519 "
            f"{1e6 / raw_cpu:.0f}: CPU ratio {len(log.entries) / cpu / raw_cpu:.2f} "
            f"(vs distinct signatures {len(log.entries) / cpu / distinct_cpu:.2f}, "
            f"vs the log's own {len(log.entries) / cpu / own_cpu:.2f})"
        )
        if profiler is not None:
            buf = io.StringIO()
            stats = pstats.Stats(profiler, stream=buf)
            stats.sort_stats("cumulative").print_stats(
                r"auditor[/\\]\w+\.py.*\((_parse_chunk|"
                r"_verify_chunk|absorb|summarise)\)"
            )
            stats.sort_stats("tottime").print_stats(20)
            print(buf.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
