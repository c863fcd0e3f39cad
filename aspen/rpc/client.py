"""QUIC RPC client: pinned connections and a small reconnecting client.

:class:`RpcConnection` is one QUIC connection to one node.  TLS runs without
CA verification because node certificates are self-signed; instead, right
after the handshake and before any request is sent, the certificate's Ed25519
public key is compared with the endpoint id the caller expects (from a cluster
ticket).  TLS 1.3 has already proven the server holds the matching private
key, so a match authenticates the node and a mismatch aborts with
:class:`~aspen.rpc.errors.EndpointMismatchError`.  The connection is ready once
the node's challenge has arrived too: every request then starts with the
header carrying this connection's proof of the cookie (:mod:`aspen.rpc.auth`).

Each request uses its own bidirectional stream, so many requests share one
connection without head-of-line blocking.  :class:`RpcClient` wraps one
lazily-(re)connected :class:`RpcConnection` over a list of addresses.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aioquic.asyncio.protocol import QuicStreamHandler
from aioquic.quic import events
from aioquic.quic.connection import NetworkAddress, QuicConnection

from aspen.rpc.acks import PiggybackAcks
from aspen.rpc.auth import CHALLENGE_FRAME_BYTES, connection_proof, parse_challenge, request_header
from aspen.rpc.config import (
    MAX_MESSAGE,
    REFUSED_CONNECTION_CODES,
    STREAM_ERR_CANCELLED,
    AspenQuicConfiguration,
    tune_socket,
)
from aspen.rpc.errors import (
    EndpointMismatchError,
    RpcConnectError,
    RpcRefusedError,
    RpcStreamResetError,
    RpcTimeoutError,
    RpcTransportError,
)
from aspen.rpc.identity import endpoint_id_of_certificate

__all__ = ["DEFAULT_MAX_RESPONSE", "RpcClient", "RpcConnection"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_RESPONSE = MAX_MESSAGE + 64 * 1024
"""Responses are frames of at most MAX_MESSAGE plus envelope slack."""


@dataclass
class _Pending:
    future: asyncio.Future[bytes]
    limit: int
    buf: bytearray = field(default_factory=bytearray)


class _ClientProtocol(PiggybackAcks):
    def __init__(self, quic: QuicConnection, stream_handler: QuicStreamHandler | None = None) -> None:
        super().__init__(quic, stream_handler)
        self._pending: dict[int, _Pending] = {}
        self.failure: RpcTransportError | None = None
        self.handshake: asyncio.Future[None] = self._loop.create_future()
        #: The nonce of the node's challenge (aspen.rpc.auth), which requests must wait for.
        self.challenge: asyncio.Future[bytes] = self._loop.create_future()
        self._challenge_buf = bytearray()
        self.last_receive = self._loop.time()

    # -- aioquic hooks -----------------------------------------------------

    def datagram_received(self, data: bytes | str, addr: NetworkAddress) -> None:
        self.last_receive = self._loop.time()
        super().datagram_received(data, addr)
        # aioquic only reports ConnectionTerminated after the 3-PTO draining
        # period; fail requests as soon as the peer's CONNECTION_CLOSE arrives.
        close_event: Any = getattr(self._quic, "_close_event", None)
        if close_event is not None and self.failure is None:
            self._fail(_closed_error(close_event))

    def error_received(self, exc: Exception) -> None:
        # The UDP socket is connected, so ICMP "port unreachable" surfaces here
        # as ECONNREFUSED: nobody is listening, fail fast instead of timing out.
        # Other errors (ENOBUFS, transient unreachable routes) are left to QUIC
        # loss recovery and the idle timeout.
        if not isinstance(exc, ConnectionRefusedError):
            logger.debug("ignoring socket error on %s: %s", self._quic.get_peer_address(), exc)
            return
        if self.failure is None:
            self._fail(RpcTransportError(f"network error: {exc}"))
            self._quic.close(error_code=0, reason_phrase="network error")
            self.transmit()

    def quic_event_received(self, event: events.QuicEvent) -> None:
        # Not calling super(): we collect stream data ourselves (no StreamReader).
        if isinstance(event, events.StreamDataReceived):
            pending = self._pending.get(event.stream_id)
            if pending is None:
                if event.stream_id % 4 == 3:  # server-initiated unidirectional: the challenge
                    self._on_challenge_data(event)
                return  # abandoned request
            pending.buf += event.data
            if len(pending.buf) > pending.limit:
                self.abort(event.stream_id)
                _settle(pending.future, RpcTransportError(f"response exceeds {pending.limit} bytes"))
            elif event.end_stream:
                del self._pending[event.stream_id]
                if not pending.future.done():
                    pending.future.set_result(bytes(pending.buf))
        elif isinstance(event, events.StreamReset):
            pending = self._pending.pop(event.stream_id, None)
            if pending is not None:
                _settle(
                    pending.future,
                    RpcStreamResetError(
                        event.error_code, f"server reset the stream (code {event.error_code:#x})"
                    ),
                )
        elif isinstance(event, events.HandshakeCompleted):
            if not self.handshake.done():
                self.handshake.set_result(None)
        elif isinstance(event, events.ConnectionTerminated):
            self._fail(_closed_error(event))

    def _on_challenge_data(self, event: events.StreamDataReceived) -> None:
        if self.challenge.done():
            return
        self._challenge_buf += event.data
        if len(self._challenge_buf) > CHALLENGE_FRAME_BYTES:
            self._fail_protocol("oversized challenge from node")
        elif event.end_stream:
            try:
                self.challenge.set_result(parse_challenge(bytes(self._challenge_buf)))
            except ValueError as exc:
                self._fail_protocol(f"bad challenge from node: {exc}")

    def _fail_protocol(self, reason: str) -> None:
        self._fail(RpcTransportError(reason))
        self._quic.close(error_code=0, reason_phrase=reason)
        self.transmit()

    # -- requests ------------------------------------------------------------

    def send_request(self, header: bytes, data: bytes, limit: int) -> tuple[int, asyncio.Future[bytes]]:
        if self.failure is not None:
            raise self.failure
        sid = self._quic.get_next_available_stream_id()
        # Two writes, not a concatenation: no copy of a 16 MiB body.
        self._quic.send_stream_data(sid, header, end_stream=False)
        self._quic.send_stream_data(sid, data, end_stream=True)
        future: asyncio.Future[bytes] = self._loop.create_future()
        self._pending[sid] = _Pending(future=future, limit=limit)
        # Coalesce: all requests issued in this loop iteration share datagrams.
        self._transmit_soon()
        return sid, future

    def abort(self, sid: int) -> None:
        """Give up on a request: stop both directions so neither side keeps sending."""
        self._pending.pop(sid, None)
        if self.failure is not None:
            return
        with contextlib.suppress(ValueError, RuntimeError):
            self._quic.reset_stream(sid, STREAM_ERR_CANCELLED)
        with contextlib.suppress(ValueError, RuntimeError):
            self._quic.stop_stream(sid, STREAM_ERR_CANCELLED)
        self._transmit_soon()

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def _fail(self, error: RpcTransportError) -> None:
        if self.failure is None:
            self.failure = error
        pending, self._pending = self._pending, {}
        for p in pending.values():
            _settle(p.future, error)
        for waiter in (self.handshake, self.challenge):
            if not waiter.done():
                waiter.set_exception(error)
                # Nobody may await it if the connect already timed out.
                waiter.exception()


def _settle(future: asyncio.Future[bytes], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


def _closed_error(event: Any) -> RpcTransportError:
    reason = getattr(event, "reason_phrase", "") or "no reason given"
    code = getattr(event, "error_code", 0)
    message = f"connection closed (code {code:#x}: {reason})"
    if code in REFUSED_CONNECTION_CODES and getattr(event, "frame_type", 0) is None:
        # An application close (no frame type; transport codes overlap these numbers) the node
        # sends only on a connection on which it served nothing (see config).
        return RpcRefusedError(code, message)
    return RpcTransportError(message)


def _local_bind_address(family: int, remote_host: str) -> str | None:
    # Talking to loopback: bind loopback explicitly so the socket is never
    # reachable from other interfaces.  Otherwise let connect() pick the source.
    try:
        if ipaddress.ip_address(remote_host.split("%", 1)[0]).is_loopback:
            return "::1" if family == socket.AF_INET6 else "127.0.0.1"
    except ValueError:
        pass
    return None


class RpcConnection:
    """One pinned QUIC connection.  Create with :meth:`connect`."""

    def __init__(
        self, transport: asyncio.DatagramTransport, protocol: _ClientProtocol, endpoint_id: str, addr: str
    ) -> None:
        self._transport = transport
        self._protocol = protocol
        self.endpoint_id = endpoint_id
        self.addr = addr
        self.header = b""  # the auth header of every request, once the challenge has arrived

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        endpoint_id: str,
        *,
        auth_key: bytes,
        timeout: float = 5.0,
        config: AspenQuicConfiguration | None = None,
        local_host: str | None = None,
    ) -> RpcConnection:
        """Connect, complete the handshake, verify the server's key and receive its challenge.

        ``auth_key`` is the cookie-derived key (:func:`aspen.rpc.auth.proof_key`) every request
        on this connection proves itself with.

        ``local_host`` binds the source address (a node forwarding to its leader uses its own
        address, so firewall rules between nodes apply to forwarded requests too).

        Raises :class:`EndpointMismatchError` if the server's key is not
        ``endpoint_id``, :class:`RpcTimeoutError` if the handshake does not
        finish within ``timeout``, :class:`RpcTransportError` otherwise.
        """
        expected = endpoint_id.lower()
        config = config or AspenQuicConfiguration()
        loop = asyncio.get_running_loop()
        where = f"{host}:{port}"
        try:
            async with asyncio.timeout(timeout):
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except TimeoutError:
            raise RpcTimeoutError(f"resolving {where} timed out") from None
        except OSError as exc:
            raise RpcTransportError(f"cannot resolve {where}: {exc}") from exc
        if not infos:
            raise RpcTransportError(f"cannot resolve {where}")
        family, _, _, _, addr = infos[0]

        quic = QuicConnection(configuration=config.for_peer(str(addr[0])).client())
        local = local_host or _local_bind_address(family, str(addr[0]))
        try:
            # A connected UDP socket: ICMP errors reach error_received, and the
            # event loop (asyncio or uvloop) knows the peer, so it accepts
            # aioquic's sendto(data, addr) for that same addr.
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: _ClientProtocol(quic),
                local_addr=None if local is None else (local, 0),
                remote_addr=(str(addr[0]), int(addr[1])),
                family=family,
            )
        except OSError as exc:
            raise RpcTransportError(f"cannot open socket to {where}: {exc}") from exc
        tune_socket(transport.get_extra_info("socket"))
        conn = cls(transport, protocol, expected, where)
        try:
            protocol.connect(addr)
            try:
                async with asyncio.timeout(timeout):
                    await protocol.handshake
                    # Pin before anything depends on the peer; the challenge follows the handshake
                    # by half a round trip.
                    conn._verify_peer(expected)
                    nonce = await protocol.challenge
            except TimeoutError:
                raise RpcTimeoutError(f"QUIC handshake with {where} timed out after {timeout}s") from None
            conn.header = request_header(connection_proof(auth_key, nonce))
        except BaseException:
            await conn.aclose()
            raise
        return conn

    def _verify_peer(self, expected: str) -> None:
        # aioquic keeps the leaf certificate here; there is no public accessor.
        tls: Any = getattr(self._protocol._quic, "tls", None)
        cert = getattr(tls, "_peer_certificate", None)
        if cert is None:
            raise RpcTransportError(f"{self.addr} presented no certificate")
        try:
            got = endpoint_id_of_certificate(cert)
        except ValueError as exc:
            raise EndpointMismatchError(expected, f"<{exc}>") from None
        if got != expected:
            raise EndpointMismatchError(expected, got)

    @property
    def is_closed(self) -> bool:
        return self._protocol.failure is not None

    @property
    def in_flight(self) -> int:
        return self._protocol.in_flight

    @property
    def idle_for(self) -> float:
        """Seconds since the last datagram from the server."""
        return asyncio.get_running_loop().time() - self._protocol.last_receive

    async def request(
        self, data: bytes, timeout: float, *, max_response: int = DEFAULT_MAX_RESPONSE
    ) -> bytes:
        """Send one request frame and return the response frame.

        Raises :class:`RpcTimeoutError` if no complete response arrives within
        ``timeout`` seconds; the outcome of the request is then unknown (it may
        have been executed).  Raises :class:`RpcStreamResetError` if the server
        aborted the request, :class:`RpcTransportError` if the connection failed
        (outcome likewise unknown) or the response exceeded ``max_response``.
        """
        sid, future = self._protocol.send_request(self.header, data, max_response)
        # The future is this request's alone, so its deadline settles it directly: one timer handle
        # instead of an asyncio.timeout scope per request (≈ 6 % of a loaded client's CPU).
        timer = asyncio.get_running_loop().call_later(timeout, self._expire, future, timeout)
        try:
            return await future
        except RpcTimeoutError:
            self._protocol.abort(sid)
            raise
        except asyncio.CancelledError:
            self._protocol.abort(sid)
            raise
        finally:
            timer.cancel()

    def _expire(self, future: asyncio.Future[bytes], timeout: float) -> None:
        _settle(future, RpcTimeoutError(f"no response from {self.addr} within {timeout}s"))

    async def aclose(self, *, grace: float = 1.0) -> None:
        """Close the connection; pending requests fail with RpcTransportError."""
        protocol = self._protocol
        protocol._fail(RpcTransportError("connection closed by client"))
        protocol.close()
        # Wait (bounded) for the QUIC closing period so no timer fires on a
        # closed socket, then release the socket.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await protocol.wait_closed()
        self._transport.close()

    async def __aenter__(self) -> RpcConnection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class RpcClient:
    """A lazily connected, self-healing client for one node.

    Keeps at most one :class:`RpcConnection` (QUIC multiplexes requests, so
    one is enough) and replaces it after it fails or has idled close to the
    QUIC idle timeout.  Addresses are tried in order, starting with the one
    that last worked.  Requests are never retried here: after a transport
    failure their outcome is unknown, and only the caller knows whether a
    retry is safe.
    """

    def __init__(
        self,
        endpoint_id: str,
        addrs: Sequence[tuple[str, int]],
        *,
        auth_key: bytes,
        connect_timeout: float = 5.0,
        config: AspenQuicConfiguration | None = None,
        local_host: str | None = None,
    ) -> None:
        if not addrs:
            raise ValueError("RpcClient needs at least one address")
        self.local_host = local_host
        self.auth_key = auth_key
        self.endpoint_id = endpoint_id.lower()
        self.addrs = list(addrs)
        self.connect_timeout = connect_timeout
        self.config = config or AspenQuicConfiguration()
        self._conn: RpcConnection | None = None
        self._lock = asyncio.Lock()
        self._preferred = 0
        self._closed = False
        self._retired: set[asyncio.Task[None]] = set()

    async def request(
        self, data: bytes, timeout: float, *, max_response: int = DEFAULT_MAX_RESPONSE
    ) -> bytes:
        """Like :meth:`RpcConnection.request`; ``timeout`` also covers connecting."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            conn = await self.connection(timeout)
        except RpcConnectError:
            raise
        except RpcTransportError as exc:
            # Nothing was sent yet: say so, so callers may retry even non-idempotent requests.
            raise RpcConnectError(str(exc)) from exc
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise RpcConnectError(f"connecting to {self.endpoint_id[:16]}… used the whole {timeout}s timeout")
        return await conn.request(data, remaining, max_response=max_response)

    def describe(self) -> str:
        """A short name for messages: endpoint id prefix and addresses."""
        addrs = ", ".join(f"{h}:{p}" for h, p in self.addrs)
        return f"node {self.endpoint_id[:16]}… at {addrs}"

    def _usable(self, conn: RpcConnection | None) -> bool:
        if conn is None or conn.is_closed:
            return False
        # An idle connection may be dropped by the server's idle timer at any
        # moment; replacing it early avoids failing a request that was never sent.
        return conn.in_flight > 0 or conn.idle_for < self.config.idle_timeout / 2

    async def connection(self, timeout: float | None = None) -> RpcConnection:
        """Return a connected, verified connection, connecting if needed."""
        if self._closed:
            raise RpcTransportError("client is closed")
        if self._usable(self._conn):
            assert self._conn is not None
            return self._conn
        async with self._lock:
            if self._closed:
                raise RpcTransportError("client is closed")
            if self._usable(self._conn):
                assert self._conn is not None
                return self._conn
            if self._conn is not None:
                self._retire(self._conn)
                self._conn = None
            self._conn = await self._connect_any(timeout)
            return self._conn

    async def _connect_any(self, timeout: float | None) -> RpcConnection:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        errors: list[tuple[str, RpcTransportError]] = []
        n = len(self.addrs)
        for i in range(n):
            index = (self._preferred + i) % n
            host, port = self.addrs[index]
            per_try = self.connect_timeout
            if deadline is not None:
                per_try = min(per_try, deadline - loop.time())
                if per_try <= 0:
                    break
            try:
                conn = await RpcConnection.connect(
                    host,
                    port,
                    self.endpoint_id,
                    auth_key=self.auth_key,
                    timeout=per_try,
                    config=self.config,
                    local_host=self.local_host,
                )
            except RpcTransportError as exc:
                logger.debug("connect to %s:%d failed: %s", host, port, exc)
                errors.append((f"{host}:{port}", exc))
                continue
            self._preferred = index
            return conn
        if errors and all(isinstance(e, EndpointMismatchError) for _, e in errors):
            raise errors[0][1]
        if errors and all(isinstance(e, RpcTimeoutError) for _, e in errors):
            raise RpcTimeoutError(_summarize(self.endpoint_id, errors))
        if not errors:
            raise RpcTimeoutError(f"no time left to connect to {self.endpoint_id[:16]}…")
        raise RpcTransportError(_summarize(self.endpoint_id, errors))

    def _retire(self, conn: RpcConnection) -> None:
        task = asyncio.get_running_loop().create_task(conn.aclose())
        self._retired.add(task)
        task.add_done_callback(self._retired.discard)

    async def aclose(self) -> None:
        self._closed = True
        async with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            await conn.aclose()
        if self._retired:
            await asyncio.wait(list(self._retired), timeout=2.0)

    async def __aenter__(self) -> RpcClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _summarize(endpoint_id: str, errors: list[tuple[str, RpcTransportError]]) -> str:
    detail = "; ".join(f"{addr}: {exc}" for addr, exc in errors)
    return f"cannot connect to {endpoint_id[:16]}…: {detail}"
