"""The peer/bulk listener's bounds on unauthenticated connections (issue 19 item 6), over real
TLS/TCP sockets on loopback: one pre-auth deadline from accept() to authentication, a bound per
source address, eviction of the biggest source's oldest connection when the pending set is full,
and an open channel's credential check counted as pre-auth. Every wait polls with a deadline."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from harness import run_on_loop as run
from harness import wait_until

from aspen.peer.transport import RAFT_CHANNEL, TcpTransport
from aspen.raft.core.types import Message, MessageType
from aspen.rpc.identity import NodeIdentity

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
LOOPS = ["asyncio", "uvloop"]


def transport(node_id: int, got: list[Message], **limits: Any) -> TcpTransport:
    return TcpTransport(
        node_id=node_id, identity=NodeIdentity.generate(), host=HOST, port=0, deliver=got.append, **limits
    )


def client_ctx() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Idle:
    """A connection that goes only as far as `stage` and then waits: "tcp" (no TLS), "tls" (no
    kind byte), or a kind byte."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, watch: bool) -> None:
        self.reader, self.writer = reader, writer
        # Reads (and drops) everything until the node closes; without `watch` the test reads.
        self.closed_by_node = asyncio.ensure_future(self._until_eof() if watch else asyncio.sleep(0))

    @classmethod
    async def open(
        cls, addr: tuple[str, int], stage: str | int, source: str = HOST, *, watch: bool = True
    ) -> Idle:
        tls = stage != "tcp"
        reader, writer = await asyncio.open_connection(
            *addr,
            ssl=client_ctx() if tls else None,
            server_hostname="" if tls else None,
            local_addr=(source, 0),
        )
        if isinstance(stage, int):
            writer.write(bytes((stage,)))
        return cls(reader, writer, watch)

    async def _until_eof(self) -> None:
        try:
            while await self.reader.read(65536):
                pass
        except OSError:
            pass

    def close(self) -> None:
        self.closed_by_node.cancel()
        self.writer.transport.abort()


def hb(frm: int, to: int, term: int) -> Message:
    return Message(MessageType.HEARTBEAT, to=to, frm=frm, term=term, commit=term)


async def pair(a: TcpTransport, b: TcpTransport) -> None:
    """Start both and make each the other's member."""
    _, port_a = await a.start()
    _, port_b = await b.start()
    a.set_peer(b.node_id, b._identity.endpoint_id, [(HOST, port_b)])
    b.set_peer(a.node_id, a._identity.endpoint_id, [(HOST, port_a)])


@pytest.mark.parametrize("loop", LOOPS)
def test_every_pre_auth_stage_is_dropped_at_the_deadline(loop: str) -> None:
    async def go() -> None:
        got: list[Message] = []
        a = transport(1, got, auth_timeout=0.5)

        async def token_check(reader: asyncio.StreamReader, _: asyncio.StreamWriter) -> None:
            await reader.readexactly(32)
            return None

        a.register_open_channel(4, token_check)
        addr = await a.start()
        conns: list[Idle] = []
        try:
            started = time.monotonic()
            for stage in ("tcp", "tls", RAFT_CHANNEL, 4):
                conns.append(await Idle.open(addr, stage))
            await wait_until(lambda: a.stats()["pending_connections"] == 4, what="all pending")
            await asyncio.wait_for(asyncio.gather(*(c.closed_by_node for c in conns)), 10)
            held = time.monotonic() - started
            assert held < 5.0, held  # the deadline (0.5 s) plus scheduling, never the old 30 s
            assert a.stats()["pending_connections"] == 0
            assert a.stats()["refused_handshakes"] == 4
        finally:
            for c in conns:
                c.close()
            await a.close()

    run(go(), loop)


def test_a_source_over_its_bound_is_refused_at_accept() -> None:
    async def go() -> None:
        got: list[Message] = []
        a = transport(1, got, auth_timeout=30, max_pending_per_source=3)
        addr = await a.start()
        conns: list[Idle] = []
        try:
            for _ in range(5):
                conns.append(await Idle.open(addr, "tcp", source="127.0.0.2"))
            await wait_until(lambda: a.stats()["refused_source_limit"] == 2, what="two refused")
            await asyncio.wait_for(asyncio.gather(*(c.closed_by_node for c in conns[3:])), 10)
            assert a.stats()["pending_connections"] == 3
            assert not any(c.closed_by_node.done() for c in conns[:3])
            # Another source still gets in.
            conns.append(await Idle.open(addr, "tcp", source="127.0.0.3"))
            await wait_until(lambda: a.stats()["pending_connections"] == 4, what="other source pending")
        finally:
            for c in conns:
                c.close()
            await a.close()

    run(go())


@pytest.mark.parametrize("loop", LOOPS)
def test_a_full_pending_set_evicts_the_biggest_source_and_members_still_get_in(loop: str) -> None:
    async def go() -> None:
        got_a: list[Message] = []
        a = transport(1, got_a, auth_timeout=30, max_pending=4, max_pending_per_source=10)
        b = transport(2, [])
        await pair(a, b)
        addr = a._bound
        assert addr is not None
        conns: list[Idle] = []
        try:
            for _ in range(3):
                conns.append(await Idle.open(addr, "tls", source="127.0.0.2"))
            conns.append(await Idle.open(addr, "tls", source="127.0.0.3"))
            await wait_until(lambda: a.stats()["pending_connections"] == 4, what="pending set full")
            # A fifth connection from a third source: the oldest of 127.0.0.2's three goes.
            conns.append(await Idle.open(addr, "tls", source="127.0.0.4"))
            await asyncio.wait_for(conns[0].closed_by_node, 10)
            assert a.stats()["evicted_pending"] == 1
            assert not conns[3].closed_by_node.done()  # the source with one connection kept it
            # The pending set is full of idle connections, yet a member authenticates at once.
            b.send(hb(2, 1, 7))
            await wait_until(lambda: [m.term for m in got_a] == [7], what="member's message")
            assert a.stats()["inbound_connections"] == 1
        finally:
            for c in conns:
                c.close()
            await asyncio.gather(a.close(), b.close())

    run(go(), loop)


def test_an_open_channel_serves_only_after_its_credential_and_refuses_with_an_answer() -> None:
    async def go() -> None:
        a = transport(1, [], auth_timeout=5)
        served: list[bytes] = []

        async def check(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> Callable[[], Awaitable[None]] | None:
            token = await reader.readexactly(4)
            if token != b"good":
                writer.write(b"no")
                return None

            async def session() -> None:
                served.append(await reader.readexactly(5))
                writer.write(b"ok")
                await writer.drain()
                await reader.read(1)

            return session

        a.register_open_channel(9, check)
        addr = await a.start()
        good = await Idle.open(addr, 9, watch=False)
        bad = await Idle.open(addr, 9, watch=False)
        try:
            for c in (good, bad):
                await asyncio.wait_for(c.reader.readexactly(32), 10)  # the nonce
            good.writer.write(b"good" + b"hello")
            bad.writer.write(b"evil")
            assert await asyncio.wait_for(good.reader.readexactly(2), 10) == b"ok"
            assert await asyncio.wait_for(bad.reader.readexactly(2), 10) == b"no"
            assert served == [b"hello"]
            await wait_until(lambda: a.stats()["pending_connections"] == 0, what="nothing pending")
            assert a.stats()["refused_handshakes"] == 1
        finally:
            good.close()
            bad.close()
            await a.close()

    run(go())
