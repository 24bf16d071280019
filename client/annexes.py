"""Sending and saving annexes: large files as authenticated streams (:mod:`protocol.annex`).

Sending (:meth:`Annexes.send`): declare the upload, encrypt the file one chunk at a
time while reading it, send each chunk and wait for the server's acknowledgement (it is
durable then), finish with the annex hash, log the draft whose encrypted payload holds
the manifest, and attach the annex to that draft.  At no point is more than one chunk
in memory.

When the connection fails mid-upload, the upload resumes (up to ``RESUME_ATTEMPTS``
times): the client asks which chunks the server holds, re-encrypts the file from the
start (the stream is deterministic given its key and header), checks that every chunk
the server already holds hashes as its own does, and sends only the rest.  A file that
changed in between is refused (``annex_changed``) rather than spliced.

Saving (:meth:`Annexes.save`): open the draft as usual (so the manifest has passed
every check a draft passes), fetch chunk after chunk, decrypt and check each against
the manifest, write them to a temporary file beside the destination, and rename it
into place only when the stream ended on its final tag with the length, chunk count
and annex hash of the manifest.  Anything else deletes the partial file.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from client.core import ClientCore, Sent
from client.errors import NetworkError, ServerError, UsageError, VerificationError
from protocol import annex
from protocol.annex import AnnexOpener, AnnexSealer, Manifest
from protocol.encoding import b64d, b64e
from protocol.envelope import Payload
from protocol.errors import DecryptionError, ProtocolError

RESUME_ATTEMPTS = 5
WINDOW = 3
"""Chunks in flight at once, each way: one chunk's fsync on the server overlaps the next
one's transfer.  Memory stays bounded by ``WINDOW`` chunks, whatever the file's size."""
PENDING_WAIT = 0.2
PENDING_ATTEMPTS = 50
CHUNK_TIMEOUT = 120.0

SendDraft = Callable[..., Awaitable[Sent]]
ReadPayload = Callable[[int], Awaitable[Payload]]


class Annexes:
    """Upload, send and save annexes over a :class:`ClientCore`."""

    def __init__(
        self,
        core: ClientCore,
        *,
        send_draft: SendDraft,
        read_payload: ReadPayload,
        chunk_size: int = annex.CHUNK_SIZE,
    ) -> None:
        self.core = core
        self._send_draft = send_draft
        self._read_payload = read_payload
        self.chunk_size = chunk_size
        self.resumed = 0
        """Chunks skipped on resume because the server held them (tests, progress)."""

    # -- sending ------------------------------------------------------------------------

    async def upload(self, path: Path) -> tuple[str, Manifest]:
        """Upload ``path`` as a new annex; return the upload id and its manifest."""
        core = self.core
        length = path.stat().st_size
        chunks = annex.chunk_count(length, self.chunk_size)
        created = await core.transport().post(
            "/v1/annexes", {"chunk": self.chunk_size, "chunks": chunks, "length": length}
        )
        upload_id = created.get("id") if isinstance(created, dict) else None
        if not isinstance(upload_id, str):
            raise NetworkError("the server sent an invalid annex upload answer")
        sealer = AnnexSealer(length=length, rng=core.rng, chunk_size=self.chunk_size)
        key, header = sealer.key, sealer.header
        for attempt in range(RESUME_ATTEMPTS + 1):
            held: dict[int, bytes] = {}
            if attempt:
                held = await self._held(upload_id)
                sealer = AnnexSealer(
                    length=length,
                    rng=core.rng,
                    chunk_size=self.chunk_size,
                    key=key,
                    header=header,
                )
            try:
                await self._send_chunks(path, upload_id, sealer, held)
                break
            except NetworkError:
                if attempt == RESUME_ATTEMPTS:
                    raise
                await asyncio.sleep(min(0.1 * 2**attempt, 2.0))
        manifest = sealer.manifest()
        await core.transport().post(
            f"/v1/annexes/{upload_id}/finish", {"hash": b64e(manifest.hash)}
        )
        return upload_id, manifest

    async def _held(self, upload_id: str) -> dict[int, bytes]:
        status = await self.core.transport().get(f"/v1/annexes/{upload_id}")
        hashes = status.get("hashes") if isinstance(status, dict) else None
        if not isinstance(hashes, dict):
            raise NetworkError("the server sent an invalid annex status")
        try:
            return {
                int(index): b64d(digest, what="chunk hash")
                for index, digest in hashes.items()
                if isinstance(digest, str) and index.isdigit()
            }
        except (ProtocolError, ValueError) as exc:
            raise NetworkError("the server sent an invalid annex status") from exc

    async def _send_chunks(
        self, path: Path, upload_id: str, sealer: AnnexSealer, held: dict[int, bytes]
    ) -> None:
        transport = self.core.transport()
        in_flight: set[asyncio.Task[Any]] = set()

        async def put(index: int, ciphertext: bytes) -> None:
            await transport.request(
                "PUT",
                f"/v1/annexes/{upload_id}/chunks/{index}",
                data=ciphertext,
                timeout=CHUNK_TIMEOUT,
            )

        try:
            with path.open("rb") as fh:
                plains = annex.read_chunks(fh, sealer.length, self.chunk_size)
                for index, plain in enumerate(plains):
                    ciphertext = sealer.seal(plain)
                    if index in held:
                        if annex.chunk_hash(ciphertext) != held[index]:
                            raise UsageError(
                                f"{path.name} changed while it was uploaded (chunk {index});"
                                " send it again",
                                code="annex_changed",
                            )
                        self.resumed += 1
                        continue
                    if len(in_flight) >= WINDOW:
                        done, in_flight = await asyncio.wait(
                            in_flight, return_when=asyncio.FIRST_COMPLETED
                        )
                        for task in done:
                            task.result()
                    in_flight.add(asyncio.create_task(put(index, ciphertext)))
            while in_flight:
                done, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
        except ProtocolError as exc:
            raise UsageError(
                f"{path.name}: {exc.detail}; send it again", code="annex_changed"
            ) from exc
        finally:
            for task in in_flight:
                task.cancel()
            if in_flight:
                await asyncio.gather(*in_flight, return_exceptions=True)

    async def send(
        self,
        channel: str,
        path: Path,
        *,
        title: str,
        media_type: str = "application/octet-stream",
        draft_id: bytes | None = None,
        parents: Sequence[bytes] = (),
    ) -> tuple[Sent, Manifest]:
        """Upload ``path`` and log a draft carrying it as an annex."""
        upload_id, manifest = await self.upload(path)
        payload = Payload(title=title, file_name=path.name, media_type=media_type, annex=manifest)
        sent = await self._send_draft(channel, payload, draft_id=draft_id, parents=parents)
        await self.core.transport().post(f"/v1/annexes/{upload_id}/attach", {"index": sent.index})
        return sent, manifest

    # -- saving -------------------------------------------------------------------------

    async def save(self, index: int, dest: Path) -> Manifest:
        """Fetch, check and decrypt the annex of the draft at ``index`` into ``dest``."""
        payload = await self._read_payload(index)
        if payload.annex is None:
            raise UsageError(f"draft {index} has no annex")
        manifest = payload.annex
        opener = AnnexOpener(manifest)
        tmp = dest.with_name(f".{dest.name}.part")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                # Fetch up to WINDOW chunks ahead; decrypt and write strictly in order.
                ahead: dict[int, asyncio.Task[bytes]] = {}
                try:
                    for chunk in range(manifest.chunks):
                        for nxt in range(chunk, min(chunk + WINDOW, manifest.chunks)):
                            if nxt not in ahead:
                                ahead[nxt] = asyncio.create_task(self._chunk(index, nxt))
                        data = await ahead.pop(chunk)
                        fh.write(opener.open(data))
                finally:
                    for task in ahead.values():
                        task.cancel()
                    if ahead:
                        await asyncio.gather(*ahead.values(), return_exceptions=True)
                opener.finish()
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, dest)
        except DecryptionError as exc:
            tmp.unlink(missing_ok=True)
            raise VerificationError(
                f"the annex of draft {index} failed its checks ({exc.detail}); nothing was saved",
                code="annex_tampered",
            ) from exc
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return manifest

    async def _chunk(self, index: int, chunk: int) -> bytes:
        transport = self.core.transport()
        for _ in range(PENDING_ATTEMPTS):
            try:
                data = await transport.request(
                    "GET", f"/v1/drafts/{index}/annex/{chunk}", raw=True, timeout=CHUNK_TIMEOUT
                )
                return bytes(data)
            except ServerError as exc:
                if exc.code != "annex_pending":
                    raise
                await asyncio.sleep(PENDING_WAIT)
        raise NetworkError(f"the annex of draft {index} is still not available on the server")
