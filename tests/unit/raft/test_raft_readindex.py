"""ReadIndex: single node, quorum confirmation, forwarding, new-leader restriction."""

from __future__ import annotations

import pytest
from raft_helpers import Cluster

from aspen.raft.core import MessageType, ProposalDroppedError, StateRole

MT = MessageType


def test_single_node_read_index_is_immediate() -> None:
    c = Cluster([1])
    c.elect(1)
    c.stabilize()
    commit = c.raft(1).log.committed
    c.nodes[1].read_index(b"r1")
    c.process(1)
    assert [(rs.index, rs.context) for rs in c.read_states[1]] == [(commit, b"r1")]


def test_leader_read_index_needs_quorum_ack() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    commit = c.raft(1).log.committed
    c.isolate(1)
    c.nodes[1].read_index(b"r1")
    c.stabilize()
    assert c.read_states[1] == []  # heartbeats lost: leadership not confirmed
    c.heal()
    c.nodes[1].read_index(b"r2")
    c.stabilize()
    # The later confirmation also releases the earlier request.
    assert [(rs.index, rs.context) for rs in c.read_states[1]] == [(commit, b"r1"), (commit, b"r2")]


def test_read_index_from_follower_is_forwarded() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.nodes[1].propose(b"x")
    c.stabilize()
    commit = c.raft(1).log.committed
    c.nodes[2].read_index(b"f")
    c.stabilize()
    assert [(rs.index, rs.context) for rs in c.read_states[2]] == [(commit, b"f")]
    assert c.read_states[1] == []


def test_read_index_without_leader_is_refused() -> None:
    c = Cluster([1, 2, 3])
    with pytest.raises(ProposalDroppedError):
        c.nodes[2].read_index(b"x")


def test_new_leader_defers_read_index_until_it_commits_in_its_term() -> None:
    # No check-quorum here so that node 2 can win an election while leader 1 is alive.
    c = Cluster([1, 2, 3], check_quorum=False)
    c.elect(1)
    c.nodes[1].propose(b"x")
    c.stabilize()
    old_commit = c.raft(1).log.committed
    # 2 wins the election; its APPs (carrying its empty entry) are lost.
    c.cut |= {(2, 1), (2, 3)}
    c.nodes[2].campaign()
    c.process(2)
    while c.queue:
        m = c.queue.popleft()
        if m.type in (MT.PRE_VOTE, MT.PRE_VOTE_RESP, MT.VOTE, MT.VOTE_RESP):
            c.nodes[m.to].step(m)
            c.process(m.to)
    r2 = c.raft(2)
    assert r2.state == StateRole.LEADER
    assert r2.log.committed <= old_commit
    c.nodes[2].read_index(b"early")
    c.stabilize()
    assert c.read_states[2] == []  # deferred: commit index may be stale
    c.heal()
    c.tick_all(2)
    assert [rs.context for rs in c.read_states[2]] == [b"early"]
    assert c.read_states[2][0].index == r2.log.committed > old_commit


def test_a_read_index_round_whose_heartbeats_were_lost_is_confirmed_by_the_next_periodic_one() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    commit = c.raft(1).log.committed
    c.isolate(1)
    c.nodes[1].read_index(b"r1")
    c.stabilize()
    assert c.read_states[1] == []  # that round's heartbeats are lost
    c.heal()
    c.tick(1, c.raft(1).heartbeat_timeout)  # the leader's periodic heartbeat round
    c.stabilize()
    assert [(rs.index, rs.context) for rs in c.read_states[1]] == [(commit, b"r1")]
