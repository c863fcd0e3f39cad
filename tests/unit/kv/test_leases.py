"""Leases in the KV state machine, with time given explicitly as each command's `now_ms`."""

from __future__ import annotations

import msgpack
import pytest

from aspen.kv import (
    MAX_EXPIRED_PER_COMMAND,
    BatchWrite,
    CompareAndDelete,
    CompareAndSwap,
    Delete,
    DeleteOp,
    KvStateMachine,
    LeaseCommand,
    LeaseGrant,
    LeaseGrantResult,
    LeaseInfo,
    LeaseKeepalive,
    LeaseKeepaliveResult,
    LeaseRevoke,
    LeaseRevokeExpired,
    LeaseRevokeExpiredResult,
    LeaseRevokeResult,
    Read,
    SetOp,
    Write,
    WriteResult,
    WriteWithLease,
    decode_batch,
    encode_batch,
)
from aspen.kv.limits import MAX_LEASE_ID
from aspen.kv.validation import ERR_LEASE_ID, ERR_LEASE_TTL

T0 = 1_700_000_000_000  # a Unix-ms "now" chosen by the (imaginary) leader


def granted(kv: KvStateMachine, ttl: int = 10, *, now: int = T0, lease_id: int | None = None) -> int:
    res = kv.apply(kv.applied_index, LeaseGrant(ttl, now, lease_id))
    assert res.is_success and res.lease_id is not None, res
    return res.lease_id


class TestGrant:
    def test_ids_are_chosen_in_order_and_expiry_is_now_plus_ttl(self, kv: KvStateMachine) -> None:
        assert kv.apply(1, LeaseGrant(10, T0)) == LeaseGrantResult(True, lease_id=1, ttl_seconds=10)
        assert kv.apply(2, LeaseGrant(20, T0 + 5)) == LeaseGrantResult(True, lease_id=2, ttl_seconds=20)
        assert kv.lease(1) == LeaseInfo(1, 10, T0 + 10_000, 0)
        assert kv.lease(2) == LeaseInfo(2, 20, T0 + 5 + 20_000, 0)

    def test_explicit_id_moves_the_counter_past_it(self, kv: KvStateMachine) -> None:
        assert granted(kv, lease_id=50) == 50
        assert granted(kv) == 51
        assert granted(kv, lease_id=7) == 7  # below the counter but unused: fine
        assert granted(kv) == 52

    def test_existing_id_is_refused(self, kv: KvStateMachine) -> None:
        granted(kv, lease_id=5)
        assert kv.apply(2, LeaseGrant(30, T0, 5)) == LeaseGrantResult(False, error="lease 5 already exists")
        assert kv.lease(5) == LeaseInfo(5, 10, T0 + 10_000, 0)

    def test_revoked_ids_are_never_chosen_again(self, kv: KvStateMachine) -> None:
        first = granted(kv)
        kv.apply(2, LeaseRevoke(first))
        assert granted(kv) == first + 1

    @pytest.mark.parametrize("ttl", [0, -1, 9_000_000_001])
    def test_bad_ttl_is_an_error_not_a_crash(self, kv: KvStateMachine, ttl: int) -> None:
        assert kv.apply(1, LeaseGrant(ttl, T0)) == LeaseGrantResult(False, error=ERR_LEASE_TTL)
        assert kv.leases() == []

    @pytest.mark.parametrize("lease_id", [-1, MAX_LEASE_ID + 1])
    def test_bad_explicit_id_is_an_error(self, kv: KvStateMachine, lease_id: int) -> None:
        assert kv.apply(1, LeaseGrant(5, T0, lease_id)) == LeaseGrantResult(False, error=ERR_LEASE_ID)

    def test_id_space_exhausted_is_an_error(self, kv: KvStateMachine) -> None:
        granted(kv, lease_id=MAX_LEASE_ID)
        res = kv.apply(2, LeaseGrant(5, T0))
        assert not res.is_success and res.error is not None and "explicit id" in res.error


class TestAttachAndRevoke:
    def test_revoke_deletes_every_attached_key_and_the_lease(self, kv: KvStateMachine) -> None:
        lease = granted(kv)
        for key in ("a", "b", "c"):
            assert kv.apply(2, WriteWithLease(key, b"v", lease, T0)) == WriteResult(True)
        kv.apply(2, Write("other", b"x"))
        assert kv.lease_keys(lease) == ["a", "b", "c"]
        assert kv.apply(3, LeaseRevoke(lease)) == LeaseRevokeResult(True, keys_deleted=3)
        assert [k for k, _ in kv.items()] == ["other"]
        assert kv.lease(lease) is None

    def test_revoke_of_a_lease_without_keys_removes_it(self, kv: KvStateMachine) -> None:
        lease = granted(kv)
        assert kv.apply(2, LeaseRevoke(lease)) == LeaseRevokeResult(True, keys_deleted=0)
        assert kv.leases() == []

    def test_revoke_of_an_unknown_lease_succeeds_with_zero(self, kv: KvStateMachine) -> None:
        assert kv.apply(1, LeaseRevoke(12345)) == LeaseRevokeResult(True, keys_deleted=0)

    def test_write_to_unknown_or_expired_lease_is_refused(self, kv: KvStateMachine) -> None:
        assert kv.apply(1, WriteWithLease("k", b"v", 9, T0)) == WriteResult(False, "lease 9 not found")
        lease = granted(kv, 1)
        late = T0 + 1_000
        assert kv.apply(2, WriteWithLease("k", b"v", lease, late)) == WriteResult(
            False, f"lease {lease} expired"
        )
        assert "k" not in kv
        assert kv.apply(3, Write("k", b"v", lease_id=99)) == WriteResult(False, "lease 99 not found")

    @pytest.mark.parametrize(
        "detach",
        [
            Write("k", b"plain"),
            Delete("k"),
            CompareAndSwap("k", b"v", b"w"),
            CompareAndDelete("k", b"v"),
            BatchWrite((SetOp("k", b"w"),)),
            BatchWrite((DeleteOp("k"),)),
        ],
    )
    def test_rewriting_or_deleting_a_key_detaches_it(self, kv: KvStateMachine, detach: object) -> None:
        lease = granted(kv)
        kv.apply(2, WriteWithLease("k", b"v", lease, T0))
        kv.apply(3, detach)  # type: ignore[call-overload]
        assert kv.lease_keys(lease) == []
        entry = kv.get_entry("k")
        assert entry is None or entry.lease_id is None
        before = dict(kv.items())
        assert kv.apply(4, LeaseRevoke(lease)) == LeaseRevokeResult(True, keys_deleted=0)
        assert dict(kv.items()) == before  # the detached key survives the revocation

    def test_moving_a_key_to_another_lease(self, kv: KvStateMachine) -> None:
        a, b = granted(kv), granted(kv)
        kv.apply(2, WriteWithLease("k", b"1", a, T0))
        kv.apply(3, WriteWithLease("k", b"2", b, T0))
        assert kv.lease_keys(a) == [] and kv.lease_keys(b) == ["k"]
        assert kv.lease(b) == LeaseInfo(b, 10, T0 + 10_000, 1)
        kv.apply(4, LeaseRevoke(a))
        assert kv.read(Read("k")).value == b"2"


class TestKeepaliveAndExpiry:
    def test_keepalive_restarts_the_ttl_from_the_commands_now(self, kv: KvStateMachine) -> None:
        lease = granted(kv, 10)
        res = kv.apply(2, LeaseKeepalive(lease, T0 + 9_000))
        assert res == LeaseKeepaliveResult(True, lease_id=lease, ttl_seconds=10)
        assert kv.lease(lease) == LeaseInfo(lease, 10, T0 + 19_000, 0)

    def test_keepalive_of_unknown_lease_fails(self, kv: KvStateMachine) -> None:
        assert kv.apply(1, LeaseKeepalive(3, T0)) == LeaseKeepaliveResult(False, error="lease not found")

    def test_keepalive_after_expiry_fails_and_does_not_revive(self, kv: KvStateMachine) -> None:
        lease = granted(kv, 10)
        assert kv.apply(2, LeaseKeepalive(lease, T0 + 10_000)) == LeaseKeepaliveResult(
            False, error="lease expired"
        )
        assert kv.lease(lease) == LeaseInfo(lease, 10, T0 + 10_000, 0)

    def test_expired_query_is_ordered_and_bounded(self, kv: KvStateMachine) -> None:
        ids = [granted(kv, ttl) for ttl in (30, 10, 20)]
        assert kv.expired_leases(T0 + 9_999, 10) == []
        assert kv.expired_leases(T0 + 20_000, 10) == [ids[1], ids[2]]
        assert kv.expired_leases(T0 + 60_000, 2) == [ids[1], ids[2]]

    def test_revoke_expired_rechecks_against_its_own_now(self, kv: KvStateMachine) -> None:
        a, b = granted(kv, 10), granted(kv, 10)
        kv.apply(2, WriteWithLease("a", b"1", a, T0))
        kv.apply(2, WriteWithLease("b", b"1", b, T0))
        # The sweeper saw both expired at T0+10s; a keepalive of `b` was ordered before its command.
        candidates = kv.expired_leases(T0 + 10_000, 10)
        assert candidates == [a, b]
        kv.apply(3, LeaseKeepalive(b, T0 + 9_500))
        res = kv.apply(4, LeaseRevokeExpired(tuple(candidates), T0 + 10_000))
        assert res == LeaseRevokeExpiredResult(revoked=(a,), keys_deleted=1)
        assert "a" not in kv and "b" in kv
        assert kv.lease(a) is None and kv.lease(b) is not None

    def test_revoke_expired_skips_unknown_and_rejects_oversized(self, kv: KvStateMachine) -> None:
        lease = granted(kv, 1)
        res = kv.apply(2, LeaseRevokeExpired((777, lease), T0 + 1_000))
        assert res == LeaseRevokeExpiredResult(revoked=(lease,), keys_deleted=0)
        too_many = tuple(range(1, MAX_EXPIRED_PER_COMMAND + 2))
        other = granted(kv, 1)
        res = kv.apply(3, LeaseRevokeExpired(too_many, T0 + 5_000))
        assert res == LeaseRevokeExpiredResult(revoked=(), keys_deleted=0)
        assert kv.lease(other) is not None

    def test_nothing_expires_without_a_command(self, kv: KvStateMachine) -> None:
        lease = granted(kv, 1)
        kv.apply(2, WriteWithLease("k", b"v", lease, T0))
        kv.apply(3, Write("unrelated", b"x"))
        assert kv.lease(lease) is not None and "k" in kv


class TestSnapshotsAndHashes:
    def populated(self) -> KvStateMachine:
        kv = KvStateMachine()
        a, b = granted(kv, 10), granted(kv, 20, lease_id=40)
        granted(kv, 5)
        kv.apply(2, WriteWithLease("x", b"1", a, T0))
        kv.apply(2, WriteWithLease("y", b"2", b, T0))
        kv.apply(2, WriteWithLease("z", b"3", b, T0))
        kv.apply(3, LeaseRevoke(41))
        kv.apply(4, LeaseKeepalive(a, T0 + 3_000))
        return kv

    def test_round_trip_keeps_leases_keys_counter_and_hash(self) -> None:
        kv = self.populated()
        restored = KvStateMachine.from_snapshot(kv.snapshot())
        assert restored.leases() == kv.leases()
        assert restored.lease_keys(40) == ["y", "z"]
        assert restored.state_hash() == kv.state_hash()
        assert restored.snapshot() == kv.snapshot()
        # The id counter came along: both choose the same next id.
        assert restored.apply(5, LeaseGrant(1, T0)) == kv.apply(5, LeaseGrant(1, T0))
        for machine in (restored, kv):
            assert machine.apply(6, LeaseRevoke(40)) == LeaseRevokeResult(True, keys_deleted=2)
        assert restored.state_hash() == kv.state_hash()
        assert restored.expired_leases(T0 + 100_000, 10) == kv.expired_leases(T0 + 100_000, 10)

    def test_rows_only_format_still_restores(self) -> None:
        # A format-1 snapshot (before leases): a dangling lease id on a row names no lease and is
        # dropped; the key itself is kept.
        old = msgpack.packb([1, 7, ["a", "b"], [b"1", b"2"], [1, 1], [3, 4], [0, 0], [1, 5]])
        kv = KvStateMachine.from_snapshot(old)
        assert kv.applied_index == 7
        assert [(k, e.lease_id) for k, e in kv.items()] == [("a", None), ("b", None)]
        assert kv.leases() == []
        lease = granted(kv)
        assert lease == 1

    def test_hash_sees_leases_and_the_id_counter(self) -> None:
        base = KvStateMachine()
        assert base.state_hash() == KvStateMachine().state_hash()
        with_lease = KvStateMachine()
        lease = granted(with_lease)
        revoked = KvStateMachine()
        revoked.apply(1, LeaseRevoke(granted(revoked)))
        renewed = KvStateMachine()
        renewed.apply(2, LeaseKeepalive(granted(renewed), T0 + 1))
        hashes = {base.state_hash(), with_lease.state_hash(), revoked.state_hash(), renewed.state_hash()}
        assert len(hashes) == 4
        same = KvStateMachine()
        assert granted(same) == lease
        assert same.state_hash() == with_lease.state_hash()

    def test_codec_round_trip_of_lease_commands(self) -> None:
        cmds: list[LeaseCommand] = [
            LeaseGrant(10, T0),
            LeaseGrant(10, T0, MAX_LEASE_ID),
            LeaseRevoke(3),
            LeaseKeepalive(3, T0),
            LeaseRevokeExpired((1, 2, 3), T0),
            LeaseRevokeExpired((), 0),
            WriteWithLease("k", b"\x00", 3, T0),
        ]
        assert decode_batch(encode_batch(cmds)) == cmds

    @pytest.mark.parametrize(
        "raw",
        [
            [[16, 10, T0]],  # missing field
            [[16, "10", T0, None]],  # ttl not an int
            [[17, None]],  # revoke needs an id
            [[19, 5, T0]],  # ids not an array
            [[19, [1, "2"], T0]],
            [[20, "k", "v", 1, T0]],  # value not bytes
            [[18, 1, True]],  # bool is not an int
        ],
    )
    def test_malformed_lease_entries_raise_value_error(self, raw: object) -> None:
        with pytest.raises(ValueError):
            decode_batch(msgpack.packb(raw, use_bin_type=True))
