"""QUIC RPC server: one request per bidirectional stream, handled by a caller-supplied coroutine.

The server knows nothing about message types, but it authenticates every request itself, before
it spends anything on it: it sends each admitted connection a challenge (aspen.rpc.auth), checks
the fixed 34-byte header at the start of each request stream against the connection's proof
(constant time), and only then buffers the body (up to :data:`~aspen.rpc.config.MAX_MESSAGE`
bytes) until the client's FIN, runs ``handler(body, peer)`` in its own task, and writes the
returned bytes followed by FIN.  A stream whose header is wrong is answered at once and the rest of
it dropped unread.  Everything a misbehaving or overloaded client can do is bounded: connections
per server and per source address, what a connection may cost before it authenticates
(`AdmissionLimits`), in-flight streams and buffered bytes per connection, request size, and idle
time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any

from aioquic.asyncio.protocol import QuicConnectionProtocol, QuicStreamHandler
from aioquic.asyncio.server import QuicServer
from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import NetworkAddress, QuicConnection

from aspen.rpc.acks import RESPONSE_ACK_DELAY, PiggybackAcks
from aspen.rpc.auth import (
    HEADER_BYTES,
    HeaderCheck,
    challenge_frame,
    check_header,
    connection_proof,
    new_nonce,
)
from aspen.rpc.config import (
    CONN_ERR_AUTH_DEADLINE,
    CONN_ERR_EVICTED,
    CONN_ERR_PREAUTH_LIMIT,
    CONN_ERR_SHUTDOWN,
    CONN_ERR_TOO_MANY_CONNECTIONS,
    MAX_MESSAGE,
    STREAM_ERR_BUSY,
    STREAM_ERR_CANCELLED,
    STREAM_ERR_HANDLER,
    STREAM_ERR_OVERSIZE,
    STREAM_ERR_UNAUTHORIZED,
    AdmissionLimits,
    AspenQuicConfiguration,
    is_loopback_host,
    received_stream_bytes,
    tune_socket,
)
from aspen.rpc.identity import NodeIdentity

__all__ = ["Handler", "HandlerResult", "PeerInfo", "RpcServer"]

logger = logging.getLogger(__name__)

HandlerResult = bytes | AsyncIterator[bytes]
Handler = Callable[[bytes, "PeerInfo"], Awaitable[HandlerResult]]

# Streaming responses pause while this many bytes are written but not yet
# acknowledged, so a slow client cannot make the server buffer a whole blob.
_STREAM_HIGH_WATER = 1024 * 1024


@dataclass(frozen=True)
class PeerInfo:
    """Who sent a request.

    ``connection_id`` is unique for the server's lifetime, so the layer above
    can key per-connection state on it (e.g. "this connection proved the
    cookie") and drop it in ``on_disconnect``.
    """

    connection_id: int
    remote_addr: tuple[str, int]


class _StreamGone(Exception):
    """The stream or connection went away while a response was being written."""


class _ServerConnection(PiggybackAcks):
    """One client connection; owns the per-stream request buffers."""

    def __init__(
        self,
        quic: QuicConnection,
        stream_handler: QuicStreamHandler | None = None,
        *,
        server: RpcServer,
    ) -> None:
        super().__init__(quic, stream_handler)
        server.config.apply_stream_limit(quic)
        server.config.limit_preauth_window(quic, server.limits.preauth_max_data)
        self._server = server
        self.peer: PeerInfo | None = None  # set once the handshake completes and we accept
        self.terminated = False
        #: True from the first request header whose proof verified; never reset.
        self.authenticated = False
        self.address = ""  # source host, set at admission (per-address accounting)
        self.proof = b""  # what this connection's request headers must carry
        self.preauth_bytes = 0  # stream bytes received while unauthenticated (server total's share)
        self._delivered = 0  # stream bytes delivered to us in order (fallback for preauth_bytes)
        self.deadline: asyncio.TimerHandle | None = None
        self._heads: dict[int, bytearray] = {}  # streams whose header is still arriving (< 34 bytes)
        self._buffers: dict[int, bytearray] = {}
        self._ignored: set[int] = set()  # rejected streams whose remaining request bytes we drop
        self._buffered_bytes = 0
        self._in_flight = 0  # streams buffering a request or running a handler
        self._progress: asyncio.Event | None = None

    # -- aioquic hooks -----------------------------------------------------

    def datagram_received(self, data: bytes | str, addr: NetworkAddress) -> None:
        super().datagram_received(data, addr)
        self._wake()
        if not self.authenticated and self.peer is not None and not self.terminated:
            self._server._account_preauth(self)

    def received_bytes(self) -> int:
        """Stream bytes received so far, out-of-order ones held by the QUIC stack included."""
        received = received_stream_bytes(self._quic)
        return self._delivered if received is None else max(received, self._delivered)

    def _process_events(self) -> None:
        # Runs after aioquic has processed a received datagram or a timer, before the transmit
        # that follows (so on timer passes too: `defer_ack` holds an ACK only once).
        super()._process_events()
        if self._in_flight and not self._buffers and not self._heads:
            # Every request received is whole and a handler owes each an answer, which will carry
            # the ACK: do not send it alone first. Not while a request is still arriving, whose
            # sender paces itself on our ACKs.
            self.defer_ack(RESPONSE_ACK_DELAY)

    def quic_event_received(self, event: events.QuicEvent) -> None:
        # Deliberately not calling super(): its StreamReader plumbing would keep
        # a second copy of every stream's data.
        if isinstance(event, events.StreamDataReceived):
            self._on_stream_data(event)
        elif isinstance(event, events.StreamReset):
            if self._heads.pop(event.stream_id, None) is not None:
                self._in_flight -= 1
            self._drop_stream(event.stream_id)
            self._ignored.discard(event.stream_id)
        elif isinstance(event, events.HandshakeCompleted):
            self._server._on_handshake(self)
        elif isinstance(event, events.ConnectionTerminated):
            self.terminated = True
            self._buffers.clear()
            self._heads.clear()
            self._buffered_bytes = 0
            self._wake()
            self._server._on_terminated(self)

    # -- request intake ----------------------------------------------------

    def _on_stream_data(self, event: events.StreamDataReceived) -> None:
        sid = event.stream_id
        self._delivered += len(event.data)
        if self.peer is None or sid % 4 != 0:
            # A refused connection, or not a client-initiated bidirectional
            # stream (unused by the protocol): drop the bytes.  Nothing valid is
            # lost: aioquic only installs the 1-RTT receive key on the client's
            # Finished, so HandshakeCompleted (which sets peer) precedes all
            # stream data.
            return
        if sid in self._ignored:
            if event.end_stream:
                self._ignored.discard(sid)
            return
        server = self._server
        data: bytes | memoryview = event.data
        buf = self._buffers.get(sid)
        if buf is None:
            # Authenticate before spending: hold at most the header's 34 bytes until the proof in
            # it has been checked, then buffer the body.
            head = self._heads.get(sid)
            if head is None:
                if self._in_flight >= server.max_streams_per_connection:
                    self._reject(sid, STREAM_ERR_BUSY, server.busy_response, event.end_stream)
                    return
                head = self._heads[sid] = bytearray()
                self._in_flight += 1
            view = memoryview(event.data)
            take = HEADER_BYTES - len(head)
            head += view[:take]
            data = view[take:]
            if len(head) < HEADER_BYTES:
                if event.end_stream:  # a request shorter than its header
                    del self._heads[sid]
                    self._in_flight -= 1
                    self._reject(sid, STREAM_ERR_UNAUTHORIZED, server.unauthorized_response, True)
                return
            del self._heads[sid]
            if check_header(self.proof, head) != HeaderCheck.OK:
                self._in_flight -= 1
                self._reject(sid, STREAM_ERR_UNAUTHORIZED, server.unauthorized_response, event.end_stream)
                return
            if not self.authenticated:
                server._on_authenticated(self)
            buf = self._buffers[sid] = bytearray()
        size = len(data)
        if len(buf) + size > MAX_MESSAGE:
            self._drop_stream(sid)
            self._reject(sid, STREAM_ERR_OVERSIZE, server.oversize_response, event.end_stream)
            return
        if self._buffered_bytes + size > server.max_buffered_bytes:
            self._drop_stream(sid)
            self._reject(sid, STREAM_ERR_BUSY, server.busy_response, event.end_stream)
            return
        buf += data
        self._buffered_bytes += size
        if event.end_stream:
            del self._buffers[sid]
            self._buffered_bytes -= len(buf)
            server._spawn(self._serve(sid, bytes(buf), self.peer))

    def send_challenge(self, nonce: bytes) -> None:
        sid = self._quic.get_next_available_stream_id(is_unidirectional=True)
        self._quic.send_stream_data(sid, challenge_frame(nonce), end_stream=True)
        self._transmit_soon()

    def _drop_stream(self, sid: int) -> None:
        buf = self._buffers.pop(sid, None)
        if buf is not None:
            self._buffered_bytes -= len(buf)
            self._in_flight -= 1

    def _reject(self, sid: int, code: int, response: bytes | None, request_complete: bool) -> None:
        try:
            if not request_complete:
                # Ask the client to stop sending the rest; until it does, drop it.
                self._ignored.add(sid)
                self._quic.stop_stream(sid, code)
            if response is not None:
                self._quic.send_stream_data(sid, response, end_stream=True)
            else:
                self._quic.reset_stream(sid, code)
        except (ValueError, RuntimeError) as exc:  # stream already finished or reset
            logger.debug("could not reject stream %d: %s", sid, exc)
        self._transmit_soon()

    # -- responses ---------------------------------------------------------

    async def _serve(self, sid: int, request: bytes, peer: PeerInfo) -> None:
        try:
            result = await self._server.handler(request, peer)
            if isinstance(result, bytes | bytearray | memoryview):
                self._write(sid, bytes(result), end_stream=True)
            else:
                await self._write_stream(sid, result)
        except _StreamGone:
            logger.debug("stream %d closed before its response was written", sid)
        except asyncio.CancelledError:
            self._reset(sid, STREAM_ERR_CANCELLED)
            raise
        except Exception:
            # The handler's bug must cost one request, not the server.
            logger.exception("RPC handler failed (connection %d, stream %d)", peer.connection_id, sid)
            self._reset(sid, STREAM_ERR_HANDLER)
        finally:
            self._in_flight -= 1

    async def _write_stream(self, sid: int, chunks: AsyncIterator[bytes]) -> None:
        try:
            async for chunk in chunks:
                self._write(sid, chunk, end_stream=False)
                await self._drain(sid)
            self._write(sid, b"", end_stream=True)
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()

    def _write(self, sid: int, data: bytes, *, end_stream: bool) -> None:
        if self.terminated:
            raise _StreamGone
        try:
            self._quic.send_stream_data(sid, data, end_stream=end_stream)
        except (ValueError, RuntimeError) as exc:  # client reset / stopped the stream
            raise _StreamGone from exc
        # Coalesce: every response completed in this loop iteration goes out in
        # one transmit() instead of one per stream.
        self._transmit_soon()

    def _reset(self, sid: int, code: int) -> None:
        if self.terminated:
            return
        with contextlib.suppress(ValueError, RuntimeError):
            self._quic.reset_stream(sid, code)
        self._transmit_soon()

    def _unacked_bytes(self, sid: int) -> int:
        # aioquic exposes no send-buffer level; its sender keeps unacknowledged
        # bytes in ``_buffer``.  If that ever changes we lose backpressure, not
        # correctness.
        stream: Any = self._quic._streams.get(sid)
        if stream is None:
            return 0
        buffer = getattr(stream.sender, "_buffer", b"")
        return len(buffer)

    async def _drain(self, sid: int) -> None:
        idle = self._server.config.idle_timeout
        while self._unacked_bytes(sid) > _STREAM_HIGH_WATER:
            if self.terminated:
                raise _StreamGone
            if self._progress is None:
                self._progress = asyncio.Event()
            try:
                # Every received datagram (ACKs included) may free send buffer.
                await asyncio.wait_for(self._progress.wait(), timeout=idle)
            except TimeoutError:
                raise _StreamGone from None

    def _wake(self) -> None:
        if self._progress is not None:
            self._progress.set()
            self._progress = None

    def peer_address(self) -> tuple[str, int]:
        paths = self._quic._network_paths
        if paths:
            addr = paths[0].addr
            return (str(addr[0]), int(addr[1]))
        return ("", 0)


class _PathAwareServer(QuicServer):
    """A QuicServer whose new connections from loopback peers use the loopback settings (larger
    datagrams, see `AspenQuicConfiguration.loopback_datagram_size`).

    aioquic reads ``_configuration`` only when a datagram creates a connection, so choosing it per
    datagram by source address is enough."""

    def __init__(
        self,
        default: QuicConfiguration,
        loopback: QuicConfiguration,
        *,
        create_protocol: Callable[..., QuicConnectionProtocol],
    ) -> None:
        super().__init__(configuration=default, create_protocol=create_protocol)
        self._default = default
        self._loopback = loopback

    def datagram_received(self, data: bytes | str, addr: NetworkAddress) -> None:
        self._configuration = self._loopback if is_loopback_host(str(addr[0])) else self._default
        super().datagram_received(data, addr)


class RpcServer:
    """Serve opaque request/response RPCs over QUIC (ALPN ``aspen-client``), authenticated by the
    cookie-derived ``auth_key`` (aspen.rpc.auth.proof_key).

    ``handler(request, peer)`` returns the response bytes, or an async
    iterator of chunks for large responses (written as produced, with
    backpressure).  If it raises, the error is logged and the stream is reset
    with ``STREAM_ERR_HANDLER``; the server carries on.

    ``oversize_response`` / ``busy_response``, when given, are written back
    (then FIN) instead of resetting the stream, so the layer above can return a
    well-formed error frame for a request that was too large or arrived while
    the connection was at its limit; ``unauthorized_response`` likewise for a
    request whose header does not carry the connection's proof.
    """

    def __init__(
        self,
        identity: NodeIdentity,
        handler: Handler,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        auth_key: bytes,
        config: AspenQuicConfiguration | None = None,
        limits: AdmissionLimits | None = None,
        max_connections: int = 200,
        max_streams_per_connection: int = 256,
        max_buffered_bytes: int = 64 * 1024 * 1024,
        oversize_response: bytes | None = None,
        busy_response: bytes | None = None,
        unauthorized_response: bytes | None = None,
        on_disconnect: Callable[[PeerInfo], None] | None = None,
    ) -> None:
        if max_buffered_bytes < MAX_MESSAGE:
            raise ValueError("max_buffered_bytes must allow at least one maximal request")
        if len(auth_key) != 32:
            raise ValueError("auth_key must be 32 bytes (aspen.rpc.auth.proof_key)")
        self.identity = identity
        self.auth_key = auth_key
        self.limits = limits or AdmissionLimits()
        self.handler = handler
        self.host = host
        self.port = port
        # The QUIC stream limit is what actually stops a client from opening
        # more streams; keep it equal to the in-flight limit.
        self.config = replace(config or AspenQuicConfiguration(), max_streams_bidi=max_streams_per_connection)
        self.max_connections = max_connections
        self.max_streams_per_connection = max_streams_per_connection
        self.max_buffered_bytes = max_buffered_bytes  # per connection, requests not yet complete
        self.oversize_response = oversize_response
        self.busy_response = busy_response
        self.unauthorized_response = unauthorized_response
        self.on_disconnect = on_disconnect
        self._transport: asyncio.DatagramTransport | None = None
        self._quic_server: QuicServer | None = None
        self._connections: set[_ServerConnection] = set()
        #: Admitted, not yet authenticated connections, oldest first (dicts keep insertion order).
        self._unauthenticated: dict[_ServerConnection, None] = {}
        self._unauthenticated_by_address: dict[str, dict[_ServerConnection, None]] = {}
        self._by_address: dict[str, int] = {}
        self._preauth_total = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._next_connection_id = 1
        self._closing = False

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    @property
    def unauthenticated_count(self) -> int:
        return len(self._unauthenticated)

    @property
    def active_handlers(self) -> int:
        """Handler invocations currently running (for metrics and tests)."""
        return len(self._tasks)

    async def start(self) -> tuple[str, int]:
        """Bind the UDP socket and start serving; returns the bound ``(host, port)``."""
        if self._transport is not None:
            raise RuntimeError("server already started")
        loop = asyncio.get_running_loop()
        default = self.config.server(self.identity)
        loopback = self.config.for_peer("127.0.0.1").server(self.identity)
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: _PathAwareServer(default, loopback, create_protocol=self._create_protocol),
            local_addr=(self.host, self.port),
        )
        self._transport = transport
        self._quic_server = protocol
        tune_socket(transport.get_extra_info("socket"))
        sockname = transport.get_extra_info("sockname")
        self.port = int(sockname[1])
        logger.info(
            "RPC server listening on %s:%d (endpoint %s)", sockname[0], self.port, self.identity.endpoint_id
        )
        return (str(sockname[0]), self.port)

    async def close(self, *, grace: float = 0.5) -> None:
        """Close every connection, cancel running handlers and unbind.

        Clients see CONNECTION_CLOSE immediately; ``grace`` bounds how long we
        wait for the QUIC closing handshake before dropping the socket.
        """
        if self._closing:
            return
        self._closing = True
        connections = list(self._connections)
        for conn in connections:
            conn.close(error_code=CONN_ERR_SHUTDOWN, reason_phrase="server shutting down")
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
        waits = [asyncio.ensure_future(conn.wait_closed()) for conn in connections]
        if waits:
            _, still = await asyncio.wait(waits, timeout=grace)
            for w in still:
                w.cancel()
        if self._quic_server is not None:
            self._quic_server.close()  # closes half-open connections too, then the socket

    async def __aenter__(self) -> RpcServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- callbacks from connections ------------------------------------------

    def _create_protocol(
        self, quic: QuicConnection, stream_handler: QuicStreamHandler | None = None
    ) -> _ServerConnection:
        return _ServerConnection(quic, stream_handler, server=self)

    def _on_handshake(self, conn: _ServerConnection) -> None:
        if self._closing:
            conn.close(error_code=CONN_ERR_SHUTDOWN, reason_phrase="server shutting down")
            return
        address = conn.peer_address()[0]
        if not self._make_room(address):
            logger.warning(
                "refusing connection from %s: %d connections open (%d from that address)",
                address,
                len(self._connections),
                self._by_address.get(address, 0),
            )
            conn.close(error_code=CONN_ERR_TOO_MANY_CONNECTIONS, reason_phrase="too many connections")
            return
        conn.peer = PeerInfo(connection_id=self._next_connection_id, remote_addr=conn.peer_address())
        conn.address = address
        self._next_connection_id += 1
        self._connections.add(conn)
        self._by_address[address] = self._by_address.get(address, 0) + 1
        self._unauthenticated[conn] = None
        self._unauthenticated_by_address.setdefault(address, {})[conn] = None
        nonce = new_nonce()
        conn.proof = connection_proof(self.auth_key, nonce)
        conn.send_challenge(nonce)
        conn.deadline = asyncio.get_running_loop().call_later(
            self.limits.auth_deadline, self._auth_deadline_passed, conn
        )

    def _make_room(self, address: str) -> bool:
        """Free what a new connection from `address` needs, evicting unauthenticated connections
        (oldest first) where a limit is reached; False if only authenticated ones hold it."""
        limits = self.limits
        own = self._unauthenticated_by_address.get(address, {})
        if len(own) >= limits.max_unauthenticated_per_address:
            self._evict(next(iter(own)))
        if len(self._unauthenticated) >= limits.max_unauthenticated:
            self._evict(next(iter(self._unauthenticated)))
        if self._by_address.get(address, 0) >= limits.max_per_address:
            own = self._unauthenticated_by_address.get(address, {})
            if not own:
                return False
            self._evict(next(iter(own)))
        if len(self._connections) >= self.max_connections:
            if not self._unauthenticated:
                return False
            self._evict(next(iter(self._unauthenticated)))
        return True

    def _evict(self, conn: _ServerConnection) -> None:
        logger.info("evicting unauthenticated connection from %s to admit a new one", conn.address)
        self._close_unauthenticated(conn, CONN_ERR_EVICTED, "evicted: not authenticated")

    def _auth_deadline_passed(self, conn: _ServerConnection) -> None:
        if not conn.authenticated and conn in self._connections:
            logger.info("closing connection from %s: no authenticated request in time", conn.address)
            self._close_unauthenticated(conn, CONN_ERR_AUTH_DEADLINE, "no authenticated request in time")

    def _close_unauthenticated(self, conn: _ServerConnection, code: int, reason: str) -> None:
        assert not conn.authenticated  # these codes promise the client that nothing ran
        self._release(conn)
        conn.peer = None  # whatever still arrives on it is dropped unread
        conn.close(error_code=code, reason_phrase=reason)

    def _on_authenticated(self, conn: _ServerConnection) -> None:
        conn.authenticated = True
        if conn.deadline is not None:
            conn.deadline.cancel()
            conn.deadline = None
        self._forget_unauthenticated(conn)
        self.config.restore_window(conn._quic)

    def _forget_unauthenticated(self, conn: _ServerConnection) -> None:
        self._preauth_total -= conn.preauth_bytes
        conn.preauth_bytes = 0
        self._unauthenticated.pop(conn, None)
        own = self._unauthenticated_by_address.get(conn.address)
        if own is not None:
            own.pop(conn, None)
            if not own:
                del self._unauthenticated_by_address[conn.address]

    def _account_preauth(self, conn: _ServerConnection) -> None:
        """After a datagram on an unauthenticated connection: enforce the pre-auth byte caps."""
        received = conn.received_bytes()
        self._preauth_total += received - conn.preauth_bytes
        conn.preauth_bytes = received
        if received > self.limits.preauth_bytes:
            logger.info("closing connection from %s: %d bytes before authenticating", conn.address, received)
            self._close_unauthenticated(conn, CONN_ERR_PREAUTH_LIMIT, "too much data before authenticating")
        while self._preauth_total > self.limits.preauth_bytes_total and self._unauthenticated:
            hog = max(self._unauthenticated, key=lambda c: c.preauth_bytes)
            self._close_unauthenticated(hog, CONN_ERR_PREAUTH_LIMIT, "too much data before authenticating")

    def _release(self, conn: _ServerConnection) -> None:
        """Stop counting `conn` (idempotent): on termination, or when we close it ourselves."""
        if conn not in self._connections:
            return
        self._connections.discard(conn)
        if conn.deadline is not None:
            conn.deadline.cancel()
            conn.deadline = None
        self._forget_unauthenticated(conn)
        left = self._by_address.get(conn.address, 0) - 1
        if left > 0:
            self._by_address[conn.address] = left
        else:
            self._by_address.pop(conn.address, None)
        if self.on_disconnect is not None and conn.peer is not None:
            try:
                self.on_disconnect(conn.peer)
            except Exception:
                logger.exception("on_disconnect hook failed")

    def _on_terminated(self, conn: _ServerConnection) -> None:
        self._release(conn)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
