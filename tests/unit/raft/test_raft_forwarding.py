"""Forwarded proposals: a follower hands a normal entry to the leader (etcd's forwarded MsgProp);
a node that cannot append it answers PROP_DROPPED with the proposer's context."""

from __future__ import annotations

import pytest
from raft_helpers import Cluster

from aspen.raft.core import (
    ConfChange,
    ConfChangeType,
    Entry,
    EntryType,
    Message,
    MessageType,
    ProposalDroppedError,
    StateRole,
)
from aspen.raft.core.confchange import encode_conf_change

MT = MessageType


def test_a_follower_proposal_reaches_the_leader_and_commits_everywhere() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.nodes[2].propose_or_forward(b"from-2", b"ctx")
    c.process(2)
    forwarded = [m for m in c.sent if m.type == MT.PROP_FORWARD]
    assert [(m.frm, m.to, m.term, m.context) for m in forwarded] == [(2, 1, 0, b"ctx")]
    c.stabilize()
    for nid in (1, 2, 3):
        assert c.data_applied(nid)[-1:] == [b"from-2"]
    # The leader stamped the entry with its own term and index.
    last = c.applied[2][-1]
    assert last.term == c.raft(1).term and last.index == c.raft(1).log.last_index()
    assert c.dropped[2] == []


def test_a_leader_proposes_directly() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.nodes[1].propose_or_forward(b"own", b"ctx")
    c.stabilize()
    assert not [m for m in c.sent if m.type == MT.PROP_FORWARD]
    assert c.data_applied(3)[-1:] == [b"own"]


def test_no_leader_means_the_proposal_is_refused_at_once() -> None:
    c = Cluster([1, 2, 3])
    with pytest.raises(ProposalDroppedError):
        c.nodes[2].propose_or_forward(b"x", b"ctx")


def test_a_proposal_reaching_a_node_that_lost_leadership_comes_back_dropped() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.nodes[2].propose_or_forward(b"late", b"ctx-2")
    c.process(2)
    # Node 1 is deposed before the forwarded proposal reaches it.
    c.raft(1).become_follower(c.raft(1).term + 1, 3)
    c.stabilize()
    assert c.dropped[2] == [b"ctx-2"]
    assert b"late" not in c.data_applied(2)


def test_a_forwarded_membership_change_is_refused() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    cc = encode_conf_change(ConfChange(type=ConfChangeType.REMOVE_NODE, node_id=3))
    entry = Entry(term=0, index=0, type=EntryType.CONF_CHANGE, data=cc)
    c.nodes[1].step(Message(type=MT.PROP_FORWARD, to=1, frm=2, entries=(entry,), context=b"cc"))
    c.stabilize()
    assert c.dropped[2] == [b"cc"]
    assert c.raft(1).state == StateRole.LEADER and 3 in c.raft(1).prs.progress
