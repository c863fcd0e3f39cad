"""Wire schema of the blob requests and results, same conventions as `messages`.

Blobs up to `BLOB_INLINE_THRESHOLD` travel inline (`AddBlob.data`, `GetBlobResult.data`). Larger
ones go over the bulk data channel (TLS over TCP on the node's port number, docs/protocol.md §6):
`StartBlobUpload` and `GetBlob` hand out a one-time `BlobTransfer` token the client presents there.
Hashes are plain strings here: a malformed one is a domain answer (`error="invalid hash: …"`),
as the original Aspen answers it, not a decoding error.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from aspen.api.wire import U64, NodeIdField
from aspen.api.wire import WireModel as _Model

__all__ = ["BLOB_INLINE_THRESHOLD", "BlobRequest", "BlobResponse"]

#: Blobs of at most this many bytes are returned inline by GetBlob and may be sent inline by AddBlob.
BLOB_INLINE_THRESHOLD = 4 * 1024 * 1024

HashText = Annotated[str, Field(max_length=128)]
TagName = Annotated[str, Field(min_length=1, max_length=256)]


# --------------------------------------------------------------------------------------- requests --
class AddBlob(_Model):
    type: Literal["AddBlob"] = "AddBlob"
    data: Annotated[bytes, Field(max_length=BLOB_INLINE_THRESHOLD)]
    tag: TagName | None = None


class StartBlobUpload(_Model):
    """Announce a blob of `size_bytes` to send over the data channel; answered by BlobUploadReady."""

    type: Literal["StartBlobUpload"] = "StartBlobUpload"
    size_bytes: U64
    tag: TagName | None = None


class GetBlob(_Model):
    type: Literal["GetBlob"] = "GetBlob"
    hash: HashText


class HasBlob(_Model):
    type: Literal["HasBlob"] = "HasBlob"
    hash: HashText


class GetBlobTicket(_Model):
    type: Literal["GetBlobTicket"] = "GetBlobTicket"
    hash: HashText


class ListBlobs(_Model):
    type: Literal["ListBlobs"] = "ListBlobs"
    limit: Annotated[int, Field(ge=0, le=2**32 - 1)] = 100
    continuation_token: HashText | None = None


class ProtectBlob(_Model):
    type: Literal["ProtectBlob"] = "ProtectBlob"
    hash: HashText
    tag: TagName


class UnprotectBlob(_Model):
    type: Literal["UnprotectBlob"] = "UnprotectBlob"
    tag: TagName


class DeleteBlob(_Model):
    type: Literal["DeleteBlob"] = "DeleteBlob"
    hash: HashText
    is_force: bool = False


class DownloadBlob(_Model):
    type: Literal["DownloadBlob"] = "DownloadBlob"
    ticket: Annotated[str, Field(max_length=8192)]
    tag: TagName | None = None


class DownloadBlobByHash(_Model):
    type: Literal["DownloadBlobByHash"] = "DownloadBlobByHash"
    hash: HashText
    tag: TagName | None = None


class DownloadBlobByProvider(_Model):
    type: Literal["DownloadBlobByProvider"] = "DownloadBlobByProvider"
    hash: HashText
    #: The providing node's endpoint id (64 hex).
    provider: Annotated[str, Field(max_length=128)]
    tag: TagName | None = None


class GetBlobStatus(_Model):
    type: Literal["GetBlobStatus"] = "GetBlobStatus"
    hash: HashText


class BlobReplicatePull(_Model):
    type: Literal["BlobReplicatePull"] = "BlobReplicatePull"
    hash: HashText
    size_bytes: U64
    #: The providing node's endpoint id (64 hex).
    provider: Annotated[str, Field(max_length=128)]
    tag: TagName | None = None


class GetBlobReplicationStatus(_Model):
    type: Literal["GetBlobReplicationStatus"] = "GetBlobReplicationStatus"
    hash: HashText


class TriggerBlobReplication(_Model):
    type: Literal["TriggerBlobReplication"] = "TriggerBlobReplication"
    hash: HashText
    target_nodes: Annotated[list[NodeIdField], Field(max_length=16)] = []
    #: 0 = the blob's recorded factor (or the cluster default).
    replication_factor: Annotated[int, Field(ge=0, le=7)] = 0


class RunBlobRepairCycle(_Model):
    type: Literal["RunBlobRepairCycle"] = "RunBlobRepairCycle"


BlobRequest = (
    AddBlob
    | StartBlobUpload
    | GetBlob
    | HasBlob
    | GetBlobTicket
    | ListBlobs
    | ProtectBlob
    | UnprotectBlob
    | DeleteBlob
    | DownloadBlob
    | DownloadBlobByHash
    | DownloadBlobByProvider
    | GetBlobStatus
    | BlobReplicatePull
    | GetBlobReplicationStatus
    | TriggerBlobReplication
    | RunBlobRepairCycle
)


# -------------------------------------------------------------------------------------- responses --
class BlobTransfer(_Model):
    """Where and with what to move a large blob's bytes: a one-time token for the data channel of
    the node with `endpoint_id` (TLS over TCP at `addrs`, pinned to that key)."""

    token: Annotated[bytes, Field(min_length=32, max_length=32)]
    endpoint_id: str
    addrs: list[str]
    size_bytes: int


class AddBlobResult(_Model):
    type: Literal["AddBlobResult"] = "AddBlobResult"
    is_success: bool
    hash: str | None = None
    size_bytes: int | None = None
    was_new: bool | None = None
    error: str | None = None


class BlobUploadReady(_Model):
    type: Literal["BlobUploadReady"] = "BlobUploadReady"
    transfer: BlobTransfer


class GetBlobResult(_Model):
    type: Literal["GetBlobResult"] = "GetBlobResult"
    was_found: bool
    data: bytes | None = None
    error: str | None = None
    is_streaming: bool = False
    size_bytes: int = 0
    #: Set when `is_streaming`: fetch the bytes over the data channel with this token.
    transfer: BlobTransfer | None = None


class HasBlobResult(_Model):
    type: Literal["HasBlobResult"] = "HasBlobResult"
    does_exist: bool
    error: str | None = None


class GetBlobTicketResult(_Model):
    type: Literal["GetBlobTicketResult"] = "GetBlobTicketResult"
    is_success: bool
    ticket: str | None = None
    error: str | None = None


class BlobListEntry(_Model):
    hash: str
    size_bytes: int


class ListBlobsResult(_Model):
    type: Literal["ListBlobsResult"] = "ListBlobsResult"
    blobs: list[BlobListEntry]
    count: int
    has_more: bool
    continuation_token: str | None = None
    error: str | None = None


class ProtectBlobResult(_Model):
    type: Literal["ProtectBlobResult"] = "ProtectBlobResult"
    is_success: bool
    error: str | None = None


class UnprotectBlobResult(_Model):
    type: Literal["UnprotectBlobResult"] = "UnprotectBlobResult"
    is_success: bool
    error: str | None = None


class DeleteBlobResult(_Model):
    type: Literal["DeleteBlobResult"] = "DeleteBlobResult"
    is_success: bool
    error: str | None = None


class DownloadBlobResult(_Model):
    type: Literal["DownloadBlobResult"] = "DownloadBlobResult"
    is_success: bool
    hash: str | None = None
    size_bytes: int | None = None
    error: str | None = None


class GetBlobStatusResult(_Model):
    type: Literal["GetBlobStatusResult"] = "GetBlobStatusResult"
    was_found: bool
    hash: str | None = None
    size_bytes: int | None = None
    complete: bool | None = None
    tags: list[str] | None = None
    error: str | None = None


class BlobReplicatePullResult(_Model):
    type: Literal["BlobReplicatePullResult"] = "BlobReplicatePullResult"
    is_success: bool
    hash: str | None = None
    size_bytes: int | None = None
    duration_ms: int | None = None
    error: str | None = None


class GetBlobReplicationStatusResult(_Model):
    type: Literal["GetBlobReplicationStatusResult"] = "GetBlobReplicationStatusResult"
    was_found: bool
    hash: str | None = None
    size_bytes: int | None = None
    replica_nodes: list[int] | None = None
    replication_factor: int | None = None
    min_replicas: int | None = None
    status: str | None = None
    replicas_needed: int | None = None
    updated_at: int | None = None
    error: str | None = None


class FailedNode(_Model):
    node_id: int
    error: str


class TriggerBlobReplicationResult(_Model):
    type: Literal["TriggerBlobReplicationResult"] = "TriggerBlobReplicationResult"
    is_success: bool
    hash: str | None = None
    successful_nodes: list[int] | None = None
    failed_nodes: list[FailedNode] | None = None
    duration_ms: int | None = None
    error: str | None = None


class RunBlobRepairCycleResult(_Model):
    type: Literal["RunBlobRepairCycleResult"] = "RunBlobRepairCycleResult"
    is_success: bool
    error: str | None = None


BlobResponse = (
    AddBlobResult
    | BlobUploadReady
    | GetBlobResult
    | HasBlobResult
    | GetBlobTicketResult
    | ListBlobsResult
    | ProtectBlobResult
    | UnprotectBlobResult
    | DeleteBlobResult
    | DownloadBlobResult
    | GetBlobStatusResult
    | BlobReplicatePullResult
    | GetBlobReplicationStatusResult
    | TriggerBlobReplicationResult
    | RunBlobRepairCycleResult
)
