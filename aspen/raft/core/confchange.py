"""Encoding and application of single-server membership changes.

Invariants:
* `apply_conf_change` is a pure function of (ConfState, ConfChange): every node applying the same
  committed entries in the same order derives the same membership.
* A node is never both a voter and a learner; the returned tuples are sorted and duplicate-free so
  that equal memberships compare equal.
* A change that would leave the cluster without voters, or demote a voter to learner, is invalid
  (`ValueError`); the Raft core applies such a committed change as a no-op, deterministically.
"""

from __future__ import annotations

from typing import Any

import msgpack

from aspen.raft.core.types import NONE, ConfChange, ConfChangeType, ConfState

__all__ = ["apply_conf_change", "decode_conf_change", "encode_conf_change"]


def encode_conf_change(cc: ConfChange) -> bytes:
    """Serialise `cc` for the `data` field of a CONF_CHANGE entry."""
    packed: bytes = msgpack.packb([int(cc.type), cc.node_id, cc.context], use_bin_type=True)
    return packed


def decode_conf_change(data: bytes) -> ConfChange:
    """Inverse of `encode_conf_change`; raises `ValueError` on malformed input (log data is
    untrusted in the sense that a corrupt entry must not crash the node with an obscure error)."""
    try:
        obj: Any = msgpack.unpackb(data, raw=False)
    except Exception as exc:  # msgpack raises several unrelated exception types
        raise ValueError(f"malformed conf change: {exc}") from exc
    if not isinstance(obj, list) or len(obj) != 3:
        raise ValueError("malformed conf change: expected [type, node_id, context]")
    typ, node_id, context = obj
    if not isinstance(typ, int) or not isinstance(node_id, int) or not isinstance(context, bytes):
        raise ValueError("malformed conf change: bad field types")
    try:
        cc_type = ConfChangeType(typ)
    except ValueError as exc:
        raise ValueError(f"malformed conf change: unknown type {typ}") from exc
    return ConfChange(type=cc_type, node_id=node_id, context=context)


def apply_conf_change(conf: ConfState, cc: ConfChange) -> ConfState:
    """Return the membership after applying `cc` to `conf`.

    ADD_VOTER adds a voter or promotes a learner; ADD_LEARNER adds a learner (demoting a voter is
    refused: with single-server changes a demotion would be remove+add, done explicitly);
    REMOVE_NODE removes the node from either set (a no-op if absent).
    """
    if cc.node_id == NONE:
        raise ValueError("conf change for node id 0")
    voters = set(conf.voters)
    learners = set(conf.learners)
    if cc.type == ConfChangeType.ADD_VOTER:
        learners.discard(cc.node_id)
        voters.add(cc.node_id)
    elif cc.type == ConfChangeType.ADD_LEARNER:
        if cc.node_id in voters:
            raise ValueError(f"cannot demote voter {cc.node_id} to learner")
        learners.add(cc.node_id)
    elif cc.type == ConfChangeType.REMOVE_NODE:
        voters.discard(cc.node_id)
        learners.discard(cc.node_id)
        # An empty voter set can never elect a leader again: refuse rather than brick the cluster.
        if not voters and conf.voters:
            raise ValueError("cannot remove the last voter")
    else:  # pragma: no cover - exhaustive over the enum
        raise ValueError(f"unknown conf change type {cc.type}")
    return ConfState(voters=tuple(sorted(voters)), learners=tuple(sorted(learners)))
