"""Witnessing: push every new checkpoint to the log's witnesses and keep their cosignatures.

Theory of operation
-------------------
1. **Targets.**  A witness is contacted when the log trusts its name and key
   (``Roster.witnesses()``: the mediator, the delegation heads, the genesis ``external``
   witnesses) *and* the ``witness_urls`` setting gives it a URL.  URLs are operational
   configuration; keys only ever come from the log.
2. **One worker per witness.**  The checkpointer calls :meth:`Witnessing.publish` with
   every checkpoint it publishes; that only wakes the workers.  Each worker posts the
   latest checkpoint to its witness (c2sp.org/tlog-witness ``add-checkpoint``), one
   request at a time and bounded by ``witness_timeout``, so a slow or dead witness
   delays only itself, never the sequencer, the checkpointer or another witness.
   Checkpoints published while a request is in flight are coalesced into the next one.
3. **Old size.**  ``old`` is the size the witness last cosigned as far as this server
   knows (0 when unknown).  A 409 answer carries the witness's real size: the worker
   fetches the consistency proof from that size and retries once.
4. **Cosignatures.**  Each returned line goes through :meth:`LogService.cosign`, the
   path ``POST /v1/log/cosignatures`` takes: it is verified with the roster's key for
   that witness and stored, so ``GET /v1/log/checkpoint`` serves it.
5. **Freshness.**  A worker with nothing new to push re-submits the latest checkpoint
   (``old`` equal to its size) every ``witness_refresh`` seconds: the witness answers
   with a fresh timestamp.
6. **Start-up.**  Before the server accepts writes, every witness is asked for the size
   it last cosigned (the current checkpoint with ``old`` = its size: a 409 carries the
   witness's size, a 200 means it agrees).  A witness holding a *larger* tree than the
   store, or refusing the stored checkpoint as a fork (422), means the store lost or
   rewrote acknowledged entries: the server stays read-only and says so in one line.
   An unreachable witness only earns a warning.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import aiohttp

from protocol.checkpoint import MAX_SIGNATURES, NoteSignature
from protocol.errors import ProtocolError
from server.highwater import Rollback, behind, diverged
from server.services.checkpoints import Checkpointer
from server.services.log import LogService
from server.services.metrics import Metrics
from server.services.state import LogState
from server.storage.log import CheckpointRow

log = logging.getLogger("docket.witnessing")

SIZE_CONTENT_TYPE = "text/x.tlog.size"
MAX_ANSWER = 64 * 1024
"""Largest witness answer read (a few signature lines are expected)."""
WARN_EVERY = 60.0
"""A witness failing the same way is logged at most this often."""
_SIZE_RE = re.compile(rb"(0|[1-9][0-9]{0,18})\n")


@dataclass(slots=True, kw_only=True)
class _Answer:
    status: int
    content_type: str
    body: bytes


@dataclass(slots=True, kw_only=True)
class _Target:
    """What this server knows about one witness."""

    name: str
    url: str
    size: int | None = None
    """The size this witness last cosigned, as far as we know (``None``: unknown)."""
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    warned: tuple[str, float] = ("", float("-inf"))


class WitnessFailure(Exception):
    """One add-checkpoint round that did not yield a cosignature; ``reason`` is a metric
    label (``timeout``, ``unreachable``, ``http_422``, ``ahead``, ``bad_cosignature``…)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def request_body(old: int, proof: list[bytes], note: bytes) -> bytes:
    """An add-checkpoint body: ``old N``, the proof lines, an empty line, the note."""
    lines = [b"old %d" % old, *(base64.b64encode(h) for h in proof)]
    return b"".join(line + b"\n" for line in lines) + b"\n" + note


def parse_size(answer: _Answer) -> int:
    """The witness's size from a 409 answer (``text/x.tlog.size``)."""
    match = _SIZE_RE.fullmatch(answer.body)
    if answer.content_type != SIZE_CONTENT_TYPE or match is None:
        raise WitnessFailure("bad_answer", "409 without a text/x.tlog.size body")
    return int(match.group(1))


class Witnessing:
    """Collects cosignatures from the configured witnesses (see the module docstring)."""

    def __init__(
        self,
        *,
        state: LogState,
        log_service: LogService,
        checkpointer: Checkpointer,
        metrics: Metrics,
        urls: Mapping[str, str],
        refresh: float,
        timeout: float,
    ) -> None:
        self._state = state
        self._log = log_service
        self._checkpointer = checkpointer
        self._metrics = metrics
        self._urls = dict(urls)
        self._refresh = refresh
        self._timeout = timeout
        self._targets: dict[str, _Target] = {}
        self._session: aiohttp.ClientSession | None = None
        self._closing = False

    # -- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        """Create the HTTP client (keep-alive connections to every witness)."""
        if self._urls:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                connector=aiohttp.TCPConnector(limit_per_host=2),
            )

    def start(self) -> None:
        """Start a worker for every current target and push the latest checkpoint."""
        latest = self._checkpointer.latest
        if latest is not None:
            self.publish(latest)

    async def close(self) -> None:
        """Stop the workers (an in-flight request is abandoned) and the HTTP client."""
        self._closing = True
        tasks = [t.task for t in self._targets.values() if t.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- targets ----------------------------------------------------------------------------

    def _trusted(self) -> dict[str, list[bytes]]:
        """Witness name -> keys, for the witnesses that are both trusted and configured."""
        ledger = self._state.ledger
        if ledger is None or self._session is None:
            return {}
        return {
            name: keys for name, keys in ledger.roster.witnesses().items() if name in self._urls
        }

    def _target(self, name: str) -> _Target:
        target = self._targets.get(name)
        if target is None:
            target = self._targets[name] = _Target(name=name, url=self._urls[name])
        return target

    def publish(self, row: CheckpointRow) -> None:
        """A checkpoint was published: wake every witness's worker (never blocks)."""
        if self._closing:
            return
        for name in self._trusted():
            target = self._target(name)
            if target.task is None or target.task.done():
                target.task = asyncio.get_running_loop().create_task(
                    self._worker(target), name=f"docket-witness-{name}"
                )
            target.wake.set()

    # -- the worker ---------------------------------------------------------------------------

    async def _worker(self, target: _Target) -> None:
        while not self._closing:
            try:
                async with asyncio.timeout(self._refresh):
                    await target.wake.wait()
            except TimeoutError:
                pass  # 5. quiet: re-submit for a fresh timestamp
            target.wake.clear()
            if target.name not in self._trusted():
                return  # no longer a witness of these talks
            row = self._checkpointer.latest
            if row is None or self._state.read_only is not None:
                continue
            try:
                await self.push(target, row)
            except WitnessFailure as exc:
                self._warn(target, exc)
            except Exception:
                log.exception("witness %s: unexpected error", target.name)

    def _warn(self, target: _Target, exc: WitnessFailure) -> None:
        reason, last = target.warned
        now = time.monotonic()
        if reason != exc.reason or now - last >= WARN_EVERY:
            target.warned = (exc.reason, now)
            level = logging.ERROR if exc.reason in ("ahead", "http_422") else logging.WARNING
            log.log(level, "witness %s: %s", target.name, exc.detail)

    async def push(self, target: _Target, row: CheckpointRow) -> int:
        """Submit ``row`` to ``target`` and store its cosignature; the number stored.

        Raises :class:`WitnessFailure`.
        """
        old = target.size if target.size is not None and target.size <= row.size else 0
        for attempt in range(2):
            proof = await self._log.consistency(old, row.size) if 0 < old < row.size else []
            answer = await self._post(target, request_body(old, proof, row.note))
            if answer.status == 409:
                size = parse_size(answer)
                target.size = size
                if size > row.size:
                    raise self._failed(
                        target,
                        "ahead",
                        f"has cosigned a tree of {size} entries, more than the {row.size} "
                        "of the latest checkpoint",
                    )
                if attempt == 0:
                    old = size
                    continue
            if answer.status != 200:
                raise self._failed(
                    target, f"http_{answer.status}", _describe(answer, old, row.size)
                )
            stored = await self._store(target, row, answer.body)
            target.size = row.size
            return stored
        raise self._failed(target, "http_409", "409 twice in a row")  # pragma: no cover

    def _failed(self, target: _Target, reason: str, detail: str) -> WitnessFailure:
        self._metrics.witness_failures[(target.name, reason)] += 1
        return WitnessFailure(reason, detail)

    async def _post(self, target: _Target, body: bytes) -> _Answer:
        session = self._session
        if session is None:
            raise WitnessFailure("closed", "the witness client is closed")
        start = time.monotonic()
        try:
            async with session.post(
                target.url + "/add-checkpoint",
                data=body,
                headers={"Content-Type": "text/plain; charset=utf-8"},
            ) as resp:
                raw = await resp.content.read(MAX_ANSWER + 1)
                answer = _Answer(status=resp.status, content_type=resp.content_type, body=raw)
        except TimeoutError:
            raise self._failed(target, "timeout", f"no answer within {self._timeout} s") from None
        except aiohttp.ClientError as exc:
            raise self._failed(target, "unreachable", f"unreachable: {exc!r}") from None
        finally:
            self._metrics.observe_witness_push(target.name, time.monotonic() - start)
        return answer

    async def _store(self, target: _Target, row: CheckpointRow, body: bytes) -> int:
        """Verify and store the cosignature lines by this witness's name; how many."""
        if len(body) > MAX_ANSWER:
            raise self._failed(target, "bad_answer", "answer too large")
        try:
            lines = body.decode("utf-8").splitlines(keepends=True)
        except UnicodeDecodeError:
            raise self._failed(target, "bad_answer", "answer is not UTF-8") from None
        stored = 0
        for line in lines[:MAX_SIGNATURES]:
            try:
                sig = NoteSignature.from_line(line)
                if sig.name != target.name:
                    continue  # spec: ignore cosignatures by unknown keys
                await self._log.cosign(row.size, sig.line())
            except ProtocolError as exc:
                raise self._failed(
                    target, "bad_cosignature", f"returned a cosignature that fails: {exc.detail}"
                ) from None
            stored += 1
        if not stored:
            raise self._failed(target, "bad_cosignature", "answered 200 without its cosignature")
        self._metrics.witness_cosignatures[target.name] += 1
        return stored

    # -- start-up -----------------------------------------------------------------------------

    async def check_at_startup(
        self, latest: CheckpointRow | None, store_size: int
    ) -> Rollback | None:
        """Ask every witness what it cosigned (module docstring, step 6); a reason to stay
        read-only, or ``None``."""
        if latest is None:
            return None
        targets = [self._target(name) for name in self._trusted()]
        problems = await asyncio.gather(*(self._check_one(t, latest, store_size) for t in targets))
        return next((p for p in problems if p is not None), None)

    async def _check_one(
        self, target: _Target, latest: CheckpointRow, store_size: int
    ) -> Rollback | None:
        body = request_body(latest.size, [], latest.note)
        try:
            answer = await self._post(target, body)
            if answer.status == 200:
                await self._store(target, latest, answer.body)
                target.size = latest.size
                return None
            if answer.status == 409:
                size = parse_size(answer)
                target.size = size
                if size > store_size:
                    return behind(f"witness {target.name}", size, store_size)
                return None
            if answer.status == 422:
                # The witness refuses the stored checkpoint as inconsistent with what it
                # cosigned: the store was rewritten or restored from another copy.
                return diverged(f"the checkpoint cosigned by witness {target.name}", latest.size)
            raise self._failed(
                target, f"http_{answer.status}", _describe(answer, latest.size, latest.size)
            )
        except WitnessFailure as exc:
            log.warning("witness %s: not checked at start-up: %s", target.name, exc.detail)
            return None


def _describe(answer: _Answer, old: int, size: int) -> str:
    text = answer.body[:200].decode("utf-8", errors="replace").strip()
    return f"add-checkpoint (old {old}, size {size}) answered {answer.status}: {text}"
