"""Cluster membership operations on the leader: add a learner (and wait until it caught up), set
the voter set, promote a learner.

Raft changes membership one server at a time (single-server changes, Ongaro §4.1): each step is a
conf-change entry that must be applied before the next is proposed, so any two consecutive
configurations share a majority. `ChangeMembership` to an arbitrary voter set is therefore a
sequence of steps: promotions first (the cluster only grows while it is at risk), removals last,
the leader's own removal very last (it steps down when that entry applies).

Member addresses ride in the conf-change context (EndpointAddr JSON), so they are replicated,
survive restarts in the WAL and survive compaction in the snapshot.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass

from aspen.raft.core.types import ConfChange, ConfChangeType, ConfState
from aspen.raft.node import RaftNode

_HEX64 = re.compile(r"[0-9a-f]{64}")
CATCH_UP_TIMEOUT_S = 30.0


class MembershipError(ValueError):
    """A membership request that cannot be carried out; the message is client-facing."""


@dataclass(frozen=True, slots=True)
class EndpointAddr:
    endpoint_id: str
    addrs: tuple[str, ...]

    def to_json(self) -> bytes:
        return json.dumps({"id": self.endpoint_id, "addrs": [{"Ip": a} for a in self.addrs]}).encode()


def parse_endpoint_addr(raw: str | bytes) -> EndpointAddr:
    """EndpointAddr JSON, the `--addr` format: `{"id": "<hex64>", "addrs": [{"Ip": "host:port"}, ...]}`."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    if _HEX64.fullmatch(text.strip().lower()):
        raise MembershipError(
            "bare EndpointId is not supported; pass an EndpointAddr JSON "
            '{"id": "<hex64>", "addrs": [{"Ip": "host:port"}]}'
        )
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise MembershipError(f"invalid request: addr is not valid JSON: {err.msg}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("id"), str):
        raise MembershipError('invalid request: addr must be a JSON object with "id" and "addrs"')
    endpoint_id = doc["id"].lower()
    if not _HEX64.fullmatch(endpoint_id):
        raise MembershipError("invalid request: addr id must be 64 lowercase hex characters")
    addrs: list[str] = []
    for item in doc.get("addrs") or []:
        if isinstance(item, dict) and isinstance(item.get("Ip"), str):
            host, sep, port = item["Ip"].rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise MembershipError(f"invalid request: bad socket address {item['Ip']!r}")
            addrs.append(item["Ip"])
    if not addrs:
        raise MembershipError('EndpointAddr has no socket addresses; give at least one {"Ip": "host:port"}')
    return EndpointAddr(endpoint_id, tuple(addrs))


async def add_learner(raft: RaftNode, node_id: int, addr: EndpointAddr) -> None:
    """Add `node_id` as a learner and return once it has replicated the log as of the call."""
    conf = raft.conf_state
    if node_id in conf.voters:
        raise MembershipError(f"node {node_id} is already a voter")
    target = raft.status().commit
    await raft.change_membership(ConfChange(ConfChangeType.ADD_LEARNER, node_id, addr.to_json()))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CATCH_UP_TIMEOUT_S
    while raft.status().progress.get(node_id, 0) < target:
        if loop.time() > deadline:
            raise MembershipError(
                f"learner {node_id} added but has not caught up within {int(CATCH_UP_TIMEOUT_S)}s "
                f"(matched {raft.status().progress.get(node_id, 0)} of {target}); "
                "is it running and reachable?"
            )
        await asyncio.sleep(0.05)  # polling replication progress with a deadline


async def change_voters(raft: RaftNode, members: list[int]) -> ConfState:
    """Make the voter set exactly `members` (learners are promoted; dropped voters removed)."""
    if not members:
        raise MembershipError("invalid request: members must include at least one voter")
    conf = raft.conf_state
    wanted = list(dict.fromkeys(members))
    unknown = [n for n in wanted if n not in conf.voters and n not in conf.learners]
    if unknown:
        raise MembershipError(
            f"invalid request: node(s) {unknown} are not members; add them with add-learner first"
        )
    for node_id in wanted:
        if node_id not in raft.conf_state.voters:
            await raft.change_membership(ConfChange(ConfChangeType.ADD_VOTER, node_id))
    leaving = [v for v in raft.conf_state.voters if v not in wanted]
    leaving.sort(key=lambda v: v == raft.id)  # remove ourselves last
    for node_id in leaving:
        await raft.change_membership(ConfChange(ConfChangeType.REMOVE_NODE, node_id))
    return raft.conf_state


async def promote(raft: RaftNode, learner_id: int, replace: int | None) -> ConfState:
    conf = raft.conf_state
    if learner_id not in conf.learners:
        raise MembershipError(f"node {learner_id} is not a learner")
    if replace is not None and replace not in conf.voters:
        raise MembershipError(f"node {replace} is not a current voter")
    await raft.change_membership(ConfChange(ConfChangeType.ADD_VOTER, learner_id))
    if replace is not None:
        await raft.change_membership(ConfChange(ConfChangeType.REMOVE_NODE, replace))
    return raft.conf_state
