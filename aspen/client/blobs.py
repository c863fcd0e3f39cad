"""Blob operations of `AspenClient` (mixed into it): small blobs inline over QUIC, large ones over
the node's bulk data channel (`aspen.rpc.bulk`) with a one-time token from the RPC.

Transfers are retried within the request deadline: an upload from a re-readable source starts over
(the node keeps nothing partial); a download resumes at the byte where it broke, from whichever node
answers next (the bytes are content-addressed, so any holder serves the same ones) and is checked
against the hash before the destination file appears (written as `<dest>.part`, fsynced, renamed).
"""

from __future__ import annotations

import asyncio
import functools
import io
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO, TypeVar

import blake3

from aspen.api import blob_messages as b
from aspen.api import messages as m
from aspen.api.errors import ServiceUnavailableError
from aspen.blob.directio import SequentialWriter
from aspen.rpc.bulk import BulkError, BulkTarget, download, upload
from aspen.rpc.ticket import parse_host_port

__all__ = ["BLOB_IDEMPOTENT", "BlobOps", "BlobTransferError"]

R = TypeVar("R")
#: progress(done, total=...) in bytes.
Progress = Callable[..., None]

#: Blob requests a client may repeat after an ambiguous failure (content addressing makes adding the
#: same bytes twice harmless).
BLOB_IDEMPOTENT = frozenset(
    {
        "AddBlob",
        "StartBlobUpload",
        "GetBlob",
        "HasBlob",
        "GetBlobTicket",
        "ListBlobs",
        "ProtectBlob",
        "UnprotectBlob",
        "GetBlobStatus",
        "GetBlobReplicationStatus",
    }
)
TRANSFER_ATTEMPTS = 4


class BlobTransferError(ServiceUnavailableError):
    """A blob's bytes could not be moved (after retries), or arrived corrupt."""


def _target(transfer: b.BlobTransfer) -> BulkTarget:
    return BulkTarget(
        endpoint_id=transfer.endpoint_id,
        addrs=tuple(parse_host_port(a) for a in transfer.addrs),
        token=transfer.token,
    )


class _HashingSink:
    """Writes received chunks out and hashes them, remembering how many arrived (to resume)."""

    def __init__(self, write: Callable[[memoryview], object], rewind: Callable[[], None]) -> None:
        self._write = write
        self._rewind = rewind
        self.done = 0
        self._hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)

    def write(self, chunk: memoryview) -> None:
        self._write(chunk)
        self._hasher.update(chunk)
        self.done += len(chunk)

    def hexdigest(self) -> str:
        return str(self._hasher.hexdigest())

    def restart(self) -> None:
        self._rewind()
        self.done = 0
        self._hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)


def _rewind(out: BinaryIO) -> None:
    try:
        out.seek(0)
        out.truncate()
    except OSError as err:  # a pipe: what was written cannot be taken back
        raise BlobTransferError(f"received corrupt bytes on an unseekable output: {err}") from None


class BlobOps:
    """Requires `request(request)`, `_call(request, kind)` and `timeout` (provided by AspenClient)."""

    timeout: float

    async def request(self, request: m.Request, *, timeout: float | None = None) -> m.Response:
        raise NotImplementedError

    async def _call(self, request: m.Request, kind: type[R]) -> R:
        raise NotImplementedError

    # ------------------------------------------------------------------------------------ add --
    async def add_blob(
        self,
        data: bytes | None = None,
        *,
        path: Path | None = None,
        tag: str | None = None,
        progress: Progress | None = None,
    ) -> b.AddBlobResult:
        """Store `data` (or the file at `path`) on the contacted node, which then replicates it."""
        if (data is None) == (path is None):
            raise ValueError("give data or path, not both")
        if data is not None and len(data) <= b.BLOB_INLINE_THRESHOLD:
            return await self._call(b.AddBlob(data=data, tag=tag), b.AddBlobResult)
        if data is not None:
            return await self._upload(lambda: io.BytesIO(data), len(data), tag, progress)
        assert path is not None
        size = path.stat().st_size
        if size <= b.BLOB_INLINE_THRESHOLD:
            return await self._call(b.AddBlob(data=path.read_bytes(), tag=tag), b.AddBlobResult)
        return await self._upload(lambda: open(path, "rb"), size, tag, progress)

    async def _upload(
        self, opener: Callable[[], BinaryIO], size: int, tag: str | None, progress: Progress | None
    ) -> b.AddBlobResult:
        last: Exception | None = None
        for _ in range(TRANSFER_ATTEMPTS):
            ready = await self.request(b.StartBlobUpload(size_bytes=size, tag=tag))
            if isinstance(ready, b.AddBlobResult):  # refused (e.g. over the size limit)
                return ready
            if not isinstance(ready, b.BlobUploadReady):
                raise ServiceUnavailableError(f"unexpected response {ready.type} to StartBlobUpload")
            report = (lambda done: progress(done, size)) if progress is not None else None
            try:
                with opener() as source:
                    status = await asyncio.to_thread(
                        upload, _target(ready.transfer), source, size, timeout=self.timeout, progress=report
                    )
            except BulkError as err:
                last = err
                continue
            if not status.get("ok"):
                return b.AddBlobResult(is_success=False, error=str(status.get("error")))
            return b.AddBlobResult(
                is_success=True,
                hash=str(status["hash"]),
                size_bytes=int(status["size"]),
                was_new=bool(status.get("was_new", True)),
            )
        raise BlobTransferError(f"upload failed after {TRANSFER_ATTEMPTS} attempts: {last}")

    # ------------------------------------------------------------------------------------ get --
    async def get_blob(
        self, digest: str, *, dest: Path | None = None, progress: Progress | None = None
    ) -> b.GetBlobResult:
        """Fetch a blob. Small blobs come back in `data`. With `dest`, the bytes (any size) are
        written there, verified; without it a large blob's result has `is_streaming` and no data
        (use `dest`, or `read_blob_into`)."""
        res = await self._call(b.GetBlob(hash=digest), b.GetBlobResult)
        if not res.was_found or dest is None:
            return res
        if dest.exists() and not dest.is_file():
            # A device or pipe (e.g. /dev/null): write through; never rename over it.
            with open(dest, "wb") as out:
                await self._write_blob(digest, res, out.write, lambda: _rewind(out), progress)
            return res
        part = dest.with_name(dest.name + ".part")
        try:
            # Written past the page cache where possible (see `directio`): a large download then
            # runs at the disk's speed instead of the speed of filling fresh cache pages.
            writer = SequentialWriter(part, exclusive=False)
            try:
                await self._write_blob(digest, res, writer.write, writer.restart, progress)
                writer.finish()
            finally:
                writer.close()
            # Renamed only once complete and verified. Not fsynced: the user's copy is not the
            # store's (whose files are), and the fsync would cap downloads at the disk's write speed.
            os.replace(part, dest)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        return res

    async def _write_blob(
        self,
        digest: str,
        res: b.GetBlobResult,
        write: Callable[[memoryview], object],
        rewind: Callable[[], None],
        progress: Progress | None,
    ) -> None:
        if res.data is not None:
            write(memoryview(res.data))
        else:
            await self._read_into(digest, _HashingSink(write, rewind), res, progress)

    async def read_blob_into(
        self,
        digest: str,
        out: BinaryIO,
        *,
        first: b.GetBlobResult | None = None,
        progress: Progress | None = None,
    ) -> int:
        """Stream a blob into `out` (positioned at 0), verifying its hash; returns its size. A broken
        transfer resumes where it stopped; a corrupt one starts over (the node has dropped its bad
        copy by then and serves a good one)."""
        return await self._read_into(digest, _HashingSink(out.write, lambda: _rewind(out)), first, progress)

    async def _read_into(
        self, digest: str, sink: _HashingSink, first: b.GetBlobResult | None, progress: Progress | None
    ) -> int:
        res = first
        last: Exception | None = None
        for _ in range(TRANSFER_ATTEMPTS):
            if res is None:
                res = await self._call(b.GetBlob(hash=digest), b.GetBlobResult)
            if not res.was_found:
                raise BlobTransferError(f"blob {digest} is gone: {res.error}")
            try:
                if res.data is not None:
                    sink.write(memoryview(res.data)[sink.done :])
                else:
                    assert res.transfer is not None
                    report = functools.partial(progress, total=res.size_bytes) if progress else None
                    await asyncio.to_thread(
                        download,
                        _target(res.transfer),
                        sink.write,
                        offset=sink.done,
                        timeout=self.timeout,
                        progress=report,
                    )
            except BulkError as err:
                last, res = err, None
                continue
            if sink.hexdigest() == digest:
                return sink.done
            last = BlobTransferError(f"received bytes hash to {sink.hexdigest()}, not {digest}")
            res = None
            sink.restart()
        raise BlobTransferError(f"download of {digest} failed after {TRANSFER_ATTEMPTS} attempts: {last}")

    # ---------------------------------------------------------------------------------- other --
    async def has_blob(self, digest: str) -> b.HasBlobResult:
        return await self._call(b.HasBlob(hash=digest), b.HasBlobResult)

    async def list_blobs(
        self, *, limit: int = 100, continuation_token: str | None = None
    ) -> b.ListBlobsResult:
        return await self._call(
            b.ListBlobs(limit=limit, continuation_token=continuation_token), b.ListBlobsResult
        )

    async def protect_blob(self, digest: str, tag: str) -> b.ProtectBlobResult:
        return await self._call(b.ProtectBlob(hash=digest, tag=tag), b.ProtectBlobResult)

    async def unprotect_blob(self, tag: str) -> b.UnprotectBlobResult:
        return await self._call(b.UnprotectBlob(tag=tag), b.UnprotectBlobResult)

    async def delete_blob(self, digest: str, *, force: bool = False) -> b.DeleteBlobResult:
        return await self._call(b.DeleteBlob(hash=digest, is_force=force), b.DeleteBlobResult)

    async def blob_status(self, digest: str) -> b.GetBlobStatusResult:
        return await self._call(b.GetBlobStatus(hash=digest), b.GetBlobStatusResult)

    async def blob_ticket(self, digest: str) -> b.GetBlobTicketResult:
        return await self._call(b.GetBlobTicket(hash=digest), b.GetBlobTicketResult)

    async def download_blob(self, ticket: str, *, tag: str | None = None) -> b.DownloadBlobResult:
        return await self._call(b.DownloadBlob(ticket=ticket, tag=tag), b.DownloadBlobResult)

    async def download_blob_by_hash(self, digest: str, *, tag: str | None = None) -> b.DownloadBlobResult:
        return await self._call(b.DownloadBlobByHash(hash=digest, tag=tag), b.DownloadBlobResult)

    async def download_blob_by_provider(
        self, digest: str, provider: str, *, tag: str | None = None
    ) -> b.DownloadBlobResult:
        return await self._call(
            b.DownloadBlobByProvider(hash=digest, provider=provider, tag=tag), b.DownloadBlobResult
        )

    async def blob_replication_status(self, digest: str) -> b.GetBlobReplicationStatusResult:
        return await self._call(b.GetBlobReplicationStatus(hash=digest), b.GetBlobReplicationStatusResult)

    async def repair_blob(
        self, digest: str, *, targets: Sequence[int] = (), replication_factor: int = 0
    ) -> b.TriggerBlobReplicationResult:
        return await self._call(
            b.TriggerBlobReplication(
                hash=digest, target_nodes=list(targets), replication_factor=replication_factor
            ),
            b.TriggerBlobReplicationResult,
        )

    async def blob_repair_cycle(self) -> b.RunBlobRepairCycleResult:
        return await self._call(b.RunBlobRepairCycle(), b.RunBlobRepairCycleResult)
