"""Parallel verification: the chunks of the log, parsed and verified by ``workers``
processes, handed to the replay in log order.

Ed25519 verification is most of the work, so it is spread over ``workers`` processes:
the main process and ``workers - 1`` pool processes.

* the log is cut into chunks of ``chunk_size`` entries (a power of two) aligned on
  multiples of it;
* the main process parses each chunk (:func:`client.auditor.chunks._parse_chunk`) and
  hands its signatures and leaves to a worker
  (:func:`client.auditor.chunks._verify_chunk`); when it was forked with the caller's
  list of entries, a worker receives only where the chunk starts in the copy it
  inherited (:func:`_share`, :func:`_verify_shared`).  Meanwhile the main process parses
  the next chunks (at most ``2 * workers`` are in flight), and verifies a chunk itself,
  with the same function, whenever the pool already has two chunks per process waiting;
* the main process replays the ledger in log order (:mod:`client.auditor.replay`),
  passing each verified key as ``verified_key``: the ledger skips its own Ed25519 check
  only if that key is exactly the roster's key for the signing device at that index, and
  checks everything else itself.  Roots at any size come from the full-chunk roots (a
  frontier of perfect subtrees at the chunk level) folded with one partial root
  (:mod:`client.auditor.checkpoints`).

With ``workers=1`` the same functions run in-process, so both paths share every line
that decides validity, and their reports are identical.

The log a forked pool inherits lives in this module's :data:`_SHARED`, set by the pool's
initializer :func:`_share` and read by :func:`_verify_shared`: both must stay here, with
the global they share, for the workers to find it.
"""

from __future__ import annotations

import itertools
import multiprocessing
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor

from client.auditor.chunks import _Check, _parse_chunk, _Parsed, _Verified, _verify_chunk
from client.auditor.replay import _Replay

DEFAULT_CHUNK = 2048


def _chunks(entries: Iterable[bytes], size: int) -> Iterator[tuple[int, list[bytes]]]:
    it = iter(entries)
    start = 0
    while True:
        chunk = list(itertools.islice(it, size))
        if not chunk:
            return
        yield start, chunk
        start += len(chunk)


def _pool_context() -> multiprocessing.context.BaseContext:
    """``fork`` (fast to start) only while this process has a single thread: forking a
    threaded process can deadlock a child on a lock some other thread held.  Otherwise
    ``forkserver`` where the platform has it, else ``spawn``."""
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


_Stage = tuple[int, list[_Parsed], list[_Check], _Verified]

_SHARED: Sequence[bytes] = ()
"""In a worker forked for one audit, the log it was forked with (see :func:`_pipeline`)."""


def _share(entries: Sequence[bytes]) -> None:
    """Worker initializer (``fork`` only: the list is inherited, not pickled)."""
    global _SHARED
    _SHARED = entries


def _verify_shared(
    start: int, length: int, checks: list[_Check], cuts: tuple[int, ...]
) -> _Verified:
    """:func:`_verify_chunk` on entries ``start .. start + length`` of the inherited log."""
    return _verify_chunk(_SHARED[start : start + length], checks, cuts)


def _pipeline(
    chunks: Iterator[tuple[int, list[bytes]]],
    replay: _Replay,
    workers: int,
    log: Sequence[bytes] | None = None,
) -> Iterator[_Stage]:
    """Parsed and verified chunks, in log order.

    ``workers`` processes verify: this one and ``workers - 1`` pool processes.  The main
    process parses each chunk and hands its signatures and leaves to the pool, unless
    the pool already has two chunks per process waiting: then it verifies that chunk
    itself (so no more processes run than ``workers``, none of them idle while there is
    work, and the chunks it keeps cost no pickling).  At most ``2 * workers`` chunks are
    in flight beyond the one being replayed.  With one worker everything runs in this
    process.

    ``log`` is the whole log when the caller gave a list: pool processes started by
    ``fork`` then read their chunks from the copy they inherited (only positions are
    sent), instead of receiving the bytes through a pipe.
    """
    if workers == 1:
        for start, chunk in chunks:
            parsed, checks = _parse_chunk(chunk, replay.keys)
            cuts = replay.checkpoints.cuts_in(start, len(chunk))
            yield start, parsed, checks, _verify_chunk(chunk, checks, cuts)
        return
    context = _pool_context()
    shared = False
    if log is not None and context.get_start_method() == "fork":
        shared = True
        pool = ProcessPoolExecutor(
            max_workers=workers - 1, mp_context=context, initializer=_share, initargs=(log,)
        )
    else:
        pool = ProcessPoolExecutor(max_workers=workers - 1, mp_context=context)
    with pool:
        inflight: deque[tuple[int, list[_Parsed], list[_Check], Future[_Verified] | _Verified]]
        inflight = deque()
        for start, chunk in chunks:
            parsed, checks = _parse_chunk(chunk, replay.keys)
            cuts = replay.checkpoints.cuts_in(start, len(chunk))
            waiting = sum(1 for *_, v in inflight if isinstance(v, Future) and not v.done())
            verified: Future[_Verified] | _Verified
            if waiting >= 2 * (workers - 1):
                verified = _verify_chunk(chunk, checks, cuts)
            elif shared:
                verified = pool.submit(_verify_shared, start, len(chunk), checks, cuts)
            else:
                verified = pool.submit(_verify_chunk, chunk, checks, cuts)
            inflight.append((start, parsed, checks, verified))
            while inflight and (
                len(inflight) > 2 * workers
                or not isinstance(inflight[0][3], Future)
                or inflight[0][3].done()
            ):
                yield _landed(inflight.popleft())
        while inflight:
            yield _landed(inflight.popleft())


def _landed(
    stage: tuple[int, list[_Parsed], list[_Check], Future[_Verified] | _Verified],
) -> _Stage:
    start, parsed, checks, verified = stage
    return start, parsed, checks, verified.result() if isinstance(verified, Future) else verified
