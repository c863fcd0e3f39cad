"""Elections: vote granting, terms, pre-vote, check-quorum, leader lease."""

from __future__ import annotations

from raft_helpers import Cluster, make_config, make_storage

from aspen.raft.core import (
    CAMPAIGN_TRANSFER,
    Entry,
    HardState,
    Message,
    MessageType,
    Raft,
    StateRole,
)

MT = MessageType


def _raft(nid: int, voters: list[int], ents: list[Entry] | None = None, term: int = 0, **cfg: object) -> Raft:
    st = make_storage(voters)
    if ents:
        st.append(ents)
    if term:
        st.set_hard_state(HardState(term=term))
    return Raft(make_config(nid, **cfg), st)


def _vote_resp(r: Raft) -> Message:
    resps = [m for m in r.msgs if m.type in (MT.VOTE_RESP, MT.PRE_VOTE_RESP)]
    assert len(resps) == 1
    r.msgs.clear()
    return resps[0]


def test_vote_requires_up_to_date_log() -> None:
    ents = [Entry(term=1, index=1), Entry(term=2, index=2)]
    # Candidate's last term is lower: reject.
    r = _raft(1, [1, 2, 3], ents, term=2, check_quorum=False)
    r.step(Message(type=MT.VOTE, frm=2, to=1, term=3, index=5, log_term=1))
    assert _vote_resp(r).reject
    # Same last term, shorter log: reject.
    r.step(Message(type=MT.VOTE, frm=2, to=1, term=3, index=1, log_term=2))
    assert _vote_resp(r).reject
    # Same last term, same length: grant.
    r.step(Message(type=MT.VOTE, frm=2, to=1, term=3, index=2, log_term=2))
    resp = _vote_resp(r)
    assert not resp.reject and resp.term == 3
    assert r.vote == 2 and r.term == 3


def test_one_vote_per_term() -> None:
    r = _raft(1, [1, 2, 3], check_quorum=False)
    r.step(Message(type=MT.VOTE, frm=2, to=1, term=1))
    assert not _vote_resp(r).reject
    r.step(Message(type=MT.VOTE, frm=3, to=1, term=1))
    assert _vote_resp(r).reject
    # A retransmitted request from the candidate we voted for is granted again.
    r.step(Message(type=MT.VOTE, frm=2, to=1, term=1))
    assert not _vote_resp(r).reject
    assert r.vote == 2


def test_higher_term_turns_leader_into_follower() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    term = c.raft(1).term
    c.nodes[1].step(Message(type=MT.APP, frm=2, to=1, term=term + 1, index=0, log_term=0))
    assert c.raft(1).state == StateRole.FOLLOWER
    assert c.raft(1).term == term + 1
    assert c.raft(1).lead == 2


def test_stale_term_messages_are_ignored() -> None:
    r = _raft(1, [1, 2, 3], [Entry(term=1, index=1)], term=5)
    r.step(Message(type=MT.APP, frm=2, to=1, term=3, index=1, log_term=1, entries=(Entry(term=3, index=2),)))
    assert r.log.last_index() == 1
    assert r.term == 5
    # It tells the stale leader about the newer term (so it steps down).
    assert [(m.type, m.term) for m in r.msgs] == [(MT.APP_RESP, 5)]
    r.msgs.clear()
    r.step(Message(type=MT.VOTE, frm=2, to=1, term=4, index=9, log_term=4))
    assert r.msgs == [] and r.vote == 0


def test_candidate_wins_with_majority_and_appends_empty_entry() -> None:
    c = Cluster([1, 2, 3], pre_vote=False)
    c.elect(1)
    r = c.raft(1)
    assert r.term == 1
    assert r.log.last_term() == 1
    assert r.log.committed == r.log.last_index()


def test_candidate_loses_on_majority_reject() -> None:
    c = Cluster([1, 2, 3], pre_vote=False, check_quorum=False)
    # Give 2 and 3 a longer log so 1 is not up to date.
    for nid in (2, 3):
        c.storages[nid].append([Entry(term=1, index=1)])
        c.storages[nid].set_hard_state(HardState(term=1))
        c.add_node(nid, c.storages[nid], pre_vote=False, check_quorum=False)
    c.nodes[1].campaign()
    c.stabilize()
    assert c.raft(1).state == StateRole.FOLLOWER


def test_prevote_does_not_bump_term_of_partitioned_node() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    term = c.raft(1).term
    c.isolate(3)
    for _ in range(100):
        c.tick_all()
    # Node 3 pre-campaigned repeatedly but never incremented its term.
    assert c.raft(3).term == term
    assert c.raft(3).state in (StateRole.PRE_CANDIDATE, StateRole.FOLLOWER)
    c.heal()
    c.tick_all(5)
    assert c.leader() == 1
    assert c.raft(1).term == term
    assert c.raft(3).term == term and c.raft(3).lead == 1


def test_without_prevote_partitioned_node_disrupts_on_rejoin() -> None:
    # Contrast: the rule above is what prevents this.
    c = Cluster([1, 2, 3], pre_vote=False, check_quorum=False)
    c.elect(1)
    term = c.raft(1).term
    c.isolate(3)
    for _ in range(50):
        c.tick_all()
    assert c.raft(3).term > term


def test_prevote_not_granted_within_leader_lease() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    r2 = c.raft(2)
    term = r2.term
    # Node 2 heard from leader 1 just now: a higher-term pre-vote or vote is ignored outright.
    c.nodes[2].step(Message(type=MT.PRE_VOTE, frm=3, to=2, term=term + 1, index=100, log_term=term))
    c.nodes[2].step(Message(type=MT.VOTE, frm=3, to=2, term=term + 1, index=100, log_term=term))
    assert r2.msgs == [] and r2.term == term and r2.vote == 1


def test_transfer_campaign_ignores_lease() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    r2 = c.raft(2)
    term = r2.term
    c.nodes[2].step(
        Message(
            type=MT.VOTE,
            frm=3,
            to=2,
            term=term + 1,
            index=r2.log.last_index(),
            log_term=term,
            context=CAMPAIGN_TRANSFER,
        )
    )
    assert r2.term == term + 1 and r2.vote == 3


def test_check_quorum_leader_steps_down() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.isolate(1)
    for _ in range(2 * c.raft(1).election_timeout + 1):
        c.tick(1)
    assert c.raft(1).state == StateRole.FOLLOWER


def test_leader_with_quorum_stays_leader() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.isolate(3)
    for _ in range(50):
        c.tick_all()
    assert c.leader() == 1


def test_randomized_election_timeout_in_range() -> None:
    r = _raft(1, [1, 2, 3], election_tick=10)
    seen = set()
    for _ in range(200):
        r._reset_randomized_election_timeout()
        seen.add(r.randomized_election_timeout)
    assert min(seen) >= 10 and max(seen) < 20 and len(seen) > 5


def test_single_node_elects_itself_on_tick() -> None:
    c = Cluster([1])
    for _ in range(25):
        c.tick(1)
    assert c.raft(1).state == StateRole.LEADER


def test_stale_leader_told_new_term_even_without_prevote_or_check_quorum() -> None:
    # Found by the simulator: otherwise a node with a higher term and a stale config (whose
    # votes never reach the leader) could be locked out forever.
    r = _raft(1, [1, 2, 3], [Entry(term=1, index=1)], term=5, pre_vote=False, check_quorum=False)
    r.step(Message(type=MT.HEARTBEAT, frm=2, to=1, term=3))
    assert [(m.type, m.to, m.term) for m in r.msgs] == [(MT.APP_RESP, 2, 5)]
