"""Log replication: conflicts, fast backtracking, commit rules, durability, flow control."""

from __future__ import annotations

import pytest
from raft_helpers import Cluster, make_config, make_storage
from raft_unsafe import allow_unsafe_commit_previous_term

from aspen.raft.core import (
    Entry,
    HardState,
    MemoryStorage,
    Message,
    MessageType,
    ProgressState,
    ProposalDroppedError,
    Raft,
    RawNode,
    StepLocalMessageError,
)
from aspen.raft.core.log import RaftLog

MT = MessageType


def _ents(*terms: int, start: int = 1) -> list[Entry]:
    return [Entry(term=t, index=start + k, data=b"%d-%d" % (start + k, t)) for k, t in enumerate(terms)]


def test_maybe_append_truncates_conflicting_suffix() -> None:
    st = MemoryStorage()
    st.append(_ents(1, 1, 2, 2))
    log = RaftLog(st)
    new = [Entry(term=3, index=3, data=b"x"), Entry(term=3, index=4, data=b"y"), Entry(term=3, index=5)]
    assert log.maybe_append(2, 1, 0, new) == 5
    assert [e.term for e in log.slice(1, 6)] == [1, 1, 3, 3, 3]
    assert log.slice(3, 4)[0].data == b"x"


def test_maybe_append_rejects_on_prev_mismatch() -> None:
    st = MemoryStorage()
    st.append(_ents(1, 1, 2))
    log = RaftLog(st)
    assert log.maybe_append(3, 3, 0, [Entry(term=3, index=4)]) is None
    assert log.last_index() == 3


def test_maybe_append_does_not_truncate_on_stale_duplicate() -> None:
    st = MemoryStorage()
    st.append(_ents(1, 1, 1, 1))
    log = RaftLog(st)
    # An old, shorter append must not cut the suffix that matches.
    assert log.maybe_append(1, 1, 0, _ents(1, start=2)) == 2
    assert log.last_index() == 4


def test_commit_limited_to_last_new_entry() -> None:
    st = MemoryStorage()
    st.append(_ents(1, 1, 1, 1))
    log = RaftLog(st)
    # The leader says commit=10, but only index 2 is known to match.
    log.maybe_append(1, 1, 10, _ents(1, start=2))
    assert log.committed == 2


def test_follower_conflict_resolution_end_to_end() -> None:
    c = Cluster([1, 2, 3], pre_vote=False)
    # Node 3 has a divergent uncommitted tail from an old term 2.
    for nid in (1, 2):
        c.storages[nid].append(_ents(1))
        c.storages[nid].set_hard_state(HardState(term=2, commit=1))
    c.storages[3].append(_ents(1, 2, 2, 2))
    c.storages[3].set_hard_state(HardState(term=2, commit=1))
    for nid in (1, 2, 3):
        c.add_node(nid, c.storages[nid], pre_vote=False)
    c.elect(1)
    c.nodes[1].propose(b"a")
    c.stabilize()
    l1 = c.raft(1).log
    l3 = c.raft(3).log
    assert l3.last_index() == l1.last_index()
    assert l3.slice(1, l3.last_index() + 1) == l1.slice(1, l1.last_index() + 1)
    assert l3.committed == l1.committed == l1.last_index()


def test_fast_backtracking_skips_whole_terms() -> None:
    c = Cluster([1, 2, 3], pre_vote=False)
    # Leader-to-be has 50 entries of term 3 after index 1; node 2 has 50 entries of term 2.
    c.storages[1].append(_ents(1, *([3] * 50)))
    c.storages[1].set_hard_state(HardState(term=3, commit=1))
    c.storages[2].append(_ents(1, *([2] * 50)))
    c.storages[2].set_hard_state(HardState(term=3, commit=1))
    c.storages[3].append(_ents(1, *([3] * 50)))
    c.storages[3].set_hard_state(HardState(term=3, commit=1))
    for nid in (1, 2, 3):
        c.add_node(nid, c.storages[nid], pre_vote=False)
    c.isolate(2)
    c.elect(1)
    c.heal()
    c.sent.clear()
    c.nodes[1].propose(b"x")
    c.tick_all(2)  # the probe sent during the partition was lost; heartbeats resume probing
    rejects = [m for m in c.sent if m.type == MT.APP_RESP and m.frm == 2 and m.reject]
    # Without the term hint this would take ~50 round trips.
    assert len(rejects) <= 2
    assert c.raft(2).log.last_index() == c.raft(1).log.last_index()
    assert c.raft(2).log.term(2) == 3


def test_find_conflict_by_term() -> None:
    st = MemoryStorage()
    st.append(_ents(1, 1, 2, 2, 5, 5, 5))
    log = RaftLog(st)
    assert log.find_conflict_by_term(7, 4) == (4, 2)
    assert log.find_conflict_by_term(7, 5) == (7, 5)
    assert log.find_conflict_by_term(4, 1) == (2, 1)
    assert log.find_conflict_by_term(7, 0) == (0, 0)


def test_leader_does_not_commit_previous_term_entry_by_counting() -> None:
    """Raft Figure 8: an entry from an earlier term on a majority is not committed until an entry
    of the current term is replicated on a majority too."""
    st = make_storage([1, 2, 3])
    st.append(_ents(1, 2))
    st.set_hard_state(HardState(term=3, commit=1))
    r = Raft(make_config(1), st)
    r.become_candidate()
    r.become_leader()  # term 4, appends empty entry at index 3
    assert r.term == 4 and r.log.last_index() == 3
    st.append(r.log.unstable_entries())
    r.on_persisted(3, 4)
    # Follower 2 acknowledges index 2 (the term-2 entry): a majority holds index 2...
    r.step(Message(type=MT.APP_RESP, frm=2, to=1, term=4, index=2))
    assert r.log.committed == 1
    # ...but only the term-4 entry reaching a majority commits (and thereby index 2).
    r.step(Message(type=MT.APP_RESP, frm=2, to=1, term=4, index=3))
    assert r.log.committed == 3


def test_unsafe_flag_really_flips_the_rule() -> None:
    st = make_storage([1, 2, 3])
    st.append(_ents(1, 2))
    st.set_hard_state(HardState(term=3, commit=1))
    r = Raft(make_config(1), st)
    allow_unsafe_commit_previous_term(r)
    r.become_candidate()
    r.become_leader()
    st.append(r.log.unstable_entries())
    r.on_persisted(3, 4)
    r.step(Message(type=MT.APP_RESP, frm=2, to=1, term=4, index=2))
    assert r.log.committed == 2


def test_single_node_commits_only_after_persistence() -> None:
    rn = RawNode(make_config(1), MemoryStorage())
    rn.bootstrap([1])
    st = rn.raft.log.storage
    assert isinstance(st, MemoryStorage)

    def drain() -> None:
        while rn.has_ready():
            rd = rn.ready()
            st.append(rd.entries)
            rn.advance(rd)

    drain()
    rn.campaign()
    drain()
    rn.propose(b"x")
    rd = rn.ready()
    assert [e.data for e in rd.entries] == [b"x"]
    assert all(e.data != b"x" for e in rd.committed_entries)
    st.append(rd.entries)
    rn.advance(rd)
    rd = rn.ready()
    assert [e.data for e in rd.committed_entries] == [b"x"]
    assert rd.hard_state is not None and rd.hard_state.commit == rd.committed_entries[-1].index


def test_committed_entries_never_ahead_of_persisted_on_follower() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.nodes[1].propose(b"v")
    # Process the leader and deliver its APPs, but inspect each follower Ready.
    c.process(1)
    while c.queue:
        m = c.queue.popleft()
        rn = c.nodes[m.to]
        rn.step(m)
        while rn.has_ready():
            rd = rn.ready()
            new = {e.index for e in rd.entries}
            assert not any(e.index in new for e in rd.committed_entries)
            last_stable = c.storages[m.to].last_index()
            assert all(e.index <= last_stable for e in rd.committed_entries)
            c.storages[m.to].append(rd.entries)
            if rd.hard_state:
                c.storages[m.to].set_hard_state(rd.hard_state)
            c.queue.extend(rd.early_messages + rd.messages)
            rn.advance(rd)


def test_propose_on_follower_is_dropped() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    with pytest.raises(ProposalDroppedError):
        c.nodes[2].propose(b"x")


def test_step_rejects_local_messages() -> None:
    c = Cluster([1, 2, 3])
    for t in (MT.HUP, MT.BEAT, MT.PROPOSE, MT.SNAP_STATUS, MT.UNREACHABLE):
        with pytest.raises(StepLocalMessageError):
            c.nodes[1].step(Message(type=t, frm=2, to=1))


def test_no_messages_to_self() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    for k in range(5):
        c.nodes[1].propose(b"%d" % k)
    c.tick_all(3)
    assert all(m.to != m.frm for m in c.sent)


def test_flow_control_limits_inflight_messages() -> None:
    c = Cluster([1, 2, 3], max_inflight_msgs=2, max_size_per_msg=1)
    c.elect(1)
    pr = c.raft(1).prs.progress[2]
    assert pr.state == ProgressState.REPLICATE
    c.cut.add((2, 1))  # follower 2's acks are lost
    c.sent.clear()
    for k in range(10):
        c.nodes[1].propose(b"%d" % k)
        c.stabilize()
    apps = [m for m in c.sent if m.type == MT.APP and m.to == 2 and m.entries]
    assert len(apps) == 2
    assert pr.inflights.full()
    # Acks resume replication and everything arrives.
    c.heal()
    c.tick_all(3)
    assert c.raft(2).log.last_index() == c.raft(1).log.last_index()


def test_flow_control_limits_inflight_bytes() -> None:
    c = Cluster([1, 2, 3], max_inflight_bytes=100, max_size_per_msg=1)
    c.elect(1)
    c.cut.add((2, 1))
    c.sent.clear()
    for _ in range(10):
        c.nodes[1].propose(b"x" * 60)
        c.stabilize()
    apps = [m for m in c.sent if m.type == MT.APP and m.to == 2 and m.entries]
    assert len(apps) == 2  # 76 bytes each with overhead: the second fills the 100-byte window


def test_max_size_per_msg_splits_entries() -> None:
    c = Cluster([1, 2, 3], max_size_per_msg=200)
    c.elect(1)
    c.isolate(2)
    for _ in range(10):
        c.nodes[1].propose(b"y" * 50)
    c.stabilize()
    c.heal()
    c.sent.clear()
    c.tick_all(2)
    apps = [m for m in c.sent if m.type == MT.APP and m.to == 2 and m.entries]
    assert len(apps) >= 3
    assert all(sum(len(e.data) + 16 for e in m.entries) <= 200 or len(m.entries) == 1 for m in apps)
    assert c.raft(2).log.last_index() == c.raft(1).log.last_index()


def test_restart_preserves_hard_state() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.nodes[1].propose(b"x")
    c.stabilize()
    st = c.storages[2]
    rn = RawNode(make_config(2, applied=st.hard_state.commit), st)
    assert rn.raft.term == c.raft(2).term
    assert rn.raft.vote == c.raft(2).vote
    assert rn.raft.log.committed == c.raft(2).log.committed
    assert not rn.raft.log.has_next_committed_entries()


def test_status_reports_leader_progress() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.nodes[1].propose(b"x")
    c.stabilize()
    st = c.nodes[1].status()
    assert st.role.name == "LEADER" and st.leader_id == 1 and st.id == 1
    assert st.commit == st.last_index == st.applied
    assert set(st.progress) == {1, 2, 3}
    assert st.progress[2].match == st.last_index and st.progress[2].state == "REPLICATE"
    assert c.nodes[2].status().progress == {}


def test_report_unreachable_moves_replicating_peer_to_probe() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    pr = c.raft(1).prs.progress[2]
    assert pr.state == ProgressState.REPLICATE
    c.nodes[1].report_unreachable(2)
    assert pr.state == ProgressState.PROBE


def test_leader_sends_appends_before_its_own_fsync_but_counts_itself_only_after() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    leader = c.nodes[1]
    leader.propose(b"v")
    rd = leader.ready()
    assert rd.entries, "the proposal is still to be persisted"
    apps = [m for m in rd.early_messages if m.type == MT.APP]
    assert sorted(m.to for m in apps) == [2, 3], "appends may go out while the leader fsyncs"
    assert not any(m.type == MT.APP for m in rd.messages)
    # Both followers persist and acknowledge before the leader's own fsync finished...
    for m in apps:
        c.nodes[m.to].step(m)
        c.process(m.to)
    acks = [m for m in c.queue if m.to == 1 and m.type == MT.APP_RESP]
    assert len(acks) == 2
    c.queue.clear()
    # ...so the entry commits on the followers' quorum alone; the leader only counts itself after advance.
    c.storages[1].append(rd.entries)
    if rd.hard_state is not None:
        c.storages[1].set_hard_state(rd.hard_state)
    leader.advance(rd)
    for m in acks:
        leader.step(m)
    assert leader.raft.log.committed == rd.entries[-1].index


def test_leader_without_quorum_of_durable_copies_does_not_commit_before_its_fsync() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    leader = c.nodes[1]
    leader.propose(b"v")
    rd = leader.ready()
    target = rd.entries[-1].index
    # Only one follower acknowledges; the leader has not finished its fsync (no advance yet): the next
    # Ready must not commit the entry, because one durable copy is not a majority of three.
    app = next(m for m in rd.early_messages if m.type == MT.APP and m.to == 2)
    c.nodes[2].step(app)
    c.process(2)
    ack = next(m for m in c.queue if m.to == 1 and m.type == MT.APP_RESP)
    c.queue.clear()
    leader.raft.step(ack)  # what a driver stepping early would do: still no commit
    assert leader.raft.log.committed < target


def test_election_messages_wait_for_the_durable_vote() -> None:
    c = Cluster([1, 2, 3], pre_vote=False)
    candidate = c.nodes[1]
    candidate.campaign()
    rd = candidate.ready()
    assert rd.hard_state is not None and rd.hard_state.vote == 1
    assert rd.early_messages == ()
    assert sorted(m.to for m in rd.messages if m.type == MT.VOTE) == [2, 3]


def _leader_with_acks_for_one_entry() -> tuple[Cluster, RawNode, int, list[Message]]:
    """A leader whose first proposal both followers have persisted; their acks are not yet stepped."""
    c = Cluster([1, 2, 3])
    c.elect(1)
    leader = c.nodes[1]
    leader.propose(b"first")
    c.process(1)
    first = max(m.entries[-1].index for m in c.queue if m.type == MT.APP and m.entries)
    for nid in (2, 3):
        for m in [m for m in c.queue if m.to == nid]:
            c.nodes[nid].step(m)
        c.process(nid)
    acks = [m for m in c.queue if m.to == 1 and m.type == MT.APP_RESP]
    c.queue.clear()
    return c, leader, first, acks


@pytest.mark.parametrize("acks_first", [True, False], ids=["notice-then-append", "append-then-notice"])
def test_a_commit_notice_rides_on_an_append_to_the_same_peer_in_the_same_ready(acks_first: bool) -> None:
    c, leader, first, acks = _leader_with_acks_for_one_entry()
    if not acks_first:
        leader.propose(b"second")
    for m in acks:  # the entry commits: the leader would announce it with an empty append...
        leader.step(m)
    if acks_first:
        leader.propose(b"second")  # ...but it has entries for both followers in the same turn
    rd = leader.ready()
    apps = [m for m in rd.early_messages + rd.messages if m.type == MT.APP]
    assert sorted(m.to for m in apps) == [2, 3]
    assert all(m.entries and m.entries[-1].data.endswith(b"second") for m in apps)
    assert all(m.commit == first for m in apps), "the commit index rides on the append"
    # Delivered, the one append commits and appends on each follower as the two would have.
    for m in apps:
        c.nodes[m.to].step(m)
        assert c.raft(m.to).log.committed == first
        assert c.raft(m.to).log.last_index() == first + 1


def test_a_commit_notice_with_nothing_else_to_send_still_goes_out() -> None:
    _, leader, first, acks = _leader_with_acks_for_one_entry()
    for m in acks:
        leader.step(m)
    rd = leader.ready()
    notices = [m for m in rd.early_messages + rd.messages if m.type == MT.APP]
    assert sorted(m.to for m in notices) == [2, 3]
    assert all(not m.entries and m.commit == first for m in notices)
