"""BatchWrite and ConditionalBatchWrite: atomic, in order, one revision, all or nothing."""

from __future__ import annotations

from aspen.kv import (
    BatchWrite,
    BatchWriteResult,
    ConditionalBatchWrite,
    ConditionalBatchWriteResult,
    DeleteOp,
    KeyExists,
    KeyNotExists,
    KvEntry,
    KvStateMachine,
    LeaseGrant,
    SetOp,
    ValueEquals,
    Write,
)


def seeded() -> KvStateMachine:
    kv = KvStateMachine()
    kv.apply(1, Write("a", b"1"))
    kv.apply(2, Write("b", b"2"))
    return kv


class TestBatchWrite:
    def test_sets_and_deletes_apply_at_one_revision(self) -> None:
        kv = seeded()
        result = kv.apply(10, BatchWrite((SetOp("a", b"x"), DeleteOp("b"), SetOp("c", b"3"))))
        assert result == BatchWriteResult(is_success=True, operations_applied=3, error=None)
        assert kv.get_entry("a") == KvEntry(b"x", 2, 1, 10)
        assert kv.get_entry("b") is None
        assert kv.get_entry("c") == KvEntry(b"3", 1, 10, 10)

    def test_empty_batch_succeeds_with_zero_applied(self) -> None:
        kv = seeded()
        before = kv.state_hash()
        assert kv.apply(3, BatchWrite(())) == BatchWriteResult(True, 0, None)
        assert kv.state_hash() == before

    def test_deleting_missing_keys_counts_as_applied(self) -> None:
        assert KvStateMachine().apply(1, BatchWrite((DeleteOp("nope"),))) == BatchWriteResult(True, 1, None)

    def test_100_ops_succeed(self) -> None:
        kv = KvStateMachine()
        result = kv.apply(1, BatchWrite(tuple(SetOp(f"k{i:03}", b"v") for i in range(100))))
        assert result == BatchWriteResult(True, 100, None)
        assert len(kv) == 100

    def test_101_ops_fail_and_apply_nothing(self) -> None:
        kv = seeded()
        before = kv.state_hash()
        result = kv.apply(3, BatchWrite(tuple(SetOp(f"k{i:03}", b"v") for i in range(101))))
        assert result == BatchWriteResult(
            is_success=False, operations_applied=0, error="batch size 101 exceeds maximum of 100 keys"
        )
        assert kv.state_hash() == before

    def test_a_bad_op_late_in_the_batch_prevents_the_earlier_ones(self) -> None:
        kv = seeded()
        before = kv.state_hash()
        ops: tuple[SetOp | DeleteOp, ...] = (
            *(SetOp(f"k{i}", b"v") for i in range(50)),
            DeleteOp("a"),
            SetOp("k" * 1025, b"v"),
        )
        result = kv.apply(3, BatchWrite(ops))
        assert result == BatchWriteResult(False, 0, "key size 1025 exceeds maximum of 1024 bytes")
        assert kv.state_hash() == before
        assert "k0" not in kv and "a" in kv

    def test_ops_on_the_same_key_apply_in_order(self) -> None:
        kv = seeded()
        kv.apply(5, BatchWrite((SetOp("a", b"x"), SetOp("a", b"y"))))
        assert kv.get_entry("a") == KvEntry(b"y", 3, 1, 5)
        kv.apply(6, BatchWrite((SetOp("b", b"x"), DeleteOp("b"))))
        assert kv.get_entry("b") is None
        kv.apply(7, BatchWrite((DeleteOp("a"), SetOp("a", b"z"))))
        assert kv.get_entry("a") == KvEntry(b"z", 1, 7, 7)

    def test_batch_set_detaches_a_lease(self) -> None:
        kv = KvStateMachine()
        kv.apply(1, LeaseGrant(ttl_seconds=60, now_ms=0, lease_id=4))
        kv.apply(1, Write("k", b"v", lease_id=4))
        kv.apply(2, BatchWrite((SetOp("k", b"w"),)))
        assert kv.get_entry("k") == KvEntry(b"w", 2, 1, 2, lease_id=None)


class TestConditionalBatchWrite:
    def test_all_conditions_hold_then_sets_and_deletes_apply(self) -> None:
        kv = seeded()
        cmd = ConditionalBatchWrite(
            (ValueEquals("a", b"1"), KeyExists("b"), KeyNotExists("c")),
            (SetOp("c", b"3"), DeleteOp("b"), SetOp("a", b"x")),
        )
        assert kv.apply(9, cmd) == ConditionalBatchWriteResult(
            is_success=True,
            conditions_met=True,
            operations_applied=3,
            failed_condition_index=None,
            failed_condition_reason=None,
            error=None,
        )
        assert dict(kv.items()) == {"a": KvEntry(b"x", 2, 1, 9), "c": KvEntry(b"3", 1, 9, 9)}

    def test_failing_second_condition_reports_index_1_and_changes_nothing(self) -> None:
        kv = seeded()
        before = kv.state_hash()
        cmd = ConditionalBatchWrite(
            (KeyExists("a"), ValueEquals("b", b"wrong"), KeyNotExists("a")),
            (SetOp("a", b"x"), DeleteOp("b")),
        )
        assert kv.apply(3, cmd) == ConditionalBatchWriteResult(
            is_success=False,
            conditions_met=False,
            operations_applied=0,
            failed_condition_index=1,
            failed_condition_reason="condition not met",
            error=None,
        )
        assert kv.state_hash() == before
        assert kv.applied_index == 3

    def test_only_the_first_failing_condition_is_reported(self) -> None:
        kv = seeded()
        cmd = ConditionalBatchWrite((KeyNotExists("a"), KeyNotExists("b")), ())
        assert kv.apply(3, cmd).failed_condition_index == 0

    def test_each_condition_kind_can_fail(self) -> None:
        kv = seeded()
        for cond in (ValueEquals("a", b"2"), ValueEquals("zz", b""), KeyExists("zz"), KeyNotExists("a")):
            result = kv.apply(3, ConditionalBatchWrite((cond,), (SetOp("n", b"v"),)))
            assert not result.is_success and result.failed_condition_index == 0, cond
        assert "n" not in kv

    def test_value_equals_on_empty_value(self) -> None:
        kv = KvStateMachine()
        kv.apply(1, Write("e", b""))
        assert kv.apply(2, ConditionalBatchWrite((ValueEquals("e", b""),), ())).is_success

    def test_no_conditions_always_applies(self) -> None:
        kv = KvStateMachine()
        result = kv.apply(1, ConditionalBatchWrite((), (SetOp("k", b"v"),)))
        assert result == ConditionalBatchWriteResult(True, True, 1, None, None, None)

    def test_conditions_without_ops(self) -> None:
        kv = seeded()
        assert kv.apply(3, ConditionalBatchWrite((KeyExists("a"),), ())) == ConditionalBatchWriteResult(
            True, True, 0, None, None, None
        )

    def test_conditions_see_the_state_before_the_ops(self) -> None:
        kv = KvStateMachine()
        cmd = ConditionalBatchWrite((KeyNotExists("k"),), (SetOp("k", b"v"),))
        assert kv.apply(1, cmd).is_success
        assert kv.apply(2, cmd).failed_condition_index == 0  # same command: now k exists
        assert kv.get_entry("k") == KvEntry(b"v", 1, 1, 1)

    def test_combined_limit_of_conditions_and_ops(self) -> None:
        kv = seeded()
        before = kv.state_hash()
        conds = tuple(KeyExists("a") for _ in range(60))
        ok = kv.apply(3, ConditionalBatchWrite(conds, tuple(SetOp(f"k{i}", b"v") for i in range(40))))
        assert ok.is_success and ok.operations_applied == 40
        before = kv.state_hash()
        too_big = ConditionalBatchWrite(conds, tuple(SetOp(f"x{i}", b"v") for i in range(41)))
        assert kv.apply(4, too_big) == ConditionalBatchWriteResult(
            is_success=False,
            conditions_met=False,
            operations_applied=0,
            failed_condition_index=None,
            failed_condition_reason=None,
            error="batch size 101 exceeds maximum of 100 keys",
        )
        assert kv.state_hash() == before

    def test_invalid_op_is_an_error_even_when_a_condition_would_fail(self) -> None:
        kv = seeded()
        result = kv.apply(3, ConditionalBatchWrite((KeyNotExists("a"),), (SetOp("", b"v"),)))
        assert result.error == "key cannot be empty"
        assert result.failed_condition_index is None
