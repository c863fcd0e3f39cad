"""Replication metadata and the rules over it. Pure: no I/O, no clock (time comes in as arguments).

Blob *bytes* never go through Raft. What the cluster agrees on (through the KV store, so through
Raft) is, per blob, a JSON record under `_system:blob:replica:<hash>` (reference §2.4)::

    {"hash", "size", "nodes": [node ids holding a verified copy], "policy": {"replication_factor",
     "min_replicas", "failure_domain_key", "enable_quorum_writes"}, "updated_at_micros"}

Invariants:

* A node id is added to `nodes` only by that node, after it has a complete, hash-verified copy on
  disk; it removes itself when its copy is gone (deleted by GC, or found corrupt). Updates are
  compare-and-swap on the record, so concurrent updates from several nodes never lose one another.
* `updated_at_micros` is chosen by the node that writes the record (never read inside apply).
* Status (handler rule of the reference): no nodes ⇒ critical; fewer than min ⇒ under_replicated;
  fewer than factor ⇒ degraded; equal ⇒ healthy; more ⇒ over_replicated.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from aspen.kv.records import RecordError, load_json

__all__ = [
    "META_PREFIX",
    "REPLICA_TAG_PREFIX",
    "STORE_TAG_PREFIX",
    "USER_TAG_PREFIX",
    "ReplicaRecord",
    "ReplicationPolicy",
    "choose_targets",
    "classify",
    "default_factor",
    "meta_key",
    "repair_order",
    "replicas_needed",
    "user_tag",
]

META_PREFIX = "_system:blob:replica:"
USER_TAG_PREFIX = "user:"
#: Held by a node for blobs it holds as a replica (so GC keeps them).
REPLICA_TAG_PREFIX = "_replica:"
#: Set by AddBlob, so an added blob persists without a user tag (reference: "automatic store tag").
STORE_TAG_PREFIX = "_store:"
MAX_REPLICATION_FACTOR = 7
#: Reference defaults when a record lacks fields.
FALLBACK_FACTOR = 3
FALLBACK_MIN = 2


def meta_key(digest: str) -> str:
    return META_PREFIX + digest


def user_tag(name: str) -> str:
    return USER_TAG_PREFIX + name


def default_factor(voters: int) -> int:
    """min(3, voters), at least 1 (issue 5: replication is on by default in a cluster)."""
    return max(1, min(3, voters))


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
        except (KeyError, TypeError, AttributeError, RecordError) as err:
            raise ValueError(f"not a blob replica record: {err}") from None

    def with_node(self, node_id: int, now_micros: int) -> ReplicaRecord:
        return replace(self, nodes=tuple(sorted({*self.nodes, node_id})), updated_at_micros=now_micros)

    def without_node(self, node_id: int, now_micros: int) -> ReplicaRecord:
        return replace(self, nodes=tuple(n for n in self.nodes if n != node_id), updated_at_micros=now_micros)


def classify(nodes: int, policy: ReplicationPolicy) -> str:
    if nodes == 0:
        return "critical"
    if nodes < policy.min_replicas:
        return "under_replicated"
    if nodes < policy.replication_factor:
        return "degraded"
    if nodes == policy.replication_factor:
        return "healthy"
    return "over_replicated"


def replicas_needed(nodes: int, policy: ReplicationPolicy) -> int:
    return max(0, policy.replication_factor - nodes)


_REPAIR_RANK = {"critical": 0, "under_replicated": 1, "degraded": 2}


def repair_order(records: Iterable[ReplicaRecord], members: Iterable[int]) -> list[ReplicaRecord]:
    """Records that need copies, most urgent first (critical → under-replicated → degraded).

    Only copies on current members count; a record whose only copies are gone is still listed
    (critical), though it can be repaired only if a copy reappears."""
    alive = set(members)
    ranked: list[tuple[int, str, ReplicaRecord]] = []
    for rec in records:
        held = sum(1 for n in rec.nodes if n in alive)
        status = classify(held, rec.policy)
        if status in _REPAIR_RANK:
            ranked.append((_REPAIR_RANK[status], rec.hash, rec))
    ranked.sort(key=lambda item: (item[0], item[1]))
    return [rec for _, _, rec in ranked]


def choose_targets(digest: str, holders: Sequence[int], candidates: Sequence[int], wanted: int) -> list[int]:
    """Up to `wanted` candidates that do not hold the blob yet, spread by hash: the candidate list is
    rotated by the hash so that different blobs start on different nodes."""
    free = sorted(set(candidates) - set(holders))
    if not free or wanted <= 0:
        return []
    start = int(digest[:8], 16) % len(free) if digest else 0
    rotated = free[start:] + free[:start]
    return rotated[:wanted]
