"""Aspen's deterministic, sans-I/O Raft core (etcd-io/raft design).

Public surface: `RawNode` + `Config` driven through `Ready`s, the `Storage` protocol with
`MemoryStorage`, membership helpers, and the shared value types.
"""

from aspen.raft.core.confchange import apply_conf_change, decode_conf_change, encode_conf_change
from aspen.raft.core.log import RaftLog
from aspen.raft.core.progress import Inflights, Progress, ProgressState, ProgressTracker
from aspen.raft.core.raft import CAMPAIGN_TRANSFER, Config, ProposalDroppedError, Raft
from aspen.raft.core.rawnode import PeerProgress, RawNode, Status, StepLocalMessageError
from aspen.raft.core.storage import (
    CompactedError,
    MemoryStorage,
    SnapshotOutOfDateError,
    Storage,
    StorageError,
    UnavailableError,
    conf_state_from,
)
from aspen.raft.core.types import (
    EMPTY_HARD_STATE,
    EMPTY_SNAPSHOT,
    NONE,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    NodeId,
    ReadState,
    Ready,
    Snapshot,
    SnapshotMeta,
    SoftState,
    StateRole,
)

__all__ = [
    "CAMPAIGN_TRANSFER",
    "EMPTY_HARD_STATE",
    "EMPTY_SNAPSHOT",
    "NONE",
    "CompactedError",
    "ConfChange",
    "ConfChangeType",
    "ConfState",
    "Config",
    "Entry",
    "EntryType",
    "HardState",
    "Inflights",
    "MemoryStorage",
    "Message",
    "MessageType",
    "NodeId",
    "PeerProgress",
    "Progress",
    "ProgressState",
    "ProgressTracker",
    "ProposalDroppedError",
    "Raft",
    "RaftLog",
    "RawNode",
    "ReadState",
    "Ready",
    "Snapshot",
    "SnapshotMeta",
    "SnapshotOutOfDateError",
    "SoftState",
    "StateRole",
    "Status",
    "StepLocalMessageError",
    "Storage",
    "StorageError",
    "UnavailableError",
    "apply_conf_change",
    "conf_state_from",
    "decode_conf_change",
    "encode_conf_change",
]
