"""The client side of the bulk data channel: blob bytes over TLS 1.3 on TCP (docs/protocol.md §6).

Large blobs do not go through QUIC (one aioquic stream is far slower than TLS over TCP;
docs/performance.md). The control stays on the QUIC RPC, which hands out a one-time 32-byte token;
the bytes go over TLS/TCP to the same node's port number, on the listener that carries Raft, as
channel kind `BLOB_CLIENT_CHANNEL`::

    TCP + TLS 1.3; the client pins the server: certificate key == the node's endpoint id
    server -> client: 32-byte nonce (part of the member handshake; clients ignore it)
    client -> server: kind (1 byte) + token (32 bytes)
    upload:   client -> server: exactly size_bytes raw bytes, then the 32-byte BLAKE3 hash of them
              server -> client: [u32 len][msgpack {"ok", "error", "hash", "size", "was_new"}]
    download: client -> server: [u64 offset]
              server -> client: [u32 len][msgpack {"ok", "error", "size"}], then bytes offset..size

Invariants: the transfer runs on a blocking socket in a worker thread (OpenSSL and the syscalls
release the GIL, which is much faster than asyncio's memory-BIO TLS); memory is bounded by one
chunk; every socket operation has a timeout; a download is hash-verified before it is reported
complete, and the caller decides where the bytes go (a file, renamed only once verified).
"""

from __future__ import annotations

import socket
import ssl
import struct
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO

import blake3
import msgpack
from cryptography import x509

from aspen.rpc.identity import endpoint_id_of_certificate

__all__ = [
    "BLOB_CLIENT_CHANNEL",
    "BLOB_PEER_CHANNEL",
    "CHUNK",
    "TOKEN_SIZE",
    "BulkError",
    "BulkTarget",
    "download",
    "read_status",
    "upload",
]

#: Channel kinds on the node's TLS/TCP listener (1 is Raft).
BLOB_PEER_CHANNEL = 3
BLOB_CLIENT_CHANNEL = 4
TOKEN_SIZE = 32
NONCE_SIZE = 32
CHUNK = 4 * 1024 * 1024
MAX_STATUS_FRAME = 64 * 1024
_LEN = struct.Struct(">I")
_OFFSET = struct.Struct(">Q")

Progress = Callable[[int], None]


class BulkError(Exception):
    """The data channel failed (connect, pin, I/O, or the node refused the transfer)."""


@dataclass(frozen=True, slots=True)
class BulkTarget:
    endpoint_id: str
    addrs: tuple[tuple[str, int], ...]
    token: bytes


def _client_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    # Self-signed node certificates: pinned by key below, not verified against a CA.
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _recv_exactly(sock: ssl.SSLSocket, n: int) -> bytes:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:])
        if k == 0:
            raise BulkError(f"connection closed after {got} of {n} bytes")
        got += k
    return bytes(buf)


def read_status(sock: ssl.SSLSocket) -> dict[str, Any]:
    (length,) = _LEN.unpack(_recv_exactly(sock, _LEN.size))
    if length > MAX_STATUS_FRAME:
        raise BulkError(f"status frame of {length} bytes is too large")
    doc = msgpack.unpackb(_recv_exactly(sock, length), raw=False)
    if not isinstance(doc, dict):
        raise BulkError("malformed status frame")
    return doc


def _connect(target: BulkTarget, timeout: float) -> ssl.SSLSocket:
    ctx = _client_context()
    last: Exception | None = None
    for host, port in target.addrs:
        raw: socket.socket | None = None
        try:
            raw = socket.create_connection((host, port), timeout=timeout)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock = ctx.wrap_socket(raw, server_hostname=None)
            der = sock.getpeercert(binary_form=True)
            if not der:
                raise BulkError("node presented no certificate")
            got = endpoint_id_of_certificate(x509.load_der_x509_certificate(der))
            if got != target.endpoint_id:
                sock.close()
                raise BulkError(f"node key {got[:16]}… is not the pinned {target.endpoint_id[:16]}…")
            _recv_exactly(sock, NONCE_SIZE)
            sock.sendall(bytes((BLOB_CLIENT_CHANNEL,)) + target.token)
            return sock
        except (OSError, BulkError) as err:
            if raw is not None:
                raw.close()
            last = err
    raise BulkError(f"cannot open the data channel at {list(target.addrs)}: {last}")


def upload(
    target: BulkTarget,
    source: BinaryIO,
    size: int,
    *,
    timeout: float,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Send `size` bytes read from `source`, then their BLAKE3 hash (computed while sending); returns
    the node's status document, after checking the node stored exactly what was read here.

    Two buffers alternate: a helper thread hashes one chunk while this thread sends it, then the
    next chunk is read into the other buffer (both OpenSSL and BLAKE3 release the GIL)."""
    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    try:
        with _connect(target, timeout) as sock, ThreadPoolExecutor(1, "aspen-bulk-hash") as pool:
            bufs = [bytearray(min(CHUNK, max(size, 1))) for _ in range(2)]
            hashing: Future[Any] | None = None
            sent, i = 0, 0
            while sent < size:
                view = memoryview(bufs[i])
                n = source.readinto(view[: min(len(view), size - sent)])  # type: ignore[attr-defined]
                if not n:
                    raise BulkError(f"source ended after {sent} of {size} bytes")
                if hashing is not None:
                    hashing.result()
                hashing = pool.submit(hasher.update, view[:n])
                sock.sendall(view[:n])
                sent += n
                i ^= 1
                if progress is not None:
                    progress(sent)
            if hashing is not None:
                hashing.result()
            digest = hasher.digest()
            sock.sendall(digest)
            status = read_status(sock)
    except OSError as err:
        raise BulkError(f"data channel failed: {err}") from err
    if status.get("ok") and status.get("hash") != digest.hex():
        raise BulkError(f"node stored {status.get('hash')}, but the bytes sent hash to {digest.hex()}")
    return status


def _fill(sock: ssl.SSLSocket, view: memoryview) -> int:
    """Receive until `view` is full; fewer bytes only if the connection ends."""
    got = 0
    while got < len(view):
        n = sock.recv_into(view[got:])
        if n == 0:
            break
        got += n
    return got


def download(
    target: BulkTarget,
    sink: Callable[[memoryview], None],
    *,
    offset: int,
    timeout: float,
    progress: Progress | None = None,
) -> int:
    """Receive the blob from `offset` to its end into `sink`; returns the blob's total size.
    Raises `BulkError` when the node refuses or the connection breaks (the caller may resume from
    the bytes `sink` got). `sink` runs on a helper thread, one chunk behind the receiving one."""
    try:
        with _connect(target, timeout) as sock, ThreadPoolExecutor(1, "aspen-bulk-sink") as pool:
            sock.sendall(_OFFSET.pack(offset))
            status = read_status(sock)
            if not status.get("ok"):
                raise BulkError(str(status.get("error") or "transfer refused"))
            size = int(status["size"])
            bufs = [bytearray(min(CHUNK, max(size - offset, 1))) for _ in range(2)]
            sinking: Future[Any] | None = None
            got, i = offset, 0
            try:
                while got < size:
                    view = memoryview(bufs[i])[: min(len(bufs[i]), size - got)]
                    n = _fill(sock, view)
                    if sinking is not None:
                        sinking.result()
                        sinking = None
                    if n:
                        sinking = pool.submit(sink, view[:n])
                    if n < len(view):
                        raise BulkError(f"connection closed at byte {got + n} of {size}")
                    got += n
                    i ^= 1
                    if progress is not None:
                        progress(got)
            finally:
                if sinking is not None:
                    sinking.result()  # the caller resumes after every byte handed to sink
            return size
    except OSError as err:
        raise BulkError(f"data channel failed: {err}") from err
