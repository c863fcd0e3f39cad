"""Property test: leases in the machine behave like a plain-dict model over random command sequences.

The model is written from the lease semantics alone (ids from a counter past every id granted,
expiry = now + ttl from the command, revoke deletes attached keys, keepalive only while unexpired,
rewrites and deletes detach a key, the sweeper's command re-checks expiry) with dicts and sorted(),
independently of the machine's code. Time only moves through the commands' `now_ms`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from aspen.kv import (
    Delete,
    KvStateMachine,
    LeaseGrant,
    LeaseGrantResult,
    LeaseInfo,
    LeaseKeepalive,
    LeaseKeepaliveResult,
    LeaseRevoke,
    LeaseRevokeExpired,
    LeaseRevokeExpiredResult,
    LeaseRevokeResult,
    Write,
    WriteResult,
    WriteWithLease,
    decode_batch,
    encode_batch,
)
from aspen.kv.validation import ERR_LEASE_TTL


@dataclass
class Model:
    data: dict[str, tuple[bytes, int | None]] = field(default_factory=dict)
    leases: dict[int, tuple[int, int]] = field(default_factory=dict)  # id -> (ttl, expires_at_ms)
    next_id: int = 1

    def keys_of(self, lease_id: int) -> list[str]:
        return sorted(k for k, (_, lease) in self.data.items() if lease == lease_id)

    def revoke(self, lease_id: int) -> int:
        keys = self.keys_of(lease_id)
        for key in keys:
            del self.data[key]
        del self.leases[lease_id]
        return len(keys)

    def apply(self, cmd: Any) -> Any:
        if isinstance(cmd, LeaseGrant):
            if cmd.ttl_seconds < 1:
                return LeaseGrantResult(False, error=ERR_LEASE_TTL)
            lease_id = self.next_id if cmd.lease_id is None else cmd.lease_id
            if lease_id in self.leases:
                return LeaseGrantResult(False, error=f"lease {lease_id} already exists")
            self.leases[lease_id] = (cmd.ttl_seconds, cmd.now_ms + 1000 * cmd.ttl_seconds)
            self.next_id = max(self.next_id, lease_id + 1)
            return LeaseGrantResult(True, lease_id=lease_id, ttl_seconds=cmd.ttl_seconds)
        if isinstance(cmd, LeaseRevoke):
            if cmd.lease_id not in self.leases:
                return LeaseRevokeResult(True, 0)
            return LeaseRevokeResult(True, self.revoke(cmd.lease_id))
        if isinstance(cmd, LeaseKeepalive):
            if cmd.lease_id not in self.leases:
                return LeaseKeepaliveResult(False, error="lease not found")
            ttl, expires = self.leases[cmd.lease_id]
            if expires <= cmd.now_ms:
                return LeaseKeepaliveResult(False, error="lease expired")
            self.leases[cmd.lease_id] = (ttl, cmd.now_ms + 1000 * ttl)
            return LeaseKeepaliveResult(True, lease_id=cmd.lease_id, ttl_seconds=ttl)
        if isinstance(cmd, LeaseRevokeExpired):
            revoked, deleted = [], 0
            for lease_id in cmd.lease_ids:
                if lease_id in self.leases and self.leases[lease_id][1] <= cmd.now_ms:
                    deleted += self.revoke(lease_id)
                    revoked.append(lease_id)
            return LeaseRevokeExpiredResult(tuple(revoked), deleted)
        if isinstance(cmd, WriteWithLease):
            if cmd.lease_id not in self.leases:
                return WriteResult(False, f"lease {cmd.lease_id} not found")
            if self.leases[cmd.lease_id][1] <= cmd.now_ms:
                return WriteResult(False, f"lease {cmd.lease_id} expired")
            self.data[cmd.key] = (cmd.value, cmd.lease_id)
            return WriteResult(True)
        if isinstance(cmd, Write):
            self.data[cmd.key] = (cmd.value, None)
            return WriteResult(True)
        assert isinstance(cmd, Delete)
        self.data.pop(cmd.key, None)
        return None  # DeleteResult is covered by the KV model test

    def infos(self) -> list[LeaseInfo]:
        return [
            LeaseInfo(i, ttl, expires, len(self.keys_of(i)))
            for i, (ttl, expires) in sorted(self.leases.items())
        ]


keys = st.sampled_from(["a", "b", "c", "d"])
ids = st.integers(1, 5)
ttls = st.sampled_from([0, 1, 2, 5])
# Each command says how far the leader's clock moved before it was proposed: mostly whole and half
# seconds, so commands often land exactly on an expiry (the boundary: expired iff expiry <= now).
advance = st.sampled_from([0, 500, 1000, 2000]) | st.integers(0, 3000)
commands = st.one_of(
    st.tuples(advance, st.builds(lambda t, i: ("grant", t, i), ttls, st.none() | ids)),
    st.tuples(advance, st.builds(lambda i: ("revoke", i), ids)),
    st.tuples(advance, st.builds(lambda i: ("keepalive", i), ids)),
    st.tuples(advance, st.just(("sweep",))),
    st.tuples(advance, st.builds(lambda k, i: ("lease_write", k, i), keys, ids)),
    st.tuples(advance, st.builds(lambda k: ("write", k), keys)),
    st.tuples(advance, st.builds(lambda k: ("delete", k), keys)),
)


def build(op: tuple[Any, ...], now: int, kv: KvStateMachine, stale_now: int) -> Any:
    kind = op[0]
    if kind == "grant":
        return LeaseGrant(op[1], now, op[2])
    if kind == "revoke":
        return LeaseRevoke(op[1])
    if kind == "keepalive":
        return LeaseKeepalive(op[1], now)
    if kind == "sweep":
        # Candidates found at an earlier moment (the sweeper's query), applied with its own now.
        return LeaseRevokeExpired(tuple(kv.expired_leases(stale_now, 3)), stale_now)
    if kind == "lease_write":
        return WriteWithLease(op[1], b"v%d" % now, op[2], now)
    if kind == "write":
        return Write(op[1], b"w")
    return Delete(op[1])


@settings(max_examples=300, deadline=None)
@given(st.lists(commands, min_size=1, max_size=40))
def test_leases_match_the_model(script: list[tuple[int, tuple[Any, ...]]]) -> None:
    kv, model = KvStateMachine(), Model()
    now = 1_000_000
    previous_now = now
    for index, (step, op) in enumerate(script, start=1):
        previous_now, now = now, now + step
        cmd = build(op, now, kv, previous_now)
        (decoded,) = decode_batch(encode_batch([cmd]))
        result = kv.apply(index, decoded)
        expected = model.apply(cmd)
        if expected is not None:
            assert result == expected, cmd
        assert {k: (e.value, e.lease_id) for k, e in kv.items()} == model.data
        assert kv.leases() == model.infos()
        for lease_id in model.leases:
            assert kv.lease_keys(lease_id) == model.keys_of(lease_id)
        assert kv.expired_leases(now, 100) == [
            i for _, i in sorted((e, i) for i, (_, e) in model.leases.items() if e <= now)
        ]

    restored = KvStateMachine.from_snapshot(kv.snapshot())
    assert restored.state_hash() == kv.state_hash()
    assert restored.leases() == kv.leases()
    # Both choose the same next id, so replicas restored from a snapshot stay in step.
    assert restored.apply(len(script) + 1, LeaseGrant(1, now)) == kv.apply(
        len(script) + 1, LeaseGrant(1, now)
    )
