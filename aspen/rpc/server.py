"""QUIC RPC server: one request per bidirectional stream, handled by a caller-supplied coroutine.

The server knows nothing about message types.  For each stream it buffers the
request (up to :data:`~aspen.rpc.config.MAX_MESSAGE` bytes) until the client's
FIN, runs ``handler(request, peer)`` in its own task, and writes the returned
bytes followed by FIN.  Everything a misbehaving or overloaded client can do is
bounded: connections per server, in-flight streams and buffered bytes per
connection, request size, and idle time.
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
from aspen.rpc.config import (
    CONN_ERR_SHUTDOWN,
    CONN_ERR_TOO_MANY_CONNECTIONS,
    MAX_MESSAGE,
    STREAM_ERR_BUSY,
    STREAM_ERR_CANCELLED,
    STREAM_ERR_HANDLER,
    STREAM_ERR_OVERSIZE,
    AspenQuicConfiguration,
    is_loopback_host,
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
        self._server = server
        self.peer: PeerInfo | None = None  # set once the handshake completes and we accept
        self.terminated = False
        self._buffers: dict[int, bytearray] = {}
        self._ignored: set[int] = set()  # rejected streams whose remaining request bytes we drop
        self._buffered_bytes = 0
        self._in_flight = 0  # streams buffering a request or running a handler
        self._progress: asyncio.Event | None = None

    # -- aioquic hooks -----------------------------------------------------

    def datagram_received(self, data: bytes | str, addr: NetworkAddress) -> None:
        super().datagram_received(data, addr)
        self._wake()

    def _process_events(self) -> None:
        # Runs after aioquic has processed a received datagram or a timer, before the transmit
        # that follows (so on timer passes too: `defer_ack` holds an ACK only once).
        super()._process_events()
        if self._in_flight and not self._buffers:
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
            self._drop_stream(event.stream_id)
            self._ignored.discard(event.stream_id)
        elif isinstance(event, events.HandshakeCompleted):
            self._server._on_handshake(self)
        elif isinstance(event, events.ConnectionTerminated):
            self.terminated = True
            self._buffers.clear()
            self._buffered_bytes = 0
            self._wake()
            self._server._on_terminated(self)

    # -- request intake ----------------------------------------------------

    def _on_stream_data(self, event: events.StreamDataReceived) -> None:
        sid = event.stream_id
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
        buf = self._buffers.get(sid)
        if buf is None:
            if self._in_flight >= server.max_streams_per_connection:
                self._reject(sid, STREAM_ERR_BUSY, server.busy_response, event.end_stream)
                return
            buf = self._buffers[sid] = bytearray()
            self._in_flight += 1
        size = len(event.data)
        if len(buf) + size > MAX_MESSAGE:
            self._drop_stream(sid)
            self._reject(sid, STREAM_ERR_OVERSIZE, server.oversize_response, event.end_stream)
            return
        if self._buffered_bytes + size > server.max_buffered_bytes:
            self._drop_stream(sid)
            self._reject(sid, STREAM_ERR_BUSY, server.busy_response, event.end_stream)
            return
        buf += event.data
        self._buffered_bytes += size
        if event.end_stream:
            del self._buffers[sid]
            self._buffered_bytes -= len(buf)
            server._spawn(self._serve(sid, bytes(buf), self.peer))

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
    """Serve opaque request/response RPCs over QUIC (ALPN ``aspen-client``).

    ``handler(request, peer)`` returns the response bytes, or an async
    iterator of chunks for large responses (written as produced, with
    backpressure).  If it raises, the error is logged and the stream is reset
    with ``STREAM_ERR_HANDLER``; the server carries on.

    ``oversize_response`` / ``busy_response``, when given, are written back
    (then FIN) instead of resetting the stream, so the layer above can return a
    well-formed error frame for a request that was too large or arrived while
    the connection was at its limit.
    """

    def __init__(
        self,
        identity: NodeIdentity,
        handler: Handler,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        config: AspenQuicConfiguration | None = None,
        max_connections: int = 200,
        max_streams_per_connection: int = 256,
        max_buffered_bytes: int = 64 * 1024 * 1024,
        oversize_response: bytes | None = None,
        busy_response: bytes | None = None,
        on_disconnect: Callable[[PeerInfo], None] | None = None,
    ) -> None:
        if max_buffered_bytes < MAX_MESSAGE:
            raise ValueError("max_buffered_bytes must allow at least one maximal request")
        self.identity = identity
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
        self.on_disconnect = on_disconnect
        self._transport: asyncio.DatagramTransport | None = None
        self._quic_server: QuicServer | None = None
        self._connections: set[_ServerConnection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._next_connection_id = 1
        self._closing = False

    @property
    def connection_count(self) -> int:
        return len(self._connections)

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
        if len(self._connections) >= self.max_connections:
            logger.warning(
                "refusing connection from %s: %d connections open",
                conn.peer_address(),
                len(self._connections),
            )
            conn.close(error_code=CONN_ERR_TOO_MANY_CONNECTIONS, reason_phrase="too many connections")
            return
        conn.peer = PeerInfo(connection_id=self._next_connection_id, remote_addr=conn.peer_address())
        self._next_connection_id += 1
        self._connections.add(conn)

    def _on_terminated(self, conn: _ServerConnection) -> None:
        if conn not in self._connections:
            return
        self._connections.discard(conn)
        if self.on_disconnect is not None and conn.peer is not None:
            try:
                self.on_disconnect(conn.peer)
            except Exception:
                logger.exception("on_disconnect hook failed")

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
