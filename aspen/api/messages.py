"""Wire schema: the tagged-enum requests and responses of the client RPC.

Each frame is a msgpack map `{"type": "<VariantName>", ...fields}` with the variant and field names of
the original Aspen. Untrusted input is validated here, once, in strict mode (no coercion: a string where
bytes are expected is an error, not a conversion). Inside the node these models are turned into the
plain dataclasses of `aspen.kv` right away.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import ConfigDict, Field, TypeAdapter

from aspen.api import coordination as _coordination  # noqa: F401  (declares every coordination operation)
from aspen.api.blob_messages import BlobRequest, BlobResponse
from aspen.api.lease_messages import LeaseRequest, LeaseResponse
from aspen.api.limits import MAX_BATCH_READ_KEYS, MAX_SCAN_LIMIT
from aspen.api.wire import U64, NodeIdField, at_most, int_range
from aspen.api.wire import WireModel as _Model


# --------------------------------------------------------------------------------------- requests --
class GetHealth(_Model):
    type: Literal["GetHealth"] = "GetHealth"


class GetRaftMetrics(_Model):
    type: Literal["GetRaftMetrics"] = "GetRaftMetrics"


class GetLeader(_Model):
    type: Literal["GetLeader"] = "GetLeader"


class GetNodeInfo(_Model):
    type: Literal["GetNodeInfo"] = "GetNodeInfo"


class GetClusterTicket(_Model):
    type: Literal["GetClusterTicket"] = "GetClusterTicket"


class InitCluster(_Model):
    type: Literal["InitCluster"] = "InitCluster"


class Ping(_Model):
    type: Literal["Ping"] = "Ping"


class GetClusterState(_Model):
    type: Literal["GetClusterState"] = "GetClusterState"


class GetMetrics(_Model):
    type: Literal["GetMetrics"] = "GetMetrics"


class GetStateHash(_Model):
    """This node's applied index and a hash of its state machine (for checking replicas agree)."""

    type: Literal["GetStateHash"] = "GetStateHash"


class TriggerSnapshot(_Model):
    type: Literal["TriggerSnapshot"] = "TriggerSnapshot"


class SnapshotSave(_Model):
    """Serialise this node's state at a ReadIndex point for a backup; fetch it with GetSnapshotChunk."""

    type: Literal["SnapshotSave"] = "SnapshotSave"


class GetSnapshotChunk(_Model):
    """Bytes of a SnapshotSave image from `offset` (at most 4 MiB per answer); same node only."""

    type: Literal["GetSnapshotChunk"] = "GetSnapshotChunk"
    snapshot_id: Annotated[str, Field(min_length=1, max_length=64)]
    offset: U64


class AddLearner(_Model):
    type: Literal["AddLearner"] = "AddLearner"
    node_id: NodeIdField
    #: EndpointAddr JSON: {"id": "<hex64>", "addrs": [{"Ip": "host:port"}, ...]}
    addr: str


class ChangeMembership(_Model):
    type: Literal["ChangeMembership"] = "ChangeMembership"
    members: list[NodeIdField]


class PromoteLearner(_Model):
    type: Literal["PromoteLearner"] = "PromoteLearner"
    learner_id: NodeIdField
    replace_node: NodeIdField | None = None
    is_force: bool = False


class ReadKey(_Model):
    type: Literal["ReadKey"] = "ReadKey"
    key: str
    #: Serve from the contacted node's local state without a ReadIndex barrier (may be stale).
    stale: bool = False


class WriteKey(_Model):
    type: Literal["WriteKey"] = "WriteKey"
    key: str
    value: bytes


class DeleteKey(_Model):
    type: Literal["DeleteKey"] = "DeleteKey"
    key: str


class CompareAndSwapKey(_Model):
    type: Literal["CompareAndSwapKey"] = "CompareAndSwapKey"
    key: str
    expected: bytes | None = None
    new_value: bytes


class CompareAndDeleteKey(_Model):
    type: Literal["CompareAndDeleteKey"] = "CompareAndDeleteKey"
    key: str
    expected: bytes


class ScanKeys(_Model):
    type: Literal["ScanKeys"] = "ScanKeys"
    prefix: str = ""
    #: None: the node's default page size. 0 is refused rather than read as etcd's "no limit": a
    #: page is always bounded here, and a page of 0 keys could carry no continuation token.
    limit: Annotated[int, int_range(1, MAX_SCAN_LIMIT)] | None = None
    continuation_token: str | None = None
    stale: bool = False
    #: Also list keys under the reserved prefixes (`__coord:`, `_system:`, ...); read-only access.
    include_internal: bool = False


class BatchRead(_Model):
    type: Literal["BatchRead"] = "BatchRead"
    keys: Annotated[list[str], at_most(MAX_BATCH_READ_KEYS, "keys per batch read")]
    stale: bool = False


class SetOperation(_Model):
    type: Literal["Set"] = "Set"
    key: str
    value: bytes


class DeleteOperation(_Model):
    type: Literal["Delete"] = "Delete"
    key: str


Operation = Annotated[SetOperation | DeleteOperation, Field(discriminator="type")]


class BatchWrite(_Model):
    type: Literal["BatchWrite"] = "BatchWrite"
    operations: list[Operation]


class ValueEquals(_Model):
    type: Literal["ValueEquals"] = "ValueEquals"
    key: str
    expected: bytes


class KeyExists(_Model):
    type: Literal["KeyExists"] = "KeyExists"
    key: str


class KeyNotExists(_Model):
    type: Literal["KeyNotExists"] = "KeyNotExists"
    key: str


Condition = Annotated[ValueEquals | KeyExists | KeyNotExists, Field(discriminator="type")]


class ConditionalBatchWrite(_Model):
    type: Literal["ConditionalBatchWrite"] = "ConditionalBatchWrite"
    conditions: list[Condition]
    operations: list[Operation]


Request = Annotated[
    GetHealth
    | GetRaftMetrics
    | GetLeader
    | GetNodeInfo
    | GetClusterTicket
    | InitCluster
    | Ping
    | GetClusterState
    | GetMetrics
    | TriggerSnapshot
    | SnapshotSave
    | GetSnapshotChunk
    | GetStateHash
    | AddLearner
    | ChangeMembership
    | PromoteLearner
    | ReadKey
    | WriteKey
    | DeleteKey
    | CompareAndSwapKey
    | CompareAndDeleteKey
    | ScanKeys
    | BatchRead
    | BatchWrite
    | ConditionalBatchWrite
    | LeaseRequest
    | BlobRequest,
    Field(discriminator="type"),
]

REQUEST_ADAPTER: TypeAdapter[Request] = TypeAdapter(Request, config=ConfigDict(defer_build=True))

#: Requests served before the cluster is initialised ("bootstrap ops"): enough to inspect a fresh
#: node and to initialise it.
BOOTSTRAP_REQUESTS = frozenset(
    {"Ping", "GetHealth", "GetNodeInfo", "GetClusterTicket", "GetRaftMetrics", "InitCluster", "GetMetrics"}
)


# -------------------------------------------------------------------------------------- responses --
class Error(_Model):
    type: Literal["Error"] = "Error"
    code: str
    message: str
    #: NOT_LEADER only: the leader this node believes in, if any.
    leader_id: int | None = None


class Health(_Model):
    type: Literal["Health"] = "Health"
    status: Literal["healthy", "degraded", "unhealthy"]
    node_id: int
    raft_node_id: int
    uptime_seconds: int
    is_initialized: bool
    membership_node_count: int | None = None
    iroh_node_id: str | None = None


class ReplicationProgress(_Model):
    node_id: int
    matched_index: int | None = None


class RaftMetrics(_Model):
    type: Literal["RaftMetrics"] = "RaftMetrics"
    node_id: int
    state: Literal["Learner", "Follower", "Candidate", "Leader", "Shutdown"]
    current_leader: int | None = None
    current_term: int
    last_log_index: int | None = None
    last_applied_index: int | None = None
    snapshot_index: int | None = None
    replication: list[ReplicationProgress] | None = None


class Leader(_Model):
    type: Literal["Leader"] = "Leader"
    leader_id: int | None = None


class NodeInfo(_Model):
    type: Literal["NodeInfo"] = "NodeInfo"
    node_id: int
    endpoint_addr: str


class ClusterTicketResult(_Model):
    type: Literal["ClusterTicket"] = "ClusterTicket"
    ticket: str
    endpoint_id: str
    bootstrap_peers: int


class InitResult(_Model):
    type: Literal["InitResult"] = "InitResult"
    is_success: bool
    error: str | None = None


class Pong(_Model):
    type: Literal["Pong"] = "Pong"


class NodeDescriptor(_Model):
    node_id: int
    endpoint_addr: str
    is_voter: bool
    is_learner: bool
    is_leader: bool


class ClusterState(_Model):
    type: Literal["ClusterState"] = "ClusterState"
    nodes: list[NodeDescriptor]
    leader_id: int | None = None
    this_node_id: int


class Metrics(_Model):
    type: Literal["Metrics"] = "Metrics"
    prometheus_text: str


class StateHash(_Model):
    type: Literal["StateHash"] = "StateHash"
    applied_index: int
    state_hash: str
    key_count: int


class SnapshotResult(_Model):
    type: Literal["SnapshotResult"] = "SnapshotResult"
    is_success: bool
    snapshot_index: int | None = None
    error: str | None = None


class SnapshotSaveResult(_Model):
    type: Literal["SnapshotSaveResult"] = "SnapshotSaveResult"
    snapshot_id: str
    node_id: int
    applied_index: int
    total_bytes: int
    #: BLAKE3 hex of the whole file (`b3sum` of the saved file prints the same).
    checksum: str


class SnapshotChunk(_Model):
    type: Literal["SnapshotChunk"] = "SnapshotChunk"
    snapshot_id: str
    offset: int
    data: bytes
    total_bytes: int
    is_last: bool
    #: Repeated on every chunk so the last one carries the metadata the client verifies against.
    applied_index: int
    checksum: str


class AddLearnerResult(_Model):
    type: Literal["AddLearnerResult"] = "AddLearnerResult"
    is_success: bool
    error: str | None = None


class ChangeMembershipResult(_Model):
    type: Literal["ChangeMembershipResult"] = "ChangeMembershipResult"
    is_success: bool
    error: str | None = None


class PromoteLearnerResult(_Model):
    type: Literal["PromoteLearnerResult"] = "PromoteLearnerResult"
    is_success: bool
    learner_id: int
    previous_voters: list[int]
    new_voters: list[int]
    message: str
    error: str | None = None


class ReadResult(_Model):
    type: Literal["ReadResult"] = "ReadResult"
    value: bytes | None = None
    was_found: bool
    error: str | None = None


class WriteResult(_Model):
    type: Literal["WriteResult"] = "WriteResult"
    is_success: bool
    error: str | None = None


class DeleteResult(_Model):
    type: Literal["DeleteResult"] = "DeleteResult"
    key: str
    was_deleted: bool
    error: str | None = None


class CompareAndSwapResult(_Model):
    type: Literal["CompareAndSwapResult"] = "CompareAndSwapResult"
    is_success: bool
    actual_value: bytes | None = None
    error: str | None = None


class ScanEntry(_Model):
    key: str
    value: bytes
    version: int
    create_revision: int
    mod_revision: int


class ScanResult(_Model):
    type: Literal["ScanResult"] = "ScanResult"
    entries: list[ScanEntry]
    count: int
    is_truncated: bool
    continuation_token: str | None = None
    error: str | None = None


class BatchReadResult(_Model):
    type: Literal["BatchReadResult"] = "BatchReadResult"
    is_success: bool
    values: list[bytes | None] | None = None
    error: str | None = None


class BatchWriteResult(_Model):
    type: Literal["BatchWriteResult"] = "BatchWriteResult"
    is_success: bool
    operations_applied: int | None = None
    error: str | None = None


class ConditionalBatchWriteResult(_Model):
    type: Literal["ConditionalBatchWriteResult"] = "ConditionalBatchWriteResult"
    is_success: bool
    conditions_met: bool
    operations_applied: int | None = None
    failed_condition_index: int | None = None
    failed_condition_reason: str | None = None
    error: str | None = None


Response = Annotated[
    Error
    | Health
    | RaftMetrics
    | Leader
    | NodeInfo
    | ClusterTicketResult
    | InitResult
    | Pong
    | ClusterState
    | Metrics
    | SnapshotResult
    | SnapshotSaveResult
    | SnapshotChunk
    | StateHash
    | AddLearnerResult
    | ChangeMembershipResult
    | PromoteLearnerResult
    | ReadResult
    | WriteResult
    | DeleteResult
    | CompareAndSwapResult
    | ScanResult
    | BatchReadResult
    | BatchWriteResult
    | ConditionalBatchWriteResult
    | LeaseResponse
    | BlobResponse,
    Field(discriminator="type"),
]

# Deferred: building a union's validator builds every member's, ≈ 0.1 s that a one-shot CLI call
# should not pay. The node builds the request adapter at start (`warm_up`).
RESPONSE_ADAPTER: TypeAdapter[Response] = TypeAdapter(Response, config=ConfigDict(defer_build=True))

#: Each response variant by its `type` tag. The client validates a response against its own variant
#: only (what the discriminated union does too), so a call builds the validators it uses, not all.
RESPONSE_TYPES: dict[str, type[_Model]] = {
    cls.model_fields["type"].default: cls for cls in get_args(get_args(Response)[0])
}


def warm_up() -> None:
    """Build the request validator now, so a server's first request does not pay for it."""
    REQUEST_ADAPTER.validate_python({"type": "Ping"})
