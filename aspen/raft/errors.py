"""What the Raft driver tells its callers. The node maps these to wire codes in one place."""

from __future__ import annotations


class RaftError(Exception):
    pass


class NotLeader(RaftError):
    """This node cannot order the request; `leader_id` is the leader it knows of (0: none)."""

    def __init__(self, leader_id: int) -> None:
        super().__init__(f"not leader; current leader: {leader_id or None}")
        self.leader_id = leader_id


class LeaderUnreachable(RaftError):
    """A leader is known but did not confirm this node's read in time (the link between them is
    cut or lossy): another node may serve the read."""

    def __init__(self, leader_id: int) -> None:
        super().__init__(f"leader {leader_id} did not confirm the read in time; try another node")
        self.leader_id = leader_id


class OutcomeUnknown(RaftError):
    """The deadline passed before the proposal was applied. It may still commit later."""


class ApplyFailed(RaftError):
    """A committed command raised inside the state machine. It changed nothing the driver knows of;
    the entry counts as applied and the node keeps serving. Always a bug, logged with the index."""


class ShuttingDown(RaftError):
    """The driver is stopping; nothing more will be applied."""


class AlreadyInitialized(RaftError):
    pass


class MembershipChangePending(RaftError):
    """Another membership change is not applied yet; retry shortly."""


class InvalidMembershipChange(RaftError):
    """The change makes no sense for the current membership (e.g. removing the last voter)."""
