"""Settings shared by the RPC server and client, and the wire-level constants.

Wire protocol (ALPN ``aspen-client``): the server admits a connection and sends
its challenge on a unidirectional stream (aspen.rpc.auth); the client opens one
bidirectional QUIC stream per request, writes the auth header, the request body
and FIN; the server writes the response frame and FIN.  Bodies are opaque bytes
to this layer.  A stream ended with RESET_STREAM carries one of the
``STREAM_ERR_*`` codes below; a connection the server closes carries a
``CONN_ERR_*`` code.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import socket
import ssl
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection

if TYPE_CHECKING:
    from aspen.rpc.identity import NodeIdentity

__all__ = [
    "ALPN",
    "CONN_ERR_AUTH_DEADLINE",
    "CONN_ERR_EVICTED",
    "CONN_ERR_PREAUTH_LIMIT",
    "CONN_ERR_SHUTDOWN",
    "CONN_ERR_TOO_MANY_CONNECTIONS",
    "MAX_MESSAGE",
    "REFUSED_CONNECTION_CODES",
    "STREAM_ERR_BUSY",
    "STREAM_ERR_CANCELLED",
    "STREAM_ERR_HANDLER",
    "STREAM_ERR_OVERSIZE",
    "STREAM_ERR_UNAUTHORIZED",
    "AdmissionLimits",
    "AspenQuicConfiguration",
]

logger = logging.getLogger(__name__)

ALPN = "aspen-client"
MAX_MESSAGE = 16 * 1024 * 1024
"""Largest request (and, by default, response) frame in bytes."""

# Application error codes (QUIC leaves their meaning to the application).
STREAM_ERR_OVERSIZE = 0x101
STREAM_ERR_BUSY = 0x102
STREAM_ERR_HANDLER = 0x103
STREAM_ERR_CANCELLED = 0x104
STREAM_ERR_UNAUTHORIZED = 0x105
CONN_ERR_SHUTDOWN = 0x110
CONN_ERR_TOO_MANY_CONNECTIONS = 0x111
CONN_ERR_AUTH_DEADLINE = 0x112
CONN_ERR_EVICTED = 0x113
CONN_ERR_PREAUTH_LIMIT = 0x114
#: The server closes a connection with one of these only while no request on it has been
#: authenticated, so no handler ever ran for it: every request sent on it may be retried anywhere.
REFUSED_CONNECTION_CODES = frozenset(
    {CONN_ERR_TOO_MANY_CONNECTIONS, CONN_ERR_AUTH_DEADLINE, CONN_ERR_EVICTED, CONN_ERR_PREAUTH_LIMIT}
)

# Measured: with the kernel default (~208 KiB) a burst of 256 responses on
# loopback overflows the receive queue and costs a retransmit round trip.
SOCKET_BUFFER_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class AdmissionLimits:
    """What a connection may cost the server before it has proved the cookie, and how connection
    slots are shared, so that nothing unauthenticated can starve authenticated clients.

    A connection is *unauthenticated* from its handshake until the first request header whose
    proof verifies (aspen.rpc.auth).  Until then it holds no handler, and the server closes it
    (with a `REFUSED_CONNECTION_CODES` code) when it misses `auth_deadline`, when it has sent more
    than `preauth_bytes` of stream data, or when the server evicts it, oldest first, to admit a new
    connection: unauthenticated connections never take the slots reserved for authenticated
    ones (`max_connections - max_unauthenticated`), and a new connection from an address at its
    unauthenticated quota replaces that address's oldest, so one source cannot lock others out
    by holding connections open.
    """

    #: Seconds from the handshake to the first authenticated request.
    auth_deadline: float = 5.0
    #: Unauthenticated connections at once, over all addresses (a quarter of the default 200).
    max_unauthenticated: int = 50
    #: Unauthenticated connections at once from one source address.
    max_unauthenticated_per_address: int = 16
    #: All connections from one source address. Clients share 127.0.0.1 on loopback, so this
    #: leaves room for many local processes.
    max_per_address: int = 64
    #: Stream bytes (including out-of-order bytes the QUIC stack holds) one connection may send
    #: before it authenticates; the header is 34 bytes, so a real client needs a few packets.
    preauth_bytes: int = 512 * 1024
    #: The same, summed over all unauthenticated connections.
    preauth_bytes_total: int = 16 * 1024 * 1024
    #: Connection flow-control window announced at the handshake, raised to the configured
    #: `max_data` once the connection authenticates: QUIC then refuses more than this per
    #: connection before the first proof arrives.
    preauth_max_data: int = 128 * 1024


@dataclass(frozen=True)
class AspenQuicConfiguration:
    """Tunables for one side of an Aspen QUIC connection.

    ``max_streams_bidi`` is the number of requests a client may have open on
    one connection at once; the server announces it and extra client streams
    queue inside the client's QUIC stack until earlier ones finish.
    """

    idle_timeout: float = 60.0
    max_datagram_size: int = 1350
    #: Datagram size on loopback, where the path MTU is 64 KiB and nothing fragments. aioquic's cost
    #: is mostly per packet (header protection, AEAD, ACK and loss bookkeeping), so fewer, larger
    #: packets raise the request rate (docs/performance.md has the figures).
    loopback_datagram_size: int = 16_000
    max_streams_bidi: int = 256
    # Flow-control windows: aioquic doubles them as data is consumed, so these
    # only set the starting point; larger starts avoid slow ramp-up on 10 MiB frames.
    max_data: int = 8 * 1024 * 1024
    max_stream_data: int = 2 * 1024 * 1024

    def for_peer(self, host: str) -> AspenQuicConfiguration:
        """These settings for a connection with `host`: larger datagrams when it is loopback."""
        if is_loopback_host(host) and self.loopback_datagram_size > self.max_datagram_size:
            return replace(self, max_datagram_size=self.loopback_datagram_size)
        return self

    def server(self, identity: NodeIdentity) -> QuicConfiguration:
        config = self._base(is_client=False)
        config.certificate = identity.certificate
        config.private_key = identity.private_key
        return config

    def client(self) -> QuicConfiguration:
        config = self._base(is_client=True)
        # No CA verification: the server's certificate is self-signed.  The
        # client pins the certificate's public key after the handshake instead
        # (see RpcConnection.connect), which is strictly stronger.
        config.verify_mode = ssl.CERT_NONE
        return config

    def _base(self, *, is_client: bool) -> QuicConfiguration:
        return QuicConfiguration(
            alpn_protocols=[ALPN],
            is_client=is_client,
            idle_timeout=self.idle_timeout,
            max_datagram_size=self.max_datagram_size,
            max_data=self.max_data,
            max_stream_data=self.max_stream_data,
        )

    def apply_stream_limit(self, quic: QuicConnection) -> None:
        """Raise the peer's concurrent bidirectional stream limit above aioquic's fixed 128.

        aioquic has no configuration knob for it; the initial limit is read from
        ``_local_max_streams_bidi`` when the transport parameters are serialized
        during the handshake, so this must run before the first datagram.
        """
        limit: Any = getattr(quic, "_local_max_streams_bidi", None)
        if limit is None or not hasattr(limit, "value") or not hasattr(limit, "sent"):
            logger.warning("aioquic internals changed; concurrent streams stay at the default limit")
            return
        limit.value = self.max_streams_bidi
        limit.sent = self.max_streams_bidi

    # The three helpers below reach into aioquic's connection-level flow control (`_local_max_data`,
    # a `Limit` with `value`, `sent` and `used`), for which it has no public API. If it changes they
    # do nothing: unauthenticated connections then get the full window, and the pre-auth byte caps
    # fall back to counting only the bytes delivered to us in order.

    def limit_preauth_window(self, quic: QuicConnection, window: int) -> None:
        """Announce a connection window of `window` bytes at the handshake (before the first datagram)."""
        limit: Any = getattr(quic, "_local_max_data", None)
        if limit is None or not hasattr(limit, "value") or not hasattr(limit, "sent"):
            logger.warning("aioquic internals changed; unauthenticated connections get the full window")
            return
        limit.value = min(limit.value, window)
        limit.sent = limit.value

    def restore_window(self, quic: QuicConnection) -> None:
        """Raise the connection window back to `max_data` (the next packet carries MAX_DATA)."""
        limit: Any = getattr(quic, "_local_max_data", None)
        if limit is not None and hasattr(limit, "value"):
            limit.value = max(limit.value, self.max_data)


def received_stream_bytes(quic: QuicConnection) -> int | None:
    """Stream bytes the peer has sent on `quic`, counting out-of-order bytes the stack still holds
    (aioquic's flow-control accounting), or None if that is not available."""
    limit: Any = getattr(quic, "_local_max_data", None)
    used = getattr(limit, "used", None)
    return used if isinstance(used, int) else None


@functools.lru_cache(maxsize=1024)
def is_loopback_host(host: str) -> bool:
    """True for 127.0.0.0/8 and ::1 (also IPv4-mapped); False for names and other addresses."""
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped.is_loopback
    return addr.is_loopback


def tune_socket(sock: Any) -> None:
    """Enlarge the UDP socket buffers; the kernel may cap them (net.core.rmem_max)."""
    for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER_BYTES)
        except OSError as exc:  # not fatal: only throughput suffers
            logger.debug("setsockopt(%s) failed: %s", opt, exc)
