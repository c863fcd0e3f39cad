"""Replica metadata, status classification, repair order, target choice, blob tickets and config."""

from __future__ import annotations

import pytest

from aspen.blob.config import BlobConfig
from aspen.blob.policy import (
    ReplicaRecord,
    ReplicationPolicy,
    choose_targets,
    classify,
    default_factor,
    repair_order,
    replicas_needed,
)
from aspen.blob.ticket import BlobTicket

H = "ab" * 32


@pytest.mark.parametrize(
    ("nodes", "status", "needed"),
    [
        (0, "critical", 3),
        (1, "under_replicated", 2),
        (2, "degraded", 1),
        (3, "healthy", 0),
        (4, "over_replicated", 0),
    ],
)
def test_status_classification(nodes: int, status: str, needed: int) -> None:
    policy = ReplicationPolicy(replication_factor=3, min_replicas=2)
    assert classify(nodes, policy) == status
    assert replicas_needed(nodes, policy) == needed


def test_default_factor_is_min_3_voters() -> None:
    assert [default_factor(v) for v in (0, 1, 2, 3, 5)] == [1, 1, 2, 3, 3]
    assert ReplicationPolicy.for_factor(3) == ReplicationPolicy(3, 2)
    assert ReplicationPolicy.for_factor(1).min_replicas == 1
    assert ReplicationPolicy.for_factor(99).replication_factor == 7


def test_record_round_trips_in_the_reference_json_shape() -> None:
    rec = ReplicaRecord(H, 10, (3, 1), ReplicationPolicy.for_factor(3), 123)
    doc = rec.encode()
    assert b'"nodes":[3,1]' in doc and b'"replication_factor":3' in doc and b'"updated_at_micros":123' in doc
    back = ReplicaRecord.decode(doc)
    assert back.nodes == (1, 3) and back.size == 10 and back.policy == rec.policy
    assert back.with_node(2, 5).nodes == (1, 2, 3)
    assert back.without_node(1, 5).nodes == (3,)


def test_record_with_missing_policy_uses_reference_fallbacks() -> None:
    rec = ReplicaRecord.decode(b'{"hash": "%s", "size": 1, "nodes": [1]}' % H.encode())
    assert rec.policy.replication_factor == 3 and rec.policy.min_replicas == 2


@pytest.mark.parametrize("raw", [b"not json", b"{}", b'{"hash": "x", "size": 1, "nodes": ["a"]}'])
def test_malformed_record_is_refused(raw: bytes) -> None:
    with pytest.raises(ValueError):
        ReplicaRecord.decode(raw)


def test_repair_order_is_critical_then_under_then_degraded_and_counts_only_members() -> None:
    p = ReplicationPolicy(3, 2)
    healthy = ReplicaRecord("1" * 64, 1, (1, 2, 3), p)
    degraded = ReplicaRecord("2" * 64, 1, (1, 2), p)
    under = ReplicaRecord("3" * 64, 1, (1,), p)
    gone = ReplicaRecord("4" * 64, 1, (9,), p)  # node 9 left the cluster: critical
    order = repair_order([healthy, degraded, under, gone], members=[1, 2, 3])
    assert [r.hash for r in order] == [gone.hash, under.hash, degraded.hash]


def test_targets_exclude_holders_and_spread_by_hash() -> None:
    assert choose_targets("0" * 64, [1], [1, 2, 3], 2) == [2, 3]
    assert choose_targets("0" * 64, [1, 2, 3], [1, 2, 3], 2) == []
    assert choose_targets("0" * 64, [1], [1, 2, 3], 0) == []
    firsts = {choose_targets(f"{i:08x}" + "0" * 56, [], [1, 2, 3], 1)[0] for i in range(3)}
    assert firsts == {1, 2, 3}


def test_blob_ticket_round_trip_and_validation() -> None:
    t = BlobTicket(H, 42, ("cd" * 32,))
    text = t.encode()
    assert text.startswith("blob") and BlobTicket.decode(text) == t
    for bad in ("aspenxyz", "blob!!!", BlobTicket(H, 1, ()).encode()):
        with pytest.raises(ValueError):
            BlobTicket.decode(bad)


def test_blob_config_from_env() -> None:
    cfg = BlobConfig.from_env({"ASPEN_BLOBS_GC_GRACE_S": "1.5", "ASPEN_BLOBS_REPLICATION_FACTOR": "2"})
    assert cfg.gc_grace_s == 1.5 and cfg.replication_factor == 2 and cfg.enabled
    assert BlobConfig.from_env({"ASPEN_BLOBS_ENABLED": "false"}).enabled is False
    with pytest.raises(ValueError, match="ASPEN_BLOBS_MAX_SIZE"):
        BlobConfig.from_env({"ASPEN_BLOBS_MAX_SIZE": "lots"})
    with pytest.raises(ValueError):
        BlobConfig.from_env({"ASPEN_BLOBS_REPLICATION_FACTOR": "9"})
