"""`TcpTransport` over real TLS/TCP sockets on 127.0.0.1.

Every test runs its own event loop (asyncio, and uvloop where it matters) under an overall deadline;
waits poll a condition with a deadline instead of sleeping for a fixed time.
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest
from harness import run_on_loop as run
from harness import wait_until

from aspen import kv
from aspen.node.state import NodeStateMachine
from aspen.peer.transport import RAFT_CHANNEL, TcpTransport
from aspen.raft.core.types import (
    ConfState,
    Entry,
    Message,
    MessageType,
    Snapshot,
    SnapshotMeta,
    StateRole,
)
from aspen.raft.node import DriverConfig, RaftNode
from aspen.rpc.identity import NodeIdentity

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
LOOPS = ["asyncio", "uvloop"]


class Node:
    """One transport plus everything it delivered and every unreachable report."""

    def __init__(
        self, node_id: int, identity: NodeIdentity | None = None, port: int = 0, claimed_id: int | None = None
    ) -> None:
        self.id = node_id
        self.identity = identity or NodeIdentity.generate()
        self.got: list[Message] = []
        self.unreachable: list[int] = []
        self.port = port
        self.transport = self._make(claimed_id)

    def _make(self, claimed_id: int | None = None) -> TcpTransport:
        return TcpTransport(
            node_id=claimed_id or self.id,
            identity=self.identity,
            host=HOST,
            port=self.port,
            deliver=self.got.append,
            on_unreachable=self.unreachable.append,
        )

    async def start(self) -> None:
        _, self.port = await self.transport.start()

    async def restart(self) -> None:
        await self.transport.close()
        self.transport = self._make()
        _, port = await self.transport.start()
        assert port == self.port

    @property
    def addr(self) -> tuple[str, int]:
        return (HOST, self.port)


async def mesh(*nodes: Node) -> None:
    for n in nodes:
        await n.start()
    for n in nodes:
        for m in nodes:
            if m is not n:
                n.transport.set_peer(m.id, m.identity.endpoint_id, [m.addr])


async def close_all(*nodes: Node) -> None:
    await asyncio.gather(*(n.transport.close() for n in nodes))


def refused(node: Node) -> int:
    count: int = node.transport.stats()["refused_handshakes"]
    return count


def hb(frm: int, to: int, term: int, ctx: bytes = b"") -> Message:
    return Message(MessageType.HEARTBEAT, to=to, frm=frm, term=term, commit=term, context=ctx)


@pytest.mark.parametrize("loop", LOOPS)
def test_messages_are_delivered_both_ways_in_order(loop: str) -> None:
    async def go() -> None:
        a, b, c = Node(1), Node(2), Node(3)
        await mesh(a, b, c)
        try:
            entries = tuple(Entry(term=1, index=i, data=b"x" * i) for i in range(1, 50))
            for k in range(1, 301):
                for src in (a, b, c):
                    for dst in (a, b, c):
                        if src is not dst:
                            src.transport.send(hb(src.id, dst.id, k))
                a.transport.send(Message(MessageType.APP, to=2, frm=1, term=k, index=k, entries=entries))
            await wait_until(
                lambda: len(a.got) == 600 and len(b.got) == 900 and len(c.got) == 600, what="all messages"
            )
            for dst in (a, b, c):
                for src in (a, b, c):
                    if src is dst:
                        continue
                    terms = [m.term for m in dst.got if m.frm == src.id and m.type == MessageType.HEARTBEAT]
                    assert terms == list(range(1, 301))
            apps = [m for m in b.got if m.type == MessageType.APP]
            assert [m.index for m in apps] == list(range(1, 301))
            assert all(m.entries == entries for m in apps)
            st = a.transport.stats()
            assert st["peers"][2]["connected"] and st["peers"][2]["sent"] == 600
            assert st["peers"][2]["dropped"] == 0 and not a.unreachable
        finally:
            await close_all(a, b, c)

    run(go(), loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_large_snapshot_message_is_delivered(loop: str) -> None:
    async def go() -> None:
        a, b = Node(1), Node(2)
        await mesh(a, b)
        try:
            data = bytes(range(256)) * (20 * 1024 * 1024 // 256)
            snap = Snapshot(SnapshotMeta(index=1000, term=7, conf_state=ConfState((1, 2), (3,))), data)
            a.transport.send(Message(MessageType.SNAP, to=2, frm=1, term=7, snapshot=snap))
            a.transport.send(hb(1, 2, 8))  # queued behind the snapshot on the same connection
            await wait_until(lambda: len(b.got) == 2, timeout=30, what="snapshot")
            assert b.got[0].snapshot == snap
            assert b.got[1].term == 8
        finally:
            await close_all(a, b)

    run(go(), loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_an_idle_connection_takes_a_message_at_once_and_a_large_one_keeps_its_place(loop: str) -> None:
    async def go() -> None:
        a, b = Node(1), Node(2)
        await mesh(a, b)
        try:
            a.transport.send(hb(1, 2, 1))
            await wait_until(lambda: len(b.got) == 1, what="the connection")
            await wait_until(lambda: a.transport._peers[2].idle_writer is not None, what="an idle pump")
            a.transport.send(hb(1, 2, 2))
            # Written by send() itself: no turn of the loop has passed.
            assert a.transport.stats()["peers"][2]["sent"] == 2
            data = b"s" * (3 * 1024 * 1024)  # larger than one write: it goes through the pump
            snap = Snapshot(SnapshotMeta(index=9, term=3, conf_state=ConfState((1, 2))), data)
            a.transport.send(Message(MessageType.SNAP, to=2, frm=1, term=3, snapshot=snap))
            a.transport.send(hb(1, 2, 4))  # must not overtake the snapshot
            await wait_until(lambda: len(b.got) == 4, timeout=30, what="all four messages")
            assert [m.term for m in b.got] == [1, 2, 3, 4]
            assert b.got[2].snapshot == snap
        finally:
            await close_all(a, b)

    run(go(), loop)


def test_unregistered_key_is_refused() -> None:
    async def go() -> None:
        a, b = Node(1), Node(2)
        intruder = Node(3)
        await mesh(a, b)
        await intruder.start()
        # The intruder knows a's address and key, but a never registered the intruder's key.
        intruder.transport.set_peer(1, a.identity.endpoint_id, [a.addr])
        try:
            intruder.transport.send(hb(3, 1, 1))
            await wait_until(lambda: refused(a) >= 1 and bool(intruder.unreachable), what="refusal")
            b.transport.send(hb(2, 1, 1))  # a member still gets through
            await wait_until(lambda: len(a.got) == 1, what="member message")
            assert [m.frm for m in a.got] == [2]
            assert intruder.unreachable[0] == 1
            peer = intruder.transport.stats()["peers"][1]
            assert not peer["connected"] and peer["handshake_failures"] >= 1
        finally:
            await close_all(a, b, intruder)

    run(go())


def test_member_claiming_another_node_id_is_refused() -> None:
    async def go() -> None:
        a, b, c = Node(1), Node(2), Node(3)
        await mesh(a, b, c)
        # c's key is a member (as node 3), but this transport claims to be node 2 with it.
        impostor = Node(3, identity=c.identity, claimed_id=2)
        await impostor.start()
        impostor.transport.set_peer(1, a.identity.endpoint_id, [a.addr])
        try:
            impostor.transport.send(hb(2, 1, 99))
            await wait_until(lambda: refused(a) >= 1 and bool(impostor.unreachable), what="refusal")
            # A legitimately authenticated member cannot speak for another node either.
            c.transport.send(hb(2, 1, 98))  # routed to node 1, but frm says node 2
            c.transport.send(Message(MessageType.HUP, to=1, frm=3))  # local type: never from the network
            c.transport.send(hb(3, 1, 5))
            await wait_until(lambda: len(a.got) == 1, what="c's own message")
            assert [(m.frm, m.term) for m in a.got] == [(3, 5)]
            assert a.transport.stats()["foreign_messages"] == 2
        finally:
            await close_all(a, b, c, impostor)

    run(go())


def test_wrong_server_key_is_not_trusted() -> None:
    async def go() -> None:
        a, b = Node(1), Node(2)
        await mesh(a, b)
        # a believes node 2 has another key: b's certificate fails the pin, nothing is sent.
        a.transport.set_peer(2, NodeIdentity.generate().endpoint_id, [b.addr])
        try:
            a.transport.send(hb(1, 2, 1))
            await wait_until(lambda: len(a.unreachable) >= 1, what="pin failure")
            assert not b.got
            peer = a.transport.stats()["peers"][2]
            assert peer["connected"] is False and peer["handshake_failures"] >= 1
        finally:
            await close_all(a, b)

    run(go())


@pytest.mark.parametrize("loop", LOOPS)
def test_reconnects_after_the_receiver_restarts_on_the_same_port(loop: str) -> None:
    async def go() -> None:
        a, b = Node(1), Node(2)
        await mesh(a, b)
        try:
            a.transport.send(hb(1, 2, 1))
            await wait_until(lambda: len(b.got) == 1, what="first message")
            await b.restart()
            b.got.clear()
            b.transport.set_peer(1, a.identity.endpoint_id, [a.addr])
            await wait_until(lambda: len(a.unreachable) >= 1, what="unreachable report")
            assert set(a.unreachable) == {2}
            # Raft retransmits; do the same until one gets through the new connection.
            term = 2
            deadline = time.monotonic() + 10
            while not b.got and time.monotonic() < deadline:
                a.transport.send(hb(1, 2, term))
                term += 1
                await asyncio.sleep(0.01)  # the retransmission interval, bounded by the deadline
            assert b.got and b.got[0].term >= 2
            peer = a.transport.stats()["peers"][2]
            assert peer["connected"] and peer["reconnects"] >= 1
        finally:
            await close_all(a, b)

    run(go(), loop)


def test_send_to_unknown_peer_is_dropped_and_counted() -> None:
    async def go() -> None:
        a = Node(1)
        await a.start()
        try:
            a.transport.send(hb(1, 99, 1))
            a.transport.send(hb(1, 1, 1))  # ourselves: never a peer
            assert a.transport.stats()["dropped_unknown_peer"] == 2
        finally:
            await a.transport.close()
        a.transport.send(hb(1, 99, 1))  # after close: still no exception

    run(go())


def test_full_queue_drops_instead_of_blocking() -> None:
    async def go() -> None:
        a = Node(1)
        a.transport = TcpTransport(
            node_id=1, identity=a.identity, host=HOST, port=0, deliver=a.got.append, max_queue=10
        )
        await a.start()
        # A peer whose address refuses connections: messages queue while the first connect runs.
        dead = _unused_port()
        a.transport.set_peer(2, NodeIdentity.generate().endpoint_id, [(HOST, dead)])
        try:
            for k in range(100):
                a.transport.send(hb(1, 2, k))
            st = a.transport.stats()["peers"][2]
            assert st["queued"] <= 10 and st["dropped"] >= 90
        finally:
            await a.transport.close()

    run(go())


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("loop", LOOPS)
def test_close_is_prompt_with_unreachable_peers(loop: str) -> None:
    async def go() -> None:
        # One peer refuses TCP, the other accepts TCP but never speaks TLS (a hung handshake).
        accepted: list[asyncio.StreamWriter] = []
        silent = await asyncio.start_server(lambda r, w: accepted.append(w), HOST, 0)
        hung_port = silent.sockets[0].getsockname()[1]
        a = Node(1)
        await a.start()
        a.transport.set_peer(2, NodeIdentity.generate().endpoint_id, [(HOST, _unused_port())])
        a.transport.set_peer(3, NodeIdentity.generate().endpoint_id, [(HOST, hung_port)])
        try:
            a.transport.send(hb(1, 2, 1))
            a.transport.send(hb(1, 3, 1))
            await wait_until(lambda: 2 in a.unreachable, what="refused connect")
            started = time.monotonic()
            await a.transport.close()
            assert time.monotonic() - started < 1.0
        finally:
            silent.close()
            for w in accepted:
                w.close()

    run(go(), loop)


def test_bad_frame_closes_only_that_connection() -> None:
    async def go() -> None:
        a, b = Node(1), Node(2)
        await mesh(a, b)
        try:
            # An authenticated raw Raft channel from b to a (the same handshake the writer uses).
            reader, writer = await b.transport._dial(1, a.identity.endpoint_id, [a.addr], RAFT_CHANNEL)
            good = _frame(hb(2, 1, 1))
            writer.write(good + b"\x00\x00\x00\x03abc" + good)
            await writer.drain()
            assert await asyncio.wait_for(reader.read(1), 5) == b""  # a closed the connection
            writer.close()
            assert [m.term for m in a.got] == [1]
            assert a.transport.stats()["bad_frames"] == 1
            # Oversized length prefix: closed before reading a byte of it.
            reader, writer = await b.transport._dial(1, a.identity.endpoint_id, [a.addr], RAFT_CHANNEL)
            writer.write((512 * 1024 * 1024 + 1).to_bytes(4, "big"))
            assert await asyncio.wait_for(reader.read(1), 5) == b""
            writer.close()
            assert a.transport.stats()["bad_frames"] == 2
            # The listener is unaffected.
            b.transport.send(hb(2, 1, 2))
            await wait_until(lambda: len(a.got) == 2, what="message after bad frames")
        finally:
            await close_all(a, b)

    run(go())


def _frame(msg: Message) -> bytes:
    from aspen.raft.codec import encode_message

    payload = encode_message(msg)
    return len(payload).to_bytes(4, "big") + payload


def test_registered_channel_kind_is_authenticated_and_served() -> None:
    async def go() -> None:
        a, b = Node(1), Node(2)
        seen: list[int] = []

        async def echo(node_id: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen.append(node_id)
            writer.write(await reader.readexactly(5))
            await writer.drain()

        a.transport.register_channel(7, echo)
        await mesh(a, b)
        try:
            reader, writer = await b.transport.open_channel(1, 7)
            writer.write(b"hello")
            assert await asyncio.wait_for(reader.readexactly(5), 5) == b"hello"
            writer.close()
            assert seen == [2]
            with pytest.raises(ConnectionError):
                await b.transport.open_channel(1, 8)  # not registered on a: refused
            with pytest.raises(ConnectionError):
                await b.transport.open_channel(42, 7)  # not a member
            with pytest.raises(ValueError):
                a.transport.register_channel(RAFT_CHANNEL, echo)
        finally:
            await close_all(a, b)

    run(go())


def test_removed_peer_is_disconnected_and_refused() -> None:
    async def go() -> None:
        a, b = Node(1), Node(2)
        await mesh(a, b)
        try:
            b.transport.send(hb(2, 1, 1))
            await wait_until(lambda: len(a.got) == 1, what="first message")
            a.transport.remove_peer(2)
            await wait_until(lambda: a.transport.stats()["inbound_connections"] == 0, what="disconnect")
            await wait_until(lambda: 1 in b.unreachable, what="b notices")
            for k in range(2, 20):
                b.transport.send(hb(2, 1, k))
            await wait_until(lambda: a.transport.stats()["refused_handshakes"] >= 1, what="refusal")
            assert [m.term for m in a.got] == [1]
        finally:
            await close_all(a, b)

    run(go())


def test_three_raft_nodes_over_tcp_commit_and_converge(tmp_path: Path) -> None:
    async def go() -> None:
        ids = [1, 2, 3]
        identities = {i: NodeIdentity.generate() for i in ids}
        states = {i: NodeStateMachine() for i in ids}
        nodes = {
            i: RaftNode(
                DriverConfig(
                    node_id=i,
                    data_dir=tmp_path / f"n{i}",
                    tick_interval_s=0.02,
                    election_tick=10,
                    heartbeat_tick=2,
                    seed=i,
                ),
                states[i],
            )
            for i in ids
        }
        transports = {
            i: TcpTransport(node_id=i, identity=identities[i], host=HOST, port=0, deliver=nodes[i].deliver)
            for i in ids
        }
        addrs = {i: await t.start() for i, t in transports.items()}
        for i, t in transports.items():
            for j in ids:
                if j != i:
                    t.set_peer(j, identities[j].endpoint_id, [addrs[j]])
        for i in ids:
            await nodes[i].start(transports[i])
        try:
            await asyncio.gather(*(n.bootstrap(ids) for n in nodes.values()))
            await wait_until(
                lambda: sum(n.role == StateRole.LEADER for n in nodes.values()) == 1, what="a leader"
            )
            leader = next(n for n in nodes.values() if n.role == StateRole.LEADER)
            results = await asyncio.gather(
                *(leader.propose(kv.Write(f"k{i:04d}", b"v%d" % i), size=16) for i in range(500))
            )
            assert all(r.is_success for r in results)
            target = leader.applied_index
            applied = await asyncio.gather(*(n.wait_applied(target, 30) for n in nodes.values()))
            assert all(applied)
            assert len({s.kv.state_hash() for s in states.values()}) == 1
            assert all(len(s.kv) == 500 for s in states.values())
        finally:
            await asyncio.gather(*(n.stop() for n in nodes.values()))  # stop() closes the transports

    run(go(), timeout=120)


def test_node_not_yet_joined_admits_only_peers_that_prove_the_cookie() -> None:
    """A fresh node knows no members; it admits a leader that proves the cluster secret, learns the
    address to answer it on, and refuses a stranger that does not know the secret."""

    async def go() -> None:
        secret = b"s" * 32
        fresh_got: list[Message] = []
        fresh_identity = NodeIdentity.generate()
        fresh = TcpTransport(
            node_id=2,
            identity=fresh_identity,
            host=HOST,
            port=0,
            deliver=fresh_got.append,
            cluster_secret=secret,
            admit_unknown=lambda _nid: True,
        )
        leader_got: list[Message] = []
        leader = TcpTransport(
            node_id=1,
            identity=NodeIdentity.generate(),
            host=HOST,
            port=0,
            deliver=leader_got.append,
            cluster_secret=secret,
        )
        stranger = TcpTransport(
            node_id=3,
            identity=NodeIdentity.generate(),
            host=HOST,
            port=0,
            deliver=lambda _m: None,
            cluster_secret=b"x" * 32,
        )
        try:
            fresh_addr = await fresh.start()
            await leader.start()
            await stranger.start()
            for t in (leader, stranger):
                t.set_peer(2, fresh_identity.endpoint_id, [fresh_addr])
            stranger.send(hb(3, 2, 1))
            leader.send(hb(1, 2, 1))
            await wait_until(lambda: [m.frm for m in fresh_got] == [1], what="leader admitted")
            # The fresh node can now answer the leader without knowing the membership yet.
            fresh.send(Message(type=MessageType.HEARTBEAT_RESP, to=1, frm=2, term=1))
            await wait_until(lambda: len(leader_got) == 1, what="reply reached the leader")
            assert fresh.stats()["refused_handshakes"] >= 1  # the stranger
            assert all(m.frm != 3 for m in fresh_got)
        finally:
            await asyncio.gather(fresh.close(), leader.close(), stranger.close())

    run(go())
