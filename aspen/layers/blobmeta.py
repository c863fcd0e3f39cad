"""Blob metadata as a layer: which nodes hold a verified copy of a blob, and its replication policy.

Blob *bytes* never go through Raft. What the cluster agrees on is, per blob, one JSON record under
`_system:blob:replica:<hash>`::

    {"hash", "size", "nodes": [node ids holding a verified copy], "policy": {"replication_factor",
     "min_replicas", "failure_domain_key", "enable_quorum_writes"}, "updated_at_micros"}

Each change is one operation applied atomically to the record (add this holder / drop this
holder), so concurrent changes from several nodes never lose one another and never need a
read-then-compare-and-swap retry. The record format is the one older nodes wrote by
compare-and-swap, so their records (and backups, and plain-write log entries) stay readable.

Invariants:

* A node id is added to `nodes` only by that node, after it has a complete, hash-verified copy on
  disk; it removes itself when its copy is gone. A record left with no node is deleted.
* `updated_at_micros` is the proposer's clock (`now_ms` of the command), informational only: apply
  never compares it with anything, so a follower may hand the command to the leader as it is.
* A stored value that is not a record is treated as absent: an add replaces it with a fresh record,
  a remove leaves it alone. Decoding is bounded (`aspen.kv.records.load_json`).
* The blob hash's format is the node's to check (it names the key); here it must only make a key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Final

from aspen.kv.layer import KvReader, KvTxn
from aspen.kv.records import RecordError, load_json
from aspen.layers.framework import Layer, check_user_key

__all__ = [
    "LAYER",
    "META_PREFIX",
    "BlobHolderAdd",
    "BlobHolderRemove",
    "BlobMetaOp",
    "BlobMetaResult",
    "ReplicaRecord",
    "ReplicationPolicy",
    "meta_key",
    "read_record",
]

META_PREFIX: Final = "_system:blob:replica:"
MAX_REPLICATION_FACTOR: Final = 7
#: Defaults when a stored record lacks policy fields.
FALLBACK_FACTOR: Final = 3
FALLBACK_MIN: Final = 2
_U64_MAX: Final = 2**64 - 1


def meta_key(digest: str) -> str:
    return META_PREFIX + digest


@dataclass(frozen=True, slots=True)
class ReplicationPolicy:
    replication_factor: int
    min_replicas: int
    failure_domain_key: str | None = None
    enable_quorum_writes: bool = False

    @staticmethod
    def for_factor(factor: int) -> ReplicationPolicy:
        factor = max(1, min(MAX_REPLICATION_FACTOR, factor))
        # A majority of the wanted copies; 1 for factors 1 and 2.
        return ReplicationPolicy(replication_factor=factor, min_replicas=max(1, factor // 2 + factor % 2))


@dataclass(frozen=True, slots=True)
class ReplicaRecord:
    hash: str
    size: int
    nodes: tuple[int, ...]
    policy: ReplicationPolicy
    updated_at_micros: int | None = None
    extra: dict[str, object] = field(default_factory=dict, compare=False)

    def encode(self) -> bytes:
        doc = {
            "hash": self.hash,
            "size": self.size,
            "nodes": list(self.nodes),
            "policy": {
                "replication_factor": self.policy.replication_factor,
                "min_replicas": self.policy.min_replicas,
                "failure_domain_key": self.policy.failure_domain_key,
                "enable_quorum_writes": self.policy.enable_quorum_writes,
            },
            "updated_at_micros": self.updated_at_micros,
        }
        return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()

    @staticmethod
    def decode(data: bytes) -> ReplicaRecord:
        """Parse a stored record; raises ValueError if it is not one."""
        try:
            # The one bounded parser of stored records: deep or huge JSON is "not a record" here too.
            doc = load_json(data)
            policy = doc.get("policy") or {}
            nodes = doc.get("nodes") or []
            if not all(isinstance(n, int) and n > 0 for n in nodes):
                raise ValueError("nodes must be positive integers")
            return ReplicaRecord(
                hash=str(doc["hash"]),
                size=int(doc["size"]),
                nodes=tuple(sorted(set(nodes))),
                policy=ReplicationPolicy(
                    replication_factor=int(policy.get("replication_factor", FALLBACK_FACTOR)),
                    min_replicas=int(policy.get("min_replicas", FALLBACK_MIN)),
                    failure_domain_key=policy.get("failure_domain_key"),
                    enable_quorum_writes=bool(policy.get("enable_quorum_writes", False)),
                ),
                updated_at_micros=doc.get("updated_at_micros"),
            )
        except (KeyError, TypeError, AttributeError, OverflowError, RecordError) as err:
            raise ValueError(f"not a blob replica record: {err}") from None

    def with_node(self, node_id: int, now_micros: int) -> ReplicaRecord:
        return replace(self, nodes=tuple(sorted({*self.nodes, node_id})), updated_at_micros=now_micros)

    def without_node(self, node_id: int, now_micros: int) -> ReplicaRecord:
        return replace(self, nodes=tuple(n for n in self.nodes if n != node_id), updated_at_micros=now_micros)


def _check(digest: str, node_id: int) -> str | None:
    if not 0 < node_id <= _U64_MAX:
        return f"node id must be between 1 and {_U64_MAX}"
    return check_user_key(META_PREFIX, digest)


@dataclass(frozen=True, slots=True)
class BlobHolderAdd:
    """`node_id` holds a verified copy of `hash` (creating the record with `replication_factor`)."""

    hash: str
    size: int
    node_id: int
    replication_factor: int

    def check(self) -> str | None:
        if not 0 <= self.size <= _U64_MAX:
            return f"size must be between 0 and {_U64_MAX}"
        if not 1 <= self.replication_factor <= MAX_REPLICATION_FACTOR:
            return f"replication factor must be between 1 and {MAX_REPLICATION_FACTOR}"
        return _check(self.hash, self.node_id)


@dataclass(frozen=True, slots=True)
class BlobHolderRemove:
    """`node_id` no longer holds a copy of `hash`."""

    hash: str
    node_id: int

    def check(self) -> str | None:
        return _check(self.hash, self.node_id)


BlobMetaOp = BlobHolderAdd | BlobHolderRemove


@dataclass(frozen=True, slots=True)
class BlobMetaResult:
    """`changed`: the record was written (or deleted); `nodes`: the holders after the op."""

    is_success: bool
    changed: bool = False
    nodes: tuple[int, ...] = ()
    error: str | None = None


def read_record(reader: KvReader, digest: str) -> tuple[ReplicaRecord | None, bool]:
    """The record of `digest` (None if absent or unreadable), and whether a value is stored."""
    raw = reader.get(meta_key(digest))
    if raw is None:
        return None, False
    try:
        return ReplicaRecord.decode(raw), True
    except ValueError:
        return None, True


def apply(txn: KvTxn, op: BlobMetaOp, now_ms: int) -> BlobMetaResult:
    record, _ = read_record(txn, op.hash)
    now_micros = now_ms * 1000
    key = meta_key(op.hash)
    if isinstance(op, BlobHolderAdd):
        if record is None:
            policy = ReplicationPolicy.for_factor(op.replication_factor)
            new = ReplicaRecord(op.hash, op.size, (op.node_id,), policy, now_micros)
        elif op.node_id in record.nodes:
            return BlobMetaResult(is_success=True, nodes=record.nodes)
        else:
            new = record.with_node(op.node_id, now_micros)
        txn.put(key, new.encode())
        return BlobMetaResult(is_success=True, changed=True, nodes=new.nodes)
    if record is None or op.node_id not in record.nodes:
        return BlobMetaResult(is_success=True, nodes=record.nodes if record else ())
    new = record.without_node(op.node_id, now_micros)
    if new.nodes:
        txn.put(key, new.encode())
    else:
        txn.delete(key)
    return BlobMetaResult(is_success=True, changed=True, nodes=new.nodes)


def rejected(message: str) -> BlobMetaResult:
    return BlobMetaResult(is_success=False, error=message)


LAYER: Final[Layer[BlobMetaOp, BlobMetaResult]] = Layer(
    name="blobmeta",
    ops=(BlobHolderAdd, BlobHolderRemove),
    apply=apply,
    rejected=rejected,
    prefixes=(META_PREFIX,),
)
