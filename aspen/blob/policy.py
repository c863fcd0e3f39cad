"""Replication metadata and the rules over it. Pure: no I/O, no clock (time comes in as arguments).

Blob *bytes* never go through Raft. What the cluster agrees on (through the KV store, so through
Raft) is, per blob, a JSON record under `_system:blob:replica:<hash>`, kept by the `blobmeta` layer
(`aspen.layers.blobmeta`, which defines the record; it is re-exported here)::

    {"hash", "size", "nodes": [node ids holding a verified copy], "policy": {"replication_factor",
     "min_replicas", "failure_domain_key", "enable_quorum_writes"}, "updated_at_micros"}

Invariants:

* A node id is added to `nodes` only by that node, after it has a complete, hash-verified copy on
  disk; it removes itself when its copy is gone (deleted by GC, or found corrupt). Each update is
  one layer operation on the record, so concurrent updates from several nodes never lose one another.
* `updated_at_micros` is the proposing node's clock (informational; never compared inside apply).
* Status (the original Aspen's rule): no nodes ⇒ critical; fewer than min ⇒ under_replicated;
  fewer than factor ⇒ degraded; equal ⇒ healthy; more ⇒ over_replicated.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from aspen.layers.blobmeta import (
    FALLBACK_FACTOR,
    FALLBACK_MIN,
    MAX_REPLICATION_FACTOR,
    META_PREFIX,
    ReplicaRecord,
    ReplicationPolicy,
    meta_key,
)

__all__ = [
    "FALLBACK_FACTOR",
    "FALLBACK_MIN",
    "MAX_REPLICATION_FACTOR",
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

USER_TAG_PREFIX = "user:"
#: Held by a node for blobs it holds as a replica (so GC keeps them).
REPLICA_TAG_PREFIX = "_replica:"
#: Set by AddBlob, so an added blob persists without a user tag (an "automatic store tag", as in the
#: original Aspen).
STORE_TAG_PREFIX = "_store:"


def user_tag(name: str) -> str:
    return USER_TAG_PREFIX + name


def default_factor(voters: int) -> int:
    """min(3, voters), at least 1 (replication is on by default in a cluster)."""
    return max(1, min(3, voters))


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
