"""Snapshots, membership changes, learners, leadership transfer, bootstrap."""

from __future__ import annotations

import pytest
from raft_helpers import Cluster, make_config, make_storage

from aspen.raft.core import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    MemoryStorage,
    Message,
    MessageType,
    ProgressState,
    ProposalDroppedError,
    Raft,
    RawNode,
    Snapshot,
    SnapshotMeta,
    StateRole,
)

MT = MessageType


def _snap(index: int, term: int, voters: tuple[int, ...] = (1, 2, 3)) -> Snapshot:
    return Snapshot(
        meta=SnapshotMeta(index=index, term=term, conf_state=ConfState(voters=voters)), data=b"img"
    )


# -- snapshots ------------------------------------------------------------------------------


def test_follower_installs_newer_snapshot_and_truncates_log() -> None:
    st = make_storage([1, 2, 3])
    st.append([Entry(term=1, index=i) for i in range(1, 6)])
    st.set_hard_state(HardState(term=1, commit=3))
    r = Raft(make_config(2), st)
    r.step(Message(type=MT.SNAP, frm=1, to=2, term=2, snapshot=_snap(10, 2)))
    assert r.log.has_pending_snapshot()
    assert r.log.committed == 10
    assert r.log.first_index() == 11 and r.log.last_index() == 10
    assert r.log.term(10) == 2
    assert r.msgs[-1].type == MT.APP_RESP and r.msgs[-1].index == 10
    assert not r.promotable()  # never campaign with an unpersisted snapshot


def test_snapshot_not_newer_than_commit_is_ignored() -> None:
    st = make_storage([1, 2, 3])
    st.append([Entry(term=1, index=i) for i in range(1, 6)])
    st.set_hard_state(HardState(term=1, commit=5))
    r = Raft(make_config(2), st)
    r.step(Message(type=MT.SNAP, frm=1, to=2, term=1, snapshot=_snap(4, 1)))
    assert not r.log.has_pending_snapshot()
    assert r.log.last_index() == 5
    assert r.msgs[-1].index == 5


def test_snapshot_matching_log_only_fast_forwards_commit() -> None:
    st = make_storage([1, 2, 3])
    st.append([Entry(term=1, index=i) for i in range(1, 8)])
    st.set_hard_state(HardState(term=1, commit=2))
    r = Raft(make_config(2), st)
    r.step(Message(type=MT.SNAP, frm=1, to=2, term=1, snapshot=_snap(5, 1)))
    assert not r.log.has_pending_snapshot()
    assert r.log.committed == 5 and r.log.last_index() == 7


def test_leader_sends_snapshot_when_entries_compacted() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.isolate(3)
    for k in range(10):
        c.nodes[1].propose(b"%d" % k)
    c.stabilize()
    st1 = c.storages[1]
    applied = c.raft(1).log.applied
    st1.create_snapshot(applied, ConfState(voters=(1, 2, 3)), b"img")
    st1.compact(applied)
    c.heal()
    c.sent.clear()
    c.tick_all(1)
    snaps = [m for m in c.sent if m.type == MT.SNAP]
    assert snaps and snaps[0].to == 3 and snaps[0].snapshot is not None
    c.nodes[1].report_snapshot(3, True)
    c.tick_all(3)
    r3 = c.raft(3)
    assert r3.log.snapshot().meta.index == applied
    assert r3.log.last_index() == c.raft(1).log.last_index()
    assert c.raft(1).prs.progress[3].state == ProgressState.REPLICATE


def test_failed_snapshot_report_returns_to_probe() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    r = c.raft(1)
    pr = r.prs.progress[3]
    pr.become_snapshot(5)
    c.nodes[1].report_snapshot(3, False)
    assert pr.state == ProgressState.PROBE and pr.pending_snapshot == 0


# -- membership -----------------------------------------------------------------------------


def test_add_learner_then_promote() -> None:
    c = Cluster.bootstrapped([1, 2, 3])
    c.elect(1)
    c.nodes[1].propose(b"a")
    c.stabilize()
    # Node 4 starts empty; it receives everything from the leader.
    c.add_node(4, MemoryStorage())
    c.nodes[1].propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, 4))
    c.tick_all(3)
    r1 = c.raft(1)
    assert r1.prs.conf_state() == ConfState(voters=(1, 2, 3), learners=(4,))
    assert c.raft(4).prs.conf_state() == ConfState(voters=(1, 2, 3), learners=(4,))
    assert c.data_applied(4) == [b"a"]
    assert c.raft(4).is_learner
    c.nodes[1].propose_conf_change(ConfChange(ConfChangeType.ADD_VOTER, 4))
    c.tick_all(3)
    assert r1.prs.conf_state() == ConfState(voters=(1, 2, 3, 4))
    assert not c.raft(4).is_learner


def test_learner_never_campaigns_and_is_not_counted() -> None:
    c = Cluster([1, 2], learners=[3])
    for _ in range(100):
        c.tick(3)
    assert c.raft(3).state == StateRole.FOLLOWER and c.raft(3).term == 0
    c.elect(1)
    c.cut |= {(1, 2), (2, 1)}
    commit = c.raft(1).log.committed
    c.nodes[1].propose(b"x")
    c.stabilize()
    # The learner has the entry, the leader too: 2 of 3 nodes, but only 1 of 2 voters.
    assert c.raft(3).log.last_index() == c.raft(1).log.last_index()
    assert c.raft(1).log.committed == commit
    # The learner's vote is not counted by a candidate that knows it as a learner.
    c.heal()
    c2 = Cluster([1, 2], learners=[3], pre_vote=False)
    c2.cut |= {(2, 1)}
    c2.nodes[1].campaign()
    c2.stabilize()
    assert c2.raft(1).state == StateRole.CANDIDATE


def test_remove_voter_shrinks_quorum() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.nodes[1].propose_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, 3))
    c.stabilize()
    assert c.raft(1).prs.voters == {1, 2}
    c.isolate(3)
    c.nodes[1].propose(b"y")
    c.stabilize()
    assert b"y" in c.data_applied(2)


def test_second_conf_change_refused_while_pending() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.isolate(1)
    c.nodes[1].propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, 4))
    with pytest.raises(ProposalDroppedError):
        c.nodes[1].propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, 5))
    c.heal()
    c.tick_all(3)
    c.nodes[1].propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, 5))  # now allowed


def test_invalid_conf_change_rejected_at_proposal() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    with pytest.raises(ValueError):
        c.nodes[1].propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, 2))


def test_removed_leader_steps_down_and_rest_elects() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.nodes[1].propose_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, 1))
    c.stabilize()
    assert c.raft(1).state == StateRole.FOLLOWER
    c.isolate(1)
    for _ in range(40):
        c.tick_all()
    assert c.leader() in (2, 3)
    assert c.raft(1).state == StateRole.FOLLOWER


# -- leadership transfer --------------------------------------------------------------------


def test_leadership_transfer() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.nodes[1].propose(b"x")
    c.stabilize()
    c.nodes[1].transfer_leader(2)
    c.stabilize()
    assert c.leader() == 2
    assert c.raft(1).lead == 2 and c.raft(1).state == StateRole.FOLLOWER


def test_transfer_brings_target_up_to_date_first() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.isolate(3)
    for k in range(3):
        c.nodes[1].propose(b"%d" % k)
    c.stabilize()
    c.heal()
    c.nodes[1].transfer_leader(3)
    # Proposals are refused while the transfer is pending.
    with pytest.raises(ProposalDroppedError):
        c.nodes[1].propose(b"z")
    c.tick_all(3)
    assert c.leader() == 3
    assert c.data_applied(3) == [b"0", b"1", b"2"]


def test_transfer_aborted_after_election_timeout() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.isolate(3)
    c.cut.discard((3, 1))
    c.cut.discard((1, 3))
    c.cut.add((1, 3))
    c.nodes[1].transfer_leader(3)
    assert c.raft(1).lead_transferee == 3
    for _ in range(c.raft(1).election_timeout):
        c.tick(1)
    assert c.raft(1).lead_transferee == 0
    c.nodes[1].propose(b"ok")


def test_transfer_to_self_or_learner_ignored() -> None:
    c = Cluster([1, 2], learners=[3])
    c.elect(1)
    c.nodes[1].transfer_leader(1)
    c.nodes[1].transfer_leader(3)
    assert c.raft(1).lead_transferee == 0


# -- bootstrap ------------------------------------------------------------------------------


def test_bootstrap_returns_committed_conf_entries() -> None:
    st = MemoryStorage()
    rn = RawNode(make_config(1), st)
    rn.bootstrap([1, 2, 3])
    assert rn.raft.prs.voters == {1, 2, 3}
    rd = rn.ready()
    assert [e.index for e in rd.entries] == [1, 2, 3]
    assert all(e.type == EntryType.CONF_CHANGE and e.term == 1 for e in rd.entries)
    assert rd.committed_entries == rd.entries
    assert rd.hard_state == HardState(term=1, vote=0, commit=3)
    st.append(rd.entries)
    st.set_hard_state(rd.hard_state)
    for e in rd.committed_entries:
        from aspen.raft.core import decode_conf_change

        st.set_conf_state(rn.apply_conf_change(decode_conf_change(e.data)))
    rn.advance(rd)
    assert rn.raft.log.applied == 3
    assert st.conf_state == ConfState(voters=(1, 2, 3))
    with pytest.raises(ValueError):
        rn.bootstrap([1])


def test_bootstrapped_cluster_elects_and_commits() -> None:
    c = Cluster.bootstrapped([1, 2, 3])
    for _ in range(40):
        c.tick_all()
    ld = c.leader()
    assert ld is not None
    c.nodes[ld].propose(b"hello")
    c.stabilize()
    assert all(c.data_applied(n) == [b"hello"] for n in (1, 2, 3))
