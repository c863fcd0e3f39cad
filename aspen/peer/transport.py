"""The peer transport: one TLS 1.3/TCP listener per node, mutually authenticated by the nodes'
Ed25519 keys, carrying several *channels* -- Raft messages (kind 1, built in: `send`), and the
bulk channels registered by the blob service (`register_channel` for members,
`register_open_channel` for clients with their own credential, e.g. a one-time transfer token).

The listener uses the node's host and the same port *number* as its QUIC endpoint (QUIC is UDP, so
the TCP port is free). Each connection carries one channel kind, chosen by its first byte after
TLS. TLS set-up and pinning are in `aspen.peer.tls`, the member handshake in
`aspen.peer.handshake`; this module is the channel mux, the pre-auth limits of the listener, and
the Raft channel (per-peer queues and writers).

Invariants:

* The server accepts a connection only from a current member: the claimed node id must have been
  registered with `set_peer` under exactly the claimed key, and the signature must verify with that
  key. So unknown keys are refused and a member cannot pose as another member's node id.
* On a Raft channel every message must come `from` the authenticated node and be addressed `to` us;
  other messages (and local-only message types) are dropped, never delivered.
* Everything after the handshake is framed as ``[u32 big-endian length][payload]``; handshake frames
  are at most 256 bytes, Raft frames at most 512 MiB. A malformed frame closes that connection, never
  the listener.
* `send` never blocks and never raises: it queues into a per-peer bounded queue or drops (and counts)
  the message. Raft retransmits whatever is lost, so dropping is always safe; blocking the driver is
  not.
* Per peer there is one outgoing connection and one writer task. After a failed connect or a broken
  connection the queue is dropped, `on_unreachable(peer)` is called once for that failure, and
  messages sent during the following backoff (50 ms doubling to 2 s, jittered, reset by a successful
  connect) are dropped: they would be stale by the time they could be sent.
* Nothing unauthenticated can starve the listener. From `accept` until it has authenticated (the
  member signature, or an open channel's own credential check) a connection is *pending*: the whole
  pre-auth phase -- TLS handshake, kind byte, auth message -- has one deadline (`auth_timeout`,
  5 s), at most `max_pending` connections are pending at once and at most `max_pending_per_source`
  from one source address. A source over its limit is refused at accept; when the pending set is
  full the oldest pending connection of the source holding the most is evicted, so a member or a
  client with a transfer token still gets in, within milliseconds, during a flood. Authenticated
  connections never count. So the file descriptors a flood can hold are bounded by `max_pending`.
* Every wait is bounded: connect (`connect_timeout`), handshake (5 s), each write of up to 1 MiB
  (5 s without progress means the peer is stuck: the connection is dropped and re-established so it
  cannot pin memory forever), and `close()`.
* Outgoing sockets bind the node's own host address so firewall rules can tell nodes apart.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import random
import socket
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from aspen.peer.handshake import (
    ACCEPTED,
    AUTH,
    AUTH_CONTEXT,
    HANDSHAKE_TIMEOUT,
    LEN,
    MAX_HANDSHAKE_FRAME,
    NONCE_SIZE,
    HandshakeError,
    auth_message,
    check_kind,
)
from aspen.peer.tls import abort, linger, listen, make_contexts, peer_endpoint_id, tune_socket
from aspen.raft.codec import decode_message, encode_message
from aspen.raft.core.types import Message, MessageType, NodeId
from aspen.rpc.identity import NodeIdentity

__all__ = [
    "AUTH_CONTEXT",
    "MAX_FRAME",
    "RAFT_CHANNEL",
    "ChannelHandler",
    "TcpTransport",
]

log = logging.getLogger(__name__)

RAFT_CHANNEL = 1
MAX_FRAME = 512 * 1024 * 1024
#: Writes are split into chunks of this size, each drained under `DRAIN_TIMEOUT`: the deadline is on
#: progress, so a large snapshot on a slow link is fine while a peer that stopped reading is not.
WRITE_CHUNK = 1024 * 1024
DRAIN_TIMEOUT = 5.0
BACKOFF_MIN = 0.05
BACKOFF_MAX = 2.0
CLOSE_TIMEOUT = 2.0
#: StreamReader buffer limit: large enough that a big frame is read without pausing the socket every
#: 128 KiB, small enough to bound what one connection buffers ahead of its reader.
STREAM_LIMIT = 1024 * 1024
REFUSAL_LOG_INTERVAL = 10.0
#: Default deadline of a connection's whole pre-auth phase (TLS handshake, kind byte, auth message).
AUTH_TIMEOUT = 5.0
#: Default bound on connections that have not authenticated yet (each holds a file descriptor).
MAX_PENDING_HANDSHAKES = 256
#: Default bound on pending connections from one source address. A member dials one Raft channel
#: and a few blob channels, a client one channel per transfer: each is pending for milliseconds.
MAX_PENDING_PER_SOURCE = 32
#: After accept() fails for lack of descriptors or memory, wait this long before accepting again
#: (what frees them -- deadlines, evictions -- runs meanwhile); asyncio's own servers do the same.
ACCEPT_RETRY_DELAY = 0.1
_ACCEPT_RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

_U64_MAX = 2**64 - 1
_LOCAL_TYPES = frozenset(
    {MessageType.HUP, MessageType.BEAT, MessageType.PROPOSE, MessageType.SNAP_STATUS, MessageType.UNREACHABLE}
)
_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})

ChannelHandler = Callable[[int, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
#: The session an open channel serves once its caller is authenticated.
Session = Callable[[], Awaitable[None]]
#: An open channel's authentication step: runs right after the kind byte, under the pre-auth
#: deadline and while the connection is pending; reads the caller's credential and returns the
#: session to serve, or None to refuse (after writing whatever answer a refused caller gets).
OpenChannelAuth = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[Session | None]]


@dataclass(eq=False)
class _Peer:
    node_id: NodeId
    endpoint_id: str
    addrs: tuple[tuple[str, int], ...]
    queue: deque[Message] = field(default_factory=deque)
    #: False while backing off after a failure: `send` drops instead of queueing stale messages.
    accepting: bool = True
    #: Woken by `send` (new messages), the connection monitor (EOF) and `set_peer` (new addresses).
    waiter: asyncio.Future[None] | None = None
    task: asyncio.Task[None] | None = None
    #: The connection's writer while the pump is idle (nothing queued, nothing being written):
    #: `send` then writes a small message itself, at once, instead of waking the pump for it.
    idle_writer: asyncio.StreamWriter | None = None
    connected: bool = False
    ever_connected: bool = False
    sent: int = 0
    dropped: int = 0
    reconnects: int = 0
    failures: int = 0
    #: Failures where the peer answered but was not who we expected (pin mismatch) or refused us.
    handshake_failures: int = 0
    consecutive_failures: int = 0

    def wake(self) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)


class _LogThrottle:
    """WARNING at most once every REFUSAL_LOG_INTERVAL seconds, DEBUG in between: refusals come in
    floods (or every few seconds forever, from a misconfigured member), and each would be a line."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last = float("-inf")

    def level(self, now: float) -> int:
        if now - self._last >= REFUSAL_LOG_INTERVAL:
            self._last = now
            return logging.WARNING
        return logging.DEBUG


@dataclass(eq=False)
class _Inbound:
    source: str
    task: asyncio.Task[Any] | None = None
    writer: asyncio.StreamWriter | None = None  # set once the TLS handshake is done
    node_id: NodeId | None = None  # set once authenticated (0 on an open channel)


class TcpTransport:
    """Implements `aspen.raft.transport.Transport` over mutually authenticated TLS/TCP."""

    def __init__(
        self,
        *,
        node_id: int,
        identity: NodeIdentity,
        host: str,
        port: int,
        deliver: Callable[[Message], None],
        on_unreachable: Callable[[int], None] | None = None,
        max_queue: int = 4096,
        connect_timeout: float = 2.0,
        cluster_secret: bytes = b"",
        admit_unknown: Callable[[int], bool] | None = None,
        auth_timeout: float = AUTH_TIMEOUT,
        max_pending: int = MAX_PENDING_HANDSHAKES,
        max_pending_per_source: int = MAX_PENDING_PER_SOURCE,
    ) -> None:
        if not 0 < node_id <= _U64_MAX:
            raise ValueError(f"invalid node id {node_id}")
        if not auth_timeout > 0 or max_pending < 1 or max_pending_per_source < 1:
            raise ValueError("auth_timeout, max_pending and max_pending_per_source must be positive")
        self.node_id = node_id
        self._identity = identity
        self._key = identity.public_key_bytes
        self._host = host
        self._port = port
        self._deliver = deliver
        self._on_unreachable = on_unreachable
        self._secret = cluster_secret
        self._admit_unknown = admit_unknown
        self._max_queue = max(1, max_queue)
        self._connect_timeout = connect_timeout
        self._local_addr: tuple[str, int] | None = None if host in _WILDCARD_HOSTS else (host, 0)
        self._server_ctx, self._client_ctx = make_contexts(identity)
        self._peers: dict[NodeId, _Peer] = {}
        self._channels: dict[int, ChannelHandler] = {}
        self._open_channels: dict[int, OpenChannelAuth] = {}
        self._auth_timeout = auth_timeout
        self._max_pending = max_pending
        self._max_pending_per_source = max_pending_per_source
        self._listeners: list[socket.socket] = []
        self._accept_tasks: list[asyncio.Task[None]] = []
        self._inbound: set[_Inbound] = set()
        #: Connections not yet authenticated, oldest first (a dict keeps insertion order).
        self._pending: dict[_Inbound, None] = {}
        self._pending_by_source: dict[str, int] = {}
        self._started = False
        self._closing = False
        self._bound: tuple[str, int] | None = None
        # Transport-wide counters (per-peer ones live on `_Peer`).
        self._dropped_unknown = 0
        self._received = 0
        self._refused_handshakes = 0
        self._bad_frames = 0
        self._foreign_messages = 0
        self._refused_source_limit = 0
        self._evicted_pending = 0
        self._accept_errors = 0
        self._refusal_log = _LogThrottle()
        self._flood_log = _LogThrottle()

    # ------------------------------------------------------------------------------ lifecycle --
    async def start(self) -> tuple[str, int]:
        """Listen on (host, port); returns the bound address (port 0 picks a free port)."""
        if self._closing:
            raise RuntimeError("transport is closed")
        loop = asyncio.get_running_loop()
        # Our own accept loop rather than asyncio's TLS server: asyncio calls back only once the
        # TLS handshake is done, so connections still in it (each holding a descriptor) could be
        # neither counted nor evicted. Here a connection is pending from accept() on.
        self._listeners = listen(self._host, self._port)
        sockname = self._listeners[0].getsockname()
        self._bound = (str(sockname[0]), int(sockname[1]))
        for lsock in self._listeners:
            self._accept_tasks.append(
                loop.create_task(self._accept_loop(lsock), name=f"raft-net-{self.node_id}-accept")
            )
        self._started = True
        for peer in self._peers.values():
            self._spawn(peer)
        return self._bound

    @property
    def _listen_port(self) -> int:
        return self._bound[1] if self._bound is not None else 0

    async def close(self) -> None:
        """Stop the listener, every writer and every reader; returns within about CLOSE_TIMEOUT."""
        if self._closing:
            return
        self._closing = True
        for accepting in self._accept_tasks:
            accepting.cancel()
        if self._accept_tasks:
            await asyncio.wait(self._accept_tasks, timeout=CLOSE_TIMEOUT)
        for lsock in self._listeners:
            lsock.close()
        self._accept_tasks, self._listeners = [], []
        tasks: list[asyncio.Task[Any]] = []
        for peer in self._peers.values():
            peer.queue.clear()
            if peer.task is not None:
                peer.task.cancel()
                tasks.append(peer.task)
        for conn in list(self._inbound):
            if conn.task is not None:
                conn.task.cancel()
                tasks.append(conn.task)
            if conn.writer is not None:
                abort(conn.writer)
        if tasks:
            _, not_done = await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT)
            if not_done:
                log.warning("raft connections did not close in time", extra={"node": self.node_id})

    # -------------------------------------------------------------------------------- members --
    def set_peer(self, node_id: int, endpoint_id: str, addrs: Sequence[tuple[str, int]]) -> None:
        """Add or update a member. A changed key drops every connection made under the old one."""
        if node_id == self.node_id:
            return  # Raft never sends to itself, and we never accept our own id from the network
        endpoint_id = endpoint_id.lower()
        if len(endpoint_id) != 64 or not all(c in "0123456789abcdef" for c in endpoint_id):
            raise ValueError(f"invalid endpoint id for node {node_id}: {endpoint_id!r}")
        new_addrs = tuple((str(h), int(p)) for h, p in addrs)
        peer = self._peers.get(node_id)
        if peer is not None and peer.endpoint_id == endpoint_id:
            if peer.addrs != new_addrs:
                peer.addrs = new_addrs
                if not peer.connected:
                    peer.wake()  # cut a running backoff short: the new address may work now
            return
        if peer is not None:
            self._drop_peer(peer)
        peer = _Peer(node_id=node_id, endpoint_id=endpoint_id, addrs=new_addrs)
        self._peers[node_id] = peer
        if self._started and not self._closing:
            self._spawn(peer)

    def remove_peer(self, node_id: int) -> None:
        peer = self._peers.pop(node_id, None)
        if peer is not None:
            self._drop_peer(peer)

    def _drop_peer(self, peer: _Peer) -> None:
        # Its inbound connections lose their authorisation together with its membership (or key).
        peer.queue.clear()
        if peer.task is not None:
            peer.task.cancel()
            peer.task = None
        for conn in list(self._inbound):
            if conn.node_id == peer.node_id and conn.task is not None:
                conn.task.cancel()

    def _spawn(self, peer: _Peer) -> None:
        if peer.task is None:
            peer.task = asyncio.get_running_loop().create_task(
                self._run_peer(peer), name=f"raft-net-{self.node_id}->{peer.node_id}"
            )

    # ------------------------------------------------------------------------------- sending --
    def send(self, msg: Message) -> None:
        """Queue `msg` for `msg.to`; drops (and counts) it if the peer is unknown, backing off or full."""
        try:
            peer = self._peers.get(msg.to)
            if peer is None or self._closing:
                self._dropped_unknown += 1
                return
            if not peer.accepting or len(peer.queue) >= self._max_queue:
                peer.dropped += 1
                return
            writer = peer.idle_writer
            # Only with nothing queued: a message must not overtake one waiting for the pump.
            if writer is not None and not peer.queue and self._write_now(peer, writer, msg):
                return
            peer.queue.append(msg)
            peer.wake()
        except Exception:  # must never raise into the driver
            log.exception("raft transport send failed")

    def _write_now(self, peer: _Peer, writer: asyncio.StreamWriter, msg: Message) -> bool:
        """Write `msg` straight to the idle connection; False leaves it to the pump.

        This takes a turn of the event loop (the pump task's wake-up) off every message's path, and
        lets a leader's appends leave before its own fsync starts, whether that runs on the WAL
        thread (which would hold the GIL until its syscall) or not."""
        if writer.transport.is_closing():
            return False
        try:
            payload = encode_message(msg)
        except Exception:
            log.exception("cannot encode raft message", extra={"type": int(msg.type)})
            peer.dropped += 1
            return True
        if len(payload) > WRITE_CHUNK:  # large appends go out in chunks, with back-pressure
            return False
        writer.write(LEN.pack(len(payload)) + payload)
        peer.sent += 1
        if writer.transport.get_write_buffer_size() > WRITE_CHUNK:
            # The peer is slow to read: let the pump wait for the buffer to drain (or time out).
            peer.idle_writer = None
            peer.wake()
        return True

    async def _run_peer(self, peer: _Peer) -> None:
        backoff = BACKOFF_MIN
        # Bounded by cancellation: close() and remove_peer()/set_peer() cancel this task.
        while not self._closing:
            peer.accepting = True
            try:
                reader, writer = await self._dial(peer.node_id, peer.endpoint_id, peer.addrs, RAFT_CHANNEL)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if isinstance(exc.__cause__, HandshakeError):
                    peer.handshake_failures += 1
                self._failed(peer, "connect failed", exc)
                await self._backoff(peer, backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            backoff = BACKOFF_MIN
            if peer.ever_connected:
                peer.reconnects += 1
            peer.ever_connected = True
            peer.connected = True
            peer.consecutive_failures = 0
            log.debug("raft peer connected", extra={"node": self.node_id, "peer": peer.node_id})
            failure: BaseException | None = None
            try:
                await self._pump(peer, reader, writer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failure = exc
            finally:
                peer.connected = False
                abort(writer)
            if self._closing:
                return
            self._failed(peer, "connection lost", failure)
            await self._backoff(peer, backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    def _failed(self, peer: _Peer, what: str, exc: BaseException | None) -> None:
        peer.dropped += len(peer.queue)
        peer.queue.clear()
        peer.accepting = False
        peer.failures += 1
        peer.consecutive_failures += 1
        # Log the first failure of a streak loudly; the retries of a down peer only at debug level.
        level = logging.WARNING if peer.consecutive_failures == 1 else logging.DEBUG
        log.log(
            level,
            "raft peer unreachable: %s",
            what,
            extra={"node": self.node_id, "peer": peer.node_id, "error": repr(exc)},
        )
        if self._on_unreachable is not None:
            try:
                self._on_unreachable(peer.node_id)
            except Exception:
                log.exception("on_unreachable callback failed")

    async def _backoff(self, peer: _Peer, delay: float) -> None:
        # Jitter keeps the members of a cluster that lost a node from reconnecting in lockstep.
        await self._wait(peer, min(BACKOFF_MAX, delay * (0.5 + random.random())))

    async def _wait(self, peer: _Peer, timeout: float | None) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        peer.waiter = fut
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            pass
        finally:
            peer.waiter = None

    async def _pump(self, peer: _Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # The server never writes on a Raft channel after accepting: any read completing means EOF,
        # reset or a protocol violation. Watching it lets an idle connection notice a dead peer.
        eof = asyncio.get_running_loop().create_task(reader.read(1))
        eof.add_done_callback(lambda _: peer.wake())
        try:
            # Bounded by the connection: ends on EOF, a write error/timeout, or cancellation.
            while not self._closing:
                if eof.done():
                    raise ConnectionResetError("connection closed by peer")
                if not peer.queue:
                    if writer.transport.get_write_buffer_size() > WRITE_CHUNK:
                        async with asyncio.timeout(DRAIN_TIMEOUT):
                            await writer.drain()
                        continue
                    peer.idle_writer = writer
                    try:
                        await self._wait(peer, None)
                    finally:
                        peer.idle_writer = None
                    continue
                batch, peer.queue = peer.queue, deque()
                parts: list[bytes] = []
                encoded = 0
                for msg in batch:
                    try:
                        payload = encode_message(msg)
                    except Exception:
                        log.exception("cannot encode raft message", extra={"type": int(msg.type)})
                        peer.dropped += 1
                        continue
                    parts.append(LEN.pack(len(payload)))
                    parts.append(payload)
                    encoded += 1
                await self._write(writer, b"".join(parts))
                peer.sent += encoded
        finally:
            eof.cancel()

    async def _write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        if len(data) <= WRITE_CHUNK:
            writer.write(data)
            # Most writes leave the socket's buffer nearly empty: skip the deadline's timer then
            # (drain() would return at once anyway). A peer that stops reading still fills it.
            if writer.transport.get_write_buffer_size() > WRITE_CHUNK:
                async with asyncio.timeout(DRAIN_TIMEOUT):
                    await writer.drain()
            return
        view = memoryview(data)
        for off in range(0, len(data), WRITE_CHUNK):
            writer.write(view[off : off + WRITE_CHUNK])
            async with asyncio.timeout(DRAIN_TIMEOUT):
                await writer.drain()

    # ------------------------------------------------------------------------------- dialling --
    async def _dial(
        self, node_id: NodeId, endpoint_id: str, addrs: Sequence[tuple[str, int]], kind: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if not addrs:
            raise ConnectionError(f"no address known for node {node_id}")
        last: Exception | None = None
        for host, port in addrs:
            try:
                return await self._dial_one(host, port, endpoint_id, kind)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                last = exc
        raise ConnectionError(f"cannot connect to node {node_id} at {list(addrs)}: {last!r}") from last

    async def _dial_one(
        self, host: str, port: int, endpoint_id: str, kind: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        async with asyncio.timeout(self._connect_timeout):
            reader, writer = await asyncio.open_connection(
                host,
                port,
                ssl=self._client_ctx,
                server_hostname="",  # no hostname check: the server is pinned by key below
                ssl_handshake_timeout=self._connect_timeout,
                local_addr=self._local_addr,
                limit=STREAM_LIMIT,
            )
        try:
            tune_socket(writer)
            got = peer_endpoint_id(writer)
            if got is None:
                raise HandshakeError("server presented no certificate")
            if got != endpoint_id:
                raise HandshakeError(f"server key {got[:16]}… is not the pinned {endpoint_id[:16]}…")
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                writer.write(bytes((kind,)))
                nonce = await reader.readexactly(NONCE_SIZE)
                signature = self._identity.private_key.sign(
                    auth_message(
                        nonce, bytes.fromhex(endpoint_id), self._key, kind, self._secret, self._listen_port
                    )
                )
                body = AUTH.pack(self.node_id, self._key, signature, self._listen_port)
                writer.write(LEN.pack(len(body)) + body)
                answer = await reader.readexactly(1)
            if answer != ACCEPTED:
                raise HandshakeError("server sent an unexpected handshake answer")
        except asyncio.IncompleteReadError as exc:
            abort(writer)
            raise HandshakeError("server refused the connection") from exc
        except BaseException:
            abort(writer)
            raise
        return reader, writer

    # -------------------------------------------------------------------------------- channels --
    def register_channel(
        self,
        kind: int,
        handler: Callable[[int, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    ) -> None:
        """Serve channel `kind` (2..255) to members. `handler(node_id, reader, writer)` runs after
        the peer is authenticated; the connection is closed when it returns."""
        check_kind(kind)
        self._open_channels.pop(kind, None)
        self._channels[kind] = handler

    def register_open_channel(self, kind: int, authenticate: OpenChannelAuth) -> None:
        """Serve channel `kind` (2..255) to callers that have no node key (clients).

        The member handshake is skipped: right after the kind byte `authenticate(reader, writer)`
        checks the caller's own credential (e.g. a one-time token issued over the cookie-authenticated
        RPC) and returns the session to run, or None to refuse. It runs under the pre-auth deadline
        and the connection stays pending until it returns, exactly like a member's handshake, so a
        caller that sends the kind byte and nothing else is dropped within seconds. The caller has
        still pinned this node's key, and still receives (and ignores) the nonce."""
        check_kind(kind)
        self._channels.pop(kind, None)
        self._open_channels[kind] = authenticate

    async def open_channel(
        self, node_id: int, kind: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Open an authenticated channel of `kind` to member `node_id`; the caller owns the streams.
        Raises `ConnectionError` (or `TimeoutError`) when it cannot be established."""
        check_kind(kind)
        peer = self._peers.get(node_id)
        if peer is None:
            raise ConnectionError(f"node {node_id} is not a known member")
        if self._closing:
            raise ConnectionError("transport is closed")
        return await self._dial(peer.node_id, peer.endpoint_id, peer.addrs, kind)

    # ------------------------------------------------------------------------------ accepting --
    async def _accept_loop(self, lsock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        # Bounded by cancellation: close() cancels this task.
        while not self._closing:
            try:
                sock, addr = await loop.sock_accept(lsock)
            except OSError as exc:
                self._accept_errors += 1
                if exc.errno in _ACCEPT_RESOURCE_ERRNOS:
                    self._log_flood("raft listener out of resources; accepting again shortly", exc)
                    await asyncio.sleep(ACCEPT_RETRY_DELAY)
                # Other errors (ECONNABORTED: the peer gave up while queued) concern one connection.
                continue
            self._admit(sock, addr)

    def _admit(self, sock: socket.socket, addr: Any) -> None:
        """Take a freshly accepted connection into the pending set, or refuse it at once."""
        source = str(addr[0]) if isinstance(addr, tuple) and addr else "?"
        if self._closing:
            sock.close()
            return
        if self._pending_by_source.get(source, 0) >= self._max_pending_per_source:
            self._refused_source_limit += 1
            self._log_flood("refused raft connection: too many pending from its source", source)
            sock.close()
            return
        if len(self._pending) >= self._max_pending:
            self._evict_pending()
        sock.setblocking(False)
        conn = _Inbound(source=source)
        self._inbound.add(conn)
        self._pending[conn] = None
        self._pending_by_source[source] = self._pending_by_source.get(source, 0) + 1
        conn.task = asyncio.get_running_loop().create_task(
            self._serve_inbound(conn, sock), name=f"raft-net-{self.node_id}-inbound"
        )

    def _evict_pending(self) -> None:
        """Make room for a new connection: drop the oldest pending connection of the source that
        holds the most. A member or client that needs one slot for a few milliseconds is thereby
        never the victim while any flooding source holds more than it does."""
        most = max(self._pending_by_source.values())
        victim = next(c for c in self._pending if self._pending_by_source[c.source] == most)
        self._unpend(victim)
        self._evicted_pending += 1
        self._log_flood("evicted the oldest pending raft connection: too many pending", victim.source)
        if victim.task is not None:
            victim.task.cancel()
        if victim.writer is not None:
            abort(victim.writer)

    def _unpend(self, conn: _Inbound) -> None:
        if self._pending.pop(conn, 0) is None:  # it was pending: release its source's slot
            left = self._pending_by_source[conn.source] - 1
            if left:
                self._pending_by_source[conn.source] = left
            else:
                del self._pending_by_source[conn.source]

    def _log_flood(self, what: str, detail: object) -> None:
        # A flood refuses thousands of connections a second: warn at most every
        # REFUSAL_LOG_INTERVAL seconds, with the totals, and keep the rest at debug level.
        log.log(
            self._flood_log.level(asyncio.get_running_loop().time()),
            what,
            extra={
                "node": self.node_id,
                "detail": repr(detail),
                "pending": len(self._pending),
                "refused_source_limit_total": self._refused_source_limit,
                "evicted_total": self._evicted_pending,
            },
        )

    async def _serve_inbound(self, conn: _Inbound, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        handed_over = False
        writer: asyncio.StreamWriter | None = None
        try:
            try:
                # One deadline for the whole pre-auth phase: a connection that never completes TLS,
                # never sends its kind byte or never its credential costs one slot for this long.
                async with asyncio.timeout(self._auth_timeout):
                    reader = asyncio.StreamReader(limit=STREAM_LIMIT, loop=loop)
                    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
                    handed_over = True  # from here the loop's transport owns (and closes) the socket
                    transport, _ = await loop.connect_accepted_socket(
                        lambda: protocol, sock, ssl=self._server_ctx, ssl_handshake_timeout=self._auth_timeout
                    )
                    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
                    conn.writer = writer
                    node_id, kind, session = await self._authenticate(reader, writer)
            except (HandshakeError, OSError, EOFError, TimeoutError, ValueError) as exc:
                self._refused(conn, exc)
                return
            finally:
                self._unpend(conn)
            conn.node_id = node_id
            if session is not None:
                await session()
            elif kind == RAFT_CHANNEL:
                await self._read_raft(node_id, reader)
            else:
                await self._channels[kind](node_id, reader, writer)
        except asyncio.CancelledError:
            pass  # close(), an eviction or the peer's removal; the connection is torn down below
        except Exception:
            log.exception("raft connection handler failed", extra={"node": self.node_id})
        finally:
            self._inbound.discard(conn)
            self._unpend(conn)
            if writer is not None:
                abort(writer)
            elif not handed_over:
                sock.close()  # cancelled before the loop took the socket over

    def _refused(self, conn: _Inbound, exc: BaseException) -> None:
        self._refused_handshakes += 1
        # A misconfigured or removed member retries every couple of seconds forever: warn at most
        # every REFUSAL_LOG_INTERVAL seconds, keep the rest at debug level.
        log.log(
            self._refusal_log.level(asyncio.get_running_loop().time()),
            "refused raft connection",
            extra={
                "node": self.node_id,
                "peer_addr": conn.source,
                "error": repr(exc),
                "refused_total": self._refused_handshakes,
            },
        )

    async def _authenticate(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[int, int, Session | None]:
        """The member handshake (or an open channel's own check); the caller bounds it in time.
        Returns (node id, kind, the session of an open channel -- None on a member channel, and
        for an open channel that refused the caller)."""
        tune_socket(writer)
        nonce = os.urandom(NONCE_SIZE)
        writer.write(nonce)
        kind = (await reader.readexactly(1))[0]
        open_auth = self._open_channels.get(kind)
        if open_auth is not None:
            session = await open_auth(reader, writer)
            if session is None:
                # The channel refused the caller and wrote its answer: deliver it, and let the
                # caller read it before the connection goes (still under the pre-auth deadline).
                await linger(reader, writer)
                raise HandshakeError(f"channel {kind} refused the caller's credential")
            return 0, kind, session
        if kind != RAFT_CHANNEL and kind not in self._channels:
            raise HandshakeError(f"unknown channel kind {kind}")
        (length,) = LEN.unpack(await reader.readexactly(LEN.size))
        if length > MAX_HANDSHAKE_FRAME or length != AUTH.size:
            raise HandshakeError(f"bad auth frame length {length}")
        node_id, client_key, signature, listen_port = AUTH.unpack(await reader.readexactly(length))
        peer = self._peers.get(node_id)
        # Membership first: only a key registered for exactly this node id may authenticate. A
        # node that has not joined a cluster yet knows no members; `admit_unknown` lets it accept
        # the nodes that prove the cluster cookie (through the signature), so it can be added.
        admitted = False
        if peer is None:
            if self._admit_unknown is None or not self._admit_unknown(node_id):
                raise HandshakeError(f"key {client_key.hex()[:16]}… is not member {node_id}")
            admitted = True
        elif peer.endpoint_id != client_key.hex():
            raise HandshakeError(f"key {client_key.hex()[:16]}… is not member {node_id}")
        try:
            ed25519.Ed25519PublicKey.from_public_bytes(client_key).verify(
                signature, auth_message(nonce, self._key, client_key, kind, self._secret, listen_port)
            )
        except InvalidSignature as exc:
            raise HandshakeError(f"bad signature from node {node_id}") from exc
        if admitted and listen_port:
            # A node that has not joined yet must be able to answer the leader that is adding it,
            # before the replicated membership tells it the leader's address: dial back the
            # (authenticated) source host on the port it advertised.
            source = writer.get_extra_info("peername")
            if source:
                self.set_peer(node_id, client_key.hex(), [(str(source[0]), listen_port)])
        writer.write(ACCEPTED)
        await writer.drain()
        return node_id, kind, None

    async def _read_raft(self, node_id: NodeId, reader: asyncio.StreamReader) -> None:
        readexactly = reader.readexactly
        unpack = LEN.unpack
        me = self.node_id
        local = _LOCAL_TYPES
        # Bounded by the connection: ends on EOF, a bad frame, or cancellation.
        while True:
            try:
                header = await readexactly(LEN.size)
            except asyncio.IncompleteReadError as exc:
                if exc.partial:
                    log.warning("raft connection ended mid-frame", extra={"peer": node_id})
                return
            (length,) = unpack(header)
            if length > MAX_FRAME:
                self._bad_frames += 1
                log.warning("raft frame too large; closing", extra={"peer": node_id, "length": length})
                return
            try:
                payload = await readexactly(length)
            except asyncio.IncompleteReadError:
                log.warning("raft connection ended mid-frame", extra={"peer": node_id})
                return
            try:
                msg = decode_message(payload)
            except ValueError as exc:
                self._bad_frames += 1
                log.warning("bad raft frame; closing", extra={"peer": node_id, "error": str(exc)})
                return
            if msg.frm != node_id or msg.to != me or msg.type in local:
                # Authenticated peer, but it speaks for someone else (or injects local events).
                self._foreign_messages += 1
                continue
            self._received += 1
            try:
                self._deliver(msg)
            except Exception:
                log.exception("raft deliver callback failed")

    # --------------------------------------------------------------------------------- status --
    def stats(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "listening": self._bound,
            "inbound_connections": sum(1 for c in self._inbound if c.node_id is not None),
            "received": self._received,
            "dropped_unknown_peer": self._dropped_unknown,
            "refused_handshakes": self._refused_handshakes,
            "bad_frames": self._bad_frames,
            "foreign_messages": self._foreign_messages,
            "pending_connections": len(self._pending),
            "refused_source_limit": self._refused_source_limit,
            "evicted_pending": self._evicted_pending,
            "accept_errors": self._accept_errors,
            "peers": {
                p.node_id: {
                    "connected": p.connected,
                    "queued": len(p.queue),
                    "sent": p.sent,
                    "dropped": p.dropped,
                    "reconnects": p.reconnects,
                    "failures": p.failures,
                    "handshake_failures": p.handshake_failures,
                    "addrs": list(p.addrs),
                }
                for p in self._peers.values()
            },
        }
