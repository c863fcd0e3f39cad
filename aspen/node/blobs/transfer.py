"""Transfer sessions: one-time tokens for clients, the client data channel (uploads and
downloads), serving a local blob's bytes, and fetching a blob from other nodes (resumable).

Every transfer is bounded: a token expires, each read/write must progress within
`transfer_idle_s`, at most `max_concurrent_transfers` run at once, memory is a few chunks. Every
received blob is hashed while it arrives and published only if the hash matches.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import msgpack

from aspen.api import blob_messages as b
from aspen.blob.policy import STORE_TAG_PREFIX, user_tag
from aspen.blob.store import BlobInfo, HashMismatchError, PendingBlob, new_hasher
from aspen.node.blobs.core import BlobCore
from aspen.node.blobs.framing import (
    CHANNEL_ERRORS,
    LEN,
    OFFSET,
    TransferError,
    finish,
    read_frame,
    receive,
    write_frame,
)
from aspen.rpc.bulk import BLOB_PEER_CHANNEL, CHUNK, TOKEN_SIZE

__all__ = ["Token", "Transfers"]

log = logging.getLogger(__name__)

#: Called with a blob a client uploaded, once it is stored and tagged.
OnStored = Callable[[BlobInfo], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Token:
    upload: bool
    digest: str | None
    size: int
    tag: str | None
    expires: float


class _Partial:
    """A fetch's partly received blob, kept across providers so the next one resumes it."""

    def __init__(self) -> None:
        self.pending: PendingBlob | None = None

    def reset(self) -> None:
        if self.pending is not None:
            self.pending.abort()
            self.pending = None


class Transfers:
    def __init__(self, core: BlobCore, on_stored: OnStored) -> None:
        self.core = core
        self._on_stored = on_stored
        self._tokens: dict[bytes, Token] = {}
        #: One in-flight fetch per hash: concurrent readers of a missing blob share it.
        self._fetching: dict[str, asyncio.Future[BlobInfo]] = {}

    # --------------------------------------------------------------------------------- tokens --
    def issue(self, spec: Token) -> bytes:
        now = time.monotonic()
        for old in [t for t, s in self._tokens.items() if s.expires < now]:
            del self._tokens[old]
        token = secrets.token_bytes(TOKEN_SIZE)
        self._tokens[token] = Token(
            spec.upload, spec.digest, spec.size, spec.tag, now + self.core.config.token_ttl_s
        )
        return token

    def describe(self, token: bytes, size: int) -> b.BlobTransfer:
        """Where and how the client runs the transfer `token` allows."""
        return b.BlobTransfer(
            token=token, endpoint_id=self.core.endpoint_id, addrs=list(self.core.addrs), size_bytes=size
        )

    # ------------------------------------------------------------------------- client channel --
    async def authenticate_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> Callable[[], Awaitable[None]] | None:
        """The client channel's credential check, run by the listener under its pre-auth deadline:
        the one-time token (so a caller that sends nothing holds a pending slot, not a session)."""
        token = await reader.readexactly(TOKEN_SIZE)
        spec = self._tokens.pop(token, None)
        if spec is None or spec.expires < time.monotonic():
            refusal = {"ok": False, "error": "unknown or expired transfer token"}
            payload = msgpack.packb(refusal, use_bin_type=True)
            writer.write(LEN.pack(len(payload)) + payload)  # the listener flushes it, then closes
            return None

        async def session() -> None:
            await self.serve(self._client_session(reader, writer, spec), reader, writer, "client")

        return session

    async def serve(
        self,
        session: Awaitable[None],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        who: str,
    ) -> None:
        """Run one data-channel session, then make sure everything written reaches the peer: the
        listener aborts the connection when this returns, which would drop unsent bytes."""
        idle = self.core.config.transfer_idle_s
        try:
            await session
            await finish(reader, writer, idle)
        except (*CHANNEL_ERRORS, ValueError, TypeError) as err:
            # A peer that broke off, stalled or sent a malformed request: this connection ends.
            log.info("blob data channel ended", extra={"peer": who, "error": repr(err)})

    async def _client_session(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, spec: Token
    ) -> None:
        idle = self.core.config.transfer_idle_s
        if spec.upload:
            await self._receive_upload(reader, writer, spec)
        else:
            assert spec.digest is not None
            async with asyncio.timeout(idle):
                (offset,) = OFFSET.unpack(await reader.readexactly(OFFSET.size))
            await self.send_blob(writer, spec.digest, offset)

    async def _receive_upload(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, spec: Token
    ) -> None:
        idle = self.core.config.transfer_idle_s
        store = self.core.blobs
        async with self.core.slots:
            pending = await asyncio.to_thread(store.begin, spec.size)
            try:
                await receive(reader, pending, spec.size, idle)
                async with asyncio.timeout(idle):
                    claimed = (await reader.readexactly(32)).hex()
                tag = user_tag(spec.tag) if spec.tag else None
                existed = store.has(pending.hexdigest())
                info = await asyncio.to_thread(pending.commit, claimed, tag=tag, now=time.time())
            except HashMismatchError as err:
                await write_frame(writer, {"ok": False, "error": str(err)}, idle)
                return
            except BaseException:
                pending.abort()
                raise
        await asyncio.to_thread(store.set_tag, STORE_TAG_PREFIX + info.hash, info.hash, now=time.time())
        await self._on_stored(info)
        await write_frame(
            writer,
            {"ok": True, "hash": info.hash, "size": info.size_bytes, "was_new": not existed},
            idle,
        )

    # ---------------------------------------------------------------------------------- serve --
    async def send_blob(self, writer: asyncio.StreamWriter, digest: str, offset: int) -> None:
        """Stream a local blob from `offset`. A full read is hashed on the way; if the copy turns
        out corrupt it is quarantined (the receiver's own check rejects the bytes)."""
        idle = self.core.config.transfer_idle_s
        try:
            f = await asyncio.to_thread(self.core.blobs.open_read, digest)
        except FileNotFoundError:
            await write_frame(writer, {"ok": False, "error": f"blob not found: {digest}"}, idle)
            return
        async with self.core.slots:
            try:
                size = await asyncio.to_thread(lambda: f.seek(0, 2))
                if not 0 <= offset <= size:
                    await write_frame(writer, {"ok": False, "error": f"offset {offset} out of range"}, idle)
                    return
                await asyncio.to_thread(f.seek, offset)
                await write_frame(writer, {"ok": True, "size": size}, idle)
                hasher = new_hasher() if offset == 0 else None

                def read_chunk() -> bytes:  # in a worker thread, while the loop sends the last one
                    data = f.read(CHUNK)
                    if hasher is not None:
                        hasher.update(data)
                    return data

                chunk = await asyncio.to_thread(read_chunk)
                # Bounded by the file size: each turn sends one chunk of it.
                while chunk:
                    writer.write(chunk)
                    next_read = asyncio.ensure_future(asyncio.to_thread(read_chunk))
                    try:
                        async with asyncio.timeout(idle):
                            await writer.drain()
                    except BaseException:
                        next_read.cancel()
                        raise
                    chunk = await next_read
                if hasher is not None and hasher.hexdigest() != digest:
                    log.warning("served a corrupt blob copy; dropping it", extra={"hash": digest})
                    await self.core.quarantine(digest)
            finally:
                await asyncio.to_thread(f.close)

    # ---------------------------------------------------------------------------------- fetch --
    async def fetch(self, digest: str, providers: list[int], *, tag: str | None) -> BlobInfo:
        """Fetch `digest` from the first provider that has a good copy; one fetch per hash at a time."""
        running = self._fetching.get(digest)
        if running is not None:
            info = await asyncio.shield(running)
            if tag is not None:
                await asyncio.to_thread(self.core.blobs.set_tag, tag, digest, now=time.time())
            return info
        future: asyncio.Future[BlobInfo] = asyncio.get_running_loop().create_future()
        self._fetching[digest] = future
        try:
            info = await self._fetch_from(digest, providers, tag)
            future.set_result(info)
            return info
        except BaseException as err:
            future.set_exception(err if isinstance(err, Exception) else TransferError("cancelled"))
            future.exception()  # retrieved: waiters see it, nobody else must
            raise
        finally:
            del self._fetching[digest]

    async def _fetch_from(self, digest: str, providers: list[int], tag: str | None) -> BlobInfo:
        errors: list[str] = []
        partial = _Partial()
        async with self.core.slots:
            try:
                for provider in providers:
                    try:
                        await self._pull_bytes(provider, digest, partial)
                        pending, partial.pending = partial.pending, None
                        assert pending is not None
                        return await asyncio.to_thread(pending.commit, digest, tag=tag, now=time.time())
                    except HashMismatchError as err:
                        partial.reset()  # the bytes are wrong: start afresh elsewhere
                        errors.append(f"node {provider}: {err}")
                    except (TransferError, OSError, TimeoutError, asyncio.IncompleteReadError) as err:
                        # Keep what arrived: the next provider resumes at this offset.
                        errors.append(f"node {provider}: {err!r}")
            finally:
                partial.reset()
        raise TransferError(f"no provider delivered {digest}: {'; '.join(errors) or 'no providers'}")

    async def _pull_bytes(self, provider: int, digest: str, partial: _Partial) -> None:
        """Receive the rest of `digest` from `provider` into `partial.pending` (created on the first
        answer, kept on failure so that the next provider resumes at its size)."""
        idle = self.core.config.transfer_idle_s
        try:
            reader, writer = await self.core.transport.open_channel(provider, BLOB_PEER_CHANNEL)
        except (ConnectionError, OSError) as err:
            raise TransferError(f"cannot reach node {provider}: {err}") from None
        try:
            offset = partial.pending.size if partial.pending is not None else 0
            await write_frame(writer, {"op": "get", "hash": digest, "offset": offset}, idle)
            status = await read_frame(reader, idle)
            if not status.get("ok"):
                raise TransferError(str(status.get("error")))
            size = int(status["size"])
            if partial.pending is None:
                partial.pending = await asyncio.to_thread(self.core.blobs.begin, size)
            elif partial.pending.expected_size != size:
                raise HashMismatchError(
                    f"node {provider} reports size {size}, expected {partial.pending.expected_size}"
                )
            await receive(reader, partial.pending, size - partial.pending.size, idle)
        finally:
            writer.transport.abort()
