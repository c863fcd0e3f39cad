"""The Raft driver with three in-process members over the in-memory transport."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest
from cluster_inproc import InProcCluster, write

from aspen import kv
from aspen.raft.core.types import Entry, HardState, Message, MessageType, StateRole
from aspen.raft.errors import LeaderUnreachable, NotLeader
from aspen.raft.node import RaftNode


def run(coro: object) -> None:
    asyncio.run(asyncio.wait_for(coro, 120))  # type: ignore[arg-type]


def test_three_nodes_commit_concurrent_proposals_and_agree(tmp_path: Path) -> None:
    async def go() -> None:
        cluster = InProcCluster(tmp_path)
        await cluster.start()
        try:
            leader = await cluster.leader()
            results = await asyncio.gather(*(write(leader, f"k{i:05d}", b"v%d" % i) for i in range(2000)))
            assert all(r.is_success for r in results)
            assert await cluster.converged(leader.applied_index)
            assert len(cluster.hashes()) == 1
            assert all(len(s.kv) == 2000 for s in cluster.states.values())
        finally:
            await cluster.stop()

    run(go())


def test_followers_refuse_proposals_with_the_leader_hint(tmp_path: Path) -> None:
    async def go() -> None:
        cluster = InProcCluster(tmp_path)
        await cluster.start()
        try:
            leader = await cluster.leader()
            await write(leader, "x", b"1")
            follower = next(n for n in cluster.nodes.values() if n is not leader)
            await cluster.converged(leader.applied_index)
            with pytest.raises(NotLeader) as err:
                await write(follower, "y", b"2")
            assert err.value.leader_id == leader.id
            # ReadIndex works on a follower: the barrier goes through the leader.
            index = await follower.read_barrier(timeout=5)
            assert follower.applied_index >= index
            assert cluster.states[follower.id].kv.read(kv.Read("x")).value == b"1"
        finally:
            await cluster.stop()

    run(go())


def test_leader_restart_keeps_every_acknowledged_write(tmp_path: Path) -> None:
    async def go() -> None:
        cluster = InProcCluster(tmp_path)
        await cluster.start()
        try:
            leader = await cluster.leader()
            results = await asyncio.gather(*(write(leader, f"a{i}", b"x") for i in range(300)))
            assert all(r.is_success for r in results)
            await cluster.restart(leader.id)
            new_leader = await cluster.leader()
            await write(new_leader, "after", b"y")
            assert await cluster.converged(new_leader.applied_index)
            assert len(cluster.hashes()) == 1
            assert all(len(s.kv) == 301 for s in cluster.states.values())
        finally:
            await cluster.stop()

    run(go())


def test_snapshot_from_a_forked_child_while_writes_continue(tmp_path: Path) -> None:
    async def go() -> None:
        cluster = InProcCluster(tmp_path)
        await cluster.start()
        try:
            leader = await cluster.leader()
            assert all(
                r.is_success
                for r in await asyncio.gather(*(write(leader, f"s{i}", b"x") for i in range(500)))
            )
            applied_before = leader.applied_index
            # The snapshot is written by a child process while 500 more writes are applied here.
            snap, *more = await asyncio.gather(
                leader.trigger_snapshot(), *(write(leader, f"t{i}", b"y") for i in range(500))
            )
            assert snap >= applied_before and all(r.is_success for r in more)
            assert leader.status().snapshot_index == snap
            assert list((tmp_path / f"n{leader.id}" / "snap").glob("*.snap"))
            # A restart recovers from the snapshot plus the log after it.
            restarted = await cluster.restart(leader.id)
            await cluster.leader()
            assert await restarted.wait_applied(snap, 30)
            assert restarted.status().snapshot_index == snap
            assert await cluster.converged(max(n.applied_index for n in cluster.nodes.values()))
            assert len(cluster.states[leader.id].kv) == 1000
            assert len(cluster.hashes()) == 1
        finally:
            await cluster.stop()

    run(go())


@contextlib.asynccontextmanager
async def _warmed_up(tmp_path: Path) -> AsyncIterator[tuple[InProcCluster, RaftNode]]:
    """A started cluster whose leader has committed one write that every member has applied."""
    cluster = InProcCluster(tmp_path)
    await cluster.start()
    try:
        leader = await cluster.leader()
        await write(leader, "warm", b"up")
        assert await cluster.converged(leader.applied_index)
        yield cluster, leader
    finally:
        await cluster.stop()


def test_a_commit_index_alone_is_never_fsynced(tmp_path: Path) -> None:
    """Commit notices and heartbeats move only the commit index: no member writes its WAL for them.
    Within one term, every save carries entries."""

    async def go() -> None:
        async with _warmed_up(tmp_path) as (cluster, leader):
            term = leader.status().term
            commit_only: list[tuple[int, HardState]] = []
            for node in cluster.nodes.values():
                wal = node._wal
                assert wal is not None
                wal.save = _recording_save(node.id, term, wal.save, commit_only)  # type: ignore[method-assign]
            for i in range(20):  # one at a time: each write is followed by its own commit notice
                assert (await write(leader, f"c{i}", b"x")).is_success
                # Every member has applied the write, so each has heard its commit index.
                assert await cluster.converged(leader.applied_index)
            assert commit_only == []

    run(go())


def _watch_commit_notices(node: RaftNode, seen: Callable[[Message], None]) -> None:
    """Calls `seen` with every commit notice (an append without entries) `node` sends."""
    transport = node._transport
    assert transport is not None
    send = transport.send

    def recording(msg: Message) -> None:
        if msg.type == MessageType.APP and not msg.entries:
            seen(msg)
        send(msg)

    transport.send = recording  # type: ignore[method-assign]


def test_a_lone_writer_on_the_leader_is_answered_before_the_commit_notices_go_out(tmp_path: Path) -> None:
    """With nothing else in flight, the notices that only announce the commit index to the followers
    wait until the caller has its answer (two TLS writes off the path of a one-at-a-time put)."""

    async def go() -> None:
        async with _warmed_up(tmp_path) as (cluster, leader):
            events: list[str] = []
            _watch_commit_notices(leader, lambda msg: events.append(f"notice to {msg.to}"))
            assert (await write(leader, "lone", b"x")).is_success
            events.append("answered")
            assert await cluster.converged(leader.applied_index)
            followers = sorted(n for n in cluster.ids if n != leader.id)
            assert events[0] == "answered" and sorted(events[1:]) == [f"notice to {n}" for n in followers]

    run(go())


def test_a_lone_writers_commit_notices_ride_on_its_next_append(tmp_path: Path) -> None:
    """Held back for a lone writer, the notice for one write goes out with the next write's
    entries: followers apply the first write without a message of its own."""

    async def go() -> None:
        async with _warmed_up(tmp_path) as (cluster, leader):
            leader.config = dataclasses.replace(leader.config, commit_notice_delay_s=60.0)
            notices: list[Message] = []
            _watch_commit_notices(leader, notices.append)
            assert (await write(leader, "first", b"1")).is_success
            first = leader.applied_index
            assert (await write(leader, "second", b"2")).is_success
            assert await cluster.converged(first)
            assert notices == []

    run(go())


def _recording_save(
    node_id: int, term: int, save: Callable[..., None], commit_only: list[tuple[int, HardState]]
) -> Callable[..., None]:
    def recording(hard_state: HardState | None, entries: Sequence[Entry], **kw: object) -> None:
        if hard_state is not None and not entries and hard_state.term == term:
            commit_only.append((node_id, hard_state))
        save(hard_state, entries, **kw)

    return recording


def test_a_restart_right_after_a_snapshot_recovers_a_commit_index_that_trails_it(tmp_path: Path) -> None:
    """The commit index on disk lags the applied one (it is saved only with the next entries), so a
    snapshot of everything applied may be ahead of it: a restart takes the snapshot's index."""

    async def go() -> None:
        cluster = InProcCluster(tmp_path)
        await cluster.start()
        try:
            leader = await cluster.leader()
            results = await asyncio.gather(*(write(leader, f"r{i}", b"x") for i in range(20)))
            assert all(r.is_success for r in results)
            snap = await leader.trigger_snapshot()
            assert snap == leader.applied_index
            restarted = await cluster.restart(leader.id)
            assert restarted.status().commit >= snap
            await cluster.leader()
            assert await cluster.converged(max(n.applied_index for n in cluster.nodes.values()))
            assert len(cluster.states[leader.id].kv) == 20
        finally:
            await cluster.stop()

    run(go())


@pytest.mark.parametrize("one_way", [False, True], ids=["cut-both-ways", "cut-one-way"])
def test_a_follower_whose_read_round_is_lost_fails_the_read_and_reads_again_once_healed(
    tmp_path: Path, one_way: bool
) -> None:
    """A follower runs one ReadIndex round at a time. A round its leader can no longer answer must
    not hold every later read, nor a lone read until its deadline: the read fails (and the client
    retries elsewhere) once the follower stops following that leader (cut both ways: NotLeader, or
    LeaderUnreachable if the round is given up first) or, when the follower still hears its leader
    but what it sends is lost (cut one way: a TCP link stuck in retransmission backoff after packet
    loss), after an election timeout, with LeaderUnreachable. Reads work again after the partition
    heals."""

    async def go() -> None:
        cluster = InProcCluster(tmp_path)
        await cluster.start()
        try:
            leader = await cluster.leader()
            await write(leader, "x", b"1")
            follower = next(n for n in cluster.nodes.values() if n is not leader)
            assert await follower.read_barrier(timeout=5) >= 1
            if one_way:
                cluster.network.cut_one_way(follower.id, leader.id)
            else:
                cluster.network.cut(follower.id, leader.id)
            # A round nobody gives up on would wait out these 30 s and time out instead.
            with pytest.raises(LeaderUnreachable if one_way else (NotLeader, LeaderUnreachable)):
                await follower.read_barrier(timeout=30)
            if one_way:
                assert follower.role == StateRole.FOLLOWER and follower.leader_id == leader.id
            cluster.network.heal()
            index = await _read_until_ok(follower)
            assert follower.applied_index >= index
        finally:
            await cluster.stop()

    run(go())


async def _read_until_ok(node: RaftNode) -> int:
    """A read barrier on `node`, retried (bounded) while it still has no leader after a heal."""
    for _ in range(100):
        try:
            return await node.read_barrier(timeout=5)
        except (NotLeader, LeaderUnreachable):
            await asyncio.sleep(0.05)  # an election is under way; these come back at once
    raise AssertionError("no read barrier within 100 attempts")
