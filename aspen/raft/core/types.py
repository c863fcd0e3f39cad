"""Plain data exchanged between the Raft core, its storage, the WAL and the driver.

Everything here is an immutable value: the core hands these out in a `Ready`, the driver persists,
sends and applies them, and nothing mutates them afterwards. No I/O, no clock, no randomness.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

NodeId = int

#: Node id 0 means "nobody" (no vote, no leader), as in etcd-io/raft.
NONE: NodeId = 0


class EntryType(enum.IntEnum):
    NORMAL = 0
    #: `data` is an encoded `ConfChange` (see `aspen.raft.core.confchange`).
    CONF_CHANGE = 1


@dataclass(frozen=True, slots=True)
class Entry:
    term: int
    index: int
    type: EntryType = EntryType.NORMAL
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be on disk before any message that depends on it leaves the node."""

    term: int = 0
    vote: NodeId = NONE
    commit: int = 0


EMPTY_HARD_STATE = HardState()


@dataclass(frozen=True, slots=True)
class ConfState:
    """Cluster membership: voters decide elections and commits; learners only receive the log."""

    voters: tuple[NodeId, ...] = ()
    learners: tuple[NodeId, ...] = ()

    def is_empty(self) -> bool:
        return not self.voters and not self.learners


class ConfChangeType(enum.IntEnum):
    ADD_VOTER = 0  # also promotes a learner
    ADD_LEARNER = 1
    REMOVE_NODE = 2


@dataclass(frozen=True, slots=True)
class ConfChange:
    """One single-server membership change. `context` is opaque to Raft (the driver stores the
    member's address there)."""

    type: ConfChangeType
    node_id: NodeId
    context: bytes = b""


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    index: int = 0
    term: int = 0
    conf_state: ConfState = field(default_factory=ConfState)


@dataclass(frozen=True, slots=True)
class Snapshot:
    meta: SnapshotMeta = field(default_factory=SnapshotMeta)
    #: The state machine image at `meta.index` (opaque to Raft).
    data: bytes = b""

    def is_empty(self) -> bool:
        return self.meta.index == 0


EMPTY_SNAPSHOT = Snapshot()


class MessageType(enum.IntEnum):
    # Local messages (never sent on the network).
    HUP = 0  # start an election
    BEAT = 1  # leader: send heartbeats
    PROPOSE = 2
    # Network messages.
    APP = 3
    APP_RESP = 4
    VOTE = 5
    VOTE_RESP = 6
    PRE_VOTE = 7
    PRE_VOTE_RESP = 8
    SNAP = 9
    HEARTBEAT = 10
    HEARTBEAT_RESP = 11
    TRANSFER_LEADER = 12
    TIMEOUT_NOW = 13
    READ_INDEX = 14
    READ_INDEX_RESP = 15
    SNAP_STATUS = 16  # local: driver reports a snapshot send result
    UNREACHABLE = 17  # local: driver reports a peer as unreachable
    #: A follower hands its proposals to the leader (etcd's forwarded MsgProp). Like a forwarded
    #: READ_INDEX it carries no term: it asks, it does not assert anything about the log.
    PROP_FORWARD = 18
    #: The node a PROP_FORWARD reached did not append it (not the leader, or a transfer is under
    #: way); `context` names the proposal, so its callers learn it at once and may retry.
    PROP_DROPPED = 19


@dataclass(frozen=True, slots=True)
class Message:
    type: MessageType
    to: NodeId = NONE
    frm: NodeId = NONE
    term: int = 0
    #: APP: term of the entry before `entries`; VOTE/PRE_VOTE: candidate's last log term.
    log_term: int = 0
    #: APP: index before `entries`; APP_RESP: matched index or rejected index; VOTE: last log index.
    index: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    snapshot: Snapshot | None = None
    reject: bool = False
    #: APP_RESP on reject: follower's hint for fast backtracking (its last index, or a conflict index).
    reject_hint: int = 0
    #: APP_RESP on reject: term of the follower's entry at `reject_hint` (fast backtracking).
    log_term_hint: int = 0
    #: READ_INDEX / HEARTBEAT: the ReadIndex request context, echoed back. PROP_FORWARD /
    #: PROP_DROPPED: the proposer's name for the proposal.
    context: bytes = b""


class StateRole(enum.IntEnum):
    FOLLOWER = 0
    CANDIDATE = 1
    LEADER = 2
    PRE_CANDIDATE = 3


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state worth telling the driver about; never persisted."""

    leader_id: NodeId = NONE
    role: StateRole = StateRole.FOLLOWER


@dataclass(frozen=True, slots=True)
class ReadState:
    """A ReadIndex result: once `applied >= index` a read tagged `context` is linearizable."""

    index: int
    context: bytes


@dataclass(frozen=True, slots=True)
class Ready:
    """One batch of work for the driver, carried out in the order `aspen.raft.core.plan.plan`
    gives (`messages` only after `hard_state`, `entries` and `snapshot` are durable), then
    `advance(ready)`."""

    soft_state: SoftState | None = None
    hard_state: HardState | None = None
    read_states: tuple[ReadState, ...] = ()
    #: Contexts of this node's forwarded proposals that the node they reached did not append.
    dropped_proposals: tuple[bytes, ...] = ()
    entries: tuple[Entry, ...] = ()
    snapshot: Snapshot | None = None
    committed_entries: tuple[Entry, ...] = ()
    messages: tuple[Message, ...] = ()
    #: Messages the driver may send *before* `hard_state`/`entries` are durable, in parallel with
    #: its fsync (Raft thesis §10.2.1): a leader's appends and heartbeats of a term that is already
    #: durable, and any node's forwarded proposals (which promise nothing). Safe because the leader
    #: counts its own log toward commit only once `advance()` says it is durable, and because
    #: nothing in them depends on an unpersisted vote or term.
    early_messages: tuple[Message, ...] = ()

    def is_empty(self) -> bool:
        return (
            self.soft_state is None
            and self.hard_state is None
            and not self.read_states
            and not self.dropped_proposals
            and not self.entries
            and self.snapshot is None
            and not self.committed_entries
            and not self.messages
            and not self.early_messages
        )
