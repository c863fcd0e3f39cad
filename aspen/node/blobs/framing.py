"""The blob data channels' framing: length-prefixed msgpack control frames and bounded raw reads.

Both channels (client ↔ node, node ↔ node) use it: a control frame is ``[u32 len][msgpack map]``
of at most `MAX_CONTROL_FRAME` bytes, and blob bytes follow as a raw stream whose length the
control frame announced. Every read and drain has a deadline on *progress* (`idle`).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from typing import Any

import msgpack

from aspen.blob.store import PendingBlob
from aspen.rpc.bulk import CHUNK

__all__ = [
    "CHANNEL_ERRORS",
    "LEN",
    "MAX_CONTROL_FRAME",
    "OFFSET",
    "TransferError",
    "finish",
    "read_frame",
    "receive",
    "write_frame",
]

LEN = struct.Struct(">I")
OFFSET = struct.Struct(">Q")
MAX_CONTROL_FRAME = 64 * 1024


class TransferError(Exception):
    """A node-to-node transfer failed (the next provider may still succeed)."""


#: How a data channel ends early: the peer broke off, stalled, or refused.
CHANNEL_ERRORS = (TransferError, asyncio.IncompleteReadError, OSError, TimeoutError)


async def write_frame(writer: asyncio.StreamWriter, doc: dict[str, Any], idle: float) -> None:
    payload = msgpack.packb(doc, use_bin_type=True)
    writer.write(LEN.pack(len(payload)) + payload)
    async with asyncio.timeout(idle):
        await writer.drain()


async def read_frame(reader: asyncio.StreamReader, idle: float) -> dict[str, Any]:
    async with asyncio.timeout(idle):
        (length,) = LEN.unpack(await reader.readexactly(LEN.size))
        if length > MAX_CONTROL_FRAME:
            raise TransferError(f"control frame of {length} bytes is too large")
        doc = msgpack.unpackb(await reader.readexactly(length), raw=False)
    if not isinstance(doc, dict):
        raise TransferError("malformed control frame")
    return doc


async def finish(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, idle: float) -> None:
    """Flush everything written (drain with no high-water mark waits for an empty buffer), then
    wait until the peer, which has read all it expects, closes its side."""
    writer.transport.set_write_buffer_limits(high=0)
    async with asyncio.timeout(idle):
        await writer.drain()
    with contextlib.suppress(OSError, TimeoutError, asyncio.IncompleteReadError):
        async with asyncio.timeout(idle):
            await reader.read(1)


async def receive(reader: asyncio.StreamReader, pending: PendingBlob, nbytes: int, idle: float) -> None:
    """Read `nbytes` into `pending`: hashing and disk writes run in a worker thread while the next
    chunk is read (at most two chunks in memory)."""
    writing: asyncio.Future[None] | None = None
    remaining = nbytes
    try:
        # Bounded by nbytes: every turn consumes at least one byte or raises.
        while remaining > 0:
            async with asyncio.timeout(idle):
                chunk = await reader.read(min(CHUNK, remaining))
            if not chunk:
                raise asyncio.IncompleteReadError(b"", remaining)
            remaining -= len(chunk)
            if writing is not None:
                await writing
            writing = asyncio.ensure_future(asyncio.to_thread(pending.write, chunk))
        if writing is not None:
            await writing
            writing = None
    finally:
        if writing is not None:
            writing.cancel()
            with contextlib.suppress(BaseException):
                await writing
