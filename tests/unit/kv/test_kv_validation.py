"""Limits and validation errors: exact messages, exact boundaries, and `apply` re-validating."""

from __future__ import annotations

import pytest

from aspen.kv import (
    MAX_BATCH_OPS,
    MAX_KEY_SIZE,
    MAX_VALUE_SIZE,
    BatchRead,
    BatchWrite,
    BatchWriteResult,
    CasResult,
    Command,
    CompareAndDelete,
    CompareAndSwap,
    ConditionalBatchWrite,
    ConditionalBatchWriteResult,
    Delete,
    DeleteOp,
    DeleteResult,
    KeyExists,
    KeyNotExists,
    KvStateMachine,
    Read,
    Scan,
    SetOp,
    ValueEquals,
    Write,
    WriteResult,
    limits,
    validate,
)

MIB = 1024 * 1024


def test_limits_match_the_product_reference() -> None:
    assert MAX_KEY_SIZE == 1024
    assert MAX_VALUE_SIZE == 1_048_576 == MIB
    assert MAX_BATCH_OPS == 100
    assert limits.DEFAULT_SCAN_LIMIT == 1000
    assert limits.MAX_SCAN_RESULTS == 10_000


class TestKeys:
    def test_empty_key_is_rejected(self) -> None:
        assert validate(Write("", b"v")) == "key cannot be empty"

    def test_key_of_exactly_1024_bytes_is_accepted(self) -> None:
        assert validate(Write("k" * 1024, b"v")) is None

    def test_key_of_1025_bytes_is_rejected(self) -> None:
        assert validate(Write("k" * 1025, b"v")) == "key size 1025 exceeds maximum of 1024 bytes"

    def test_key_size_is_measured_in_utf8_bytes_not_code_points(self) -> None:
        assert validate(Write("é" * 512, b"v")) is None  # 512 code points, 1024 bytes
        assert validate(Write("é" * 512 + "x", b"v")) == "key size 1025 exceeds maximum of 1024 bytes"
        assert validate(Write("😀" * 257, b"v")) == "key size 1028 exceeds maximum of 1024 bytes"

    def test_key_without_a_utf8_form_is_rejected(self) -> None:
        assert validate(Write("\ud800", b"v")) == "key is not valid UTF-8"

    def test_non_str_key_is_rejected_not_raised(self) -> None:
        assert validate(Write(b"k", b"v")) == "key must be a string"  # type: ignore[arg-type]


class TestValues:
    def test_empty_value_is_accepted(self) -> None:
        assert validate(Write("k", b"")) is None

    def test_value_of_exactly_1_mib_is_accepted(self) -> None:
        assert validate(Write("k", b"x" * MIB)) is None

    def test_value_of_1_mib_plus_1_is_rejected(self) -> None:
        assert validate(Write("k", b"x" * (MIB + 1))) == "value size 1048577 exceeds maximum of 1048576 bytes"

    def test_key_is_checked_before_value(self) -> None:
        assert validate(Write("", b"x" * (MIB + 1))) == "key cannot be empty"

    def test_non_bytes_value_is_rejected(self) -> None:
        assert validate(Write("k", "v")) == "value must be bytes"  # type: ignore[arg-type]
        assert validate(Write("k", bytearray(b"v"))) == "value must be bytes"  # type: ignore[arg-type]

    def test_cas_checks_new_value_and_expected(self) -> None:
        big = b"x" * (MIB + 1)
        assert (
            validate(CompareAndSwap("k", None, big)) == "value size 1048577 exceeds maximum of 1048576 bytes"
        )
        assert (
            validate(CompareAndSwap("k", big, b"")) == "value size 1048577 exceeds maximum of 1048576 bytes"
        )
        assert validate(CompareAndSwap("k", b"x" * MIB, b"x" * MIB)) is None

    def test_compare_and_delete_checks_expected(self) -> None:
        assert validate(CompareAndDelete("k", b"")) is None
        assert validate(CompareAndDelete("", b"")) == "key cannot be empty"
        assert validate(CompareAndDelete("k", b"x" * (MIB + 1))) is not None


class TestLeaseIds:
    @pytest.mark.parametrize("lease_id", [None, 1, 2**63 - 1])
    def test_valid_lease_ids(self, lease_id: int | None) -> None:
        assert validate(Write("k", b"v", lease_id)) is None

    @pytest.mark.parametrize("lease_id", [0, -1, 2**63, True])
    def test_invalid_lease_ids(self, lease_id: int) -> None:
        assert (
            validate(Write("k", b"v", lease_id))
            == "lease id must be an integer between 1 and 9223372036854775807"
        )


class TestBatchLimits:
    def test_100_ops_are_accepted(self) -> None:
        assert validate(BatchWrite(tuple(SetOp(f"k{i}", b"v") for i in range(100)))) is None

    def test_101_ops_are_rejected(self) -> None:
        cmd = BatchWrite(tuple(SetOp(f"k{i}", b"v") for i in range(101)))
        assert validate(cmd) == "batch size 101 exceeds maximum of 100 keys"

    def test_empty_batch_is_valid(self) -> None:
        assert validate(BatchWrite(())) is None

    def test_batch_size_is_checked_before_the_items(self) -> None:
        assert validate(BatchWrite(tuple(SetOp("", b"v") for _ in range(101)))) == (
            "batch size 101 exceeds maximum of 100 keys"
        )

    def test_first_bad_item_is_reported(self) -> None:
        cmd = BatchWrite((SetOp("a", b"v"), DeleteOp(""), SetOp("k" * 2000, b"v")))
        assert validate(cmd) == "key cannot be empty"

    def test_conditions_and_ops_share_the_limit(self) -> None:
        conds = tuple(KeyExists(f"c{i}") for i in range(50))
        assert validate(ConditionalBatchWrite(conds, tuple(DeleteOp(f"d{i}") for i in range(50)))) is None
        too_many = ConditionalBatchWrite(conds, tuple(DeleteOp(f"d{i}") for i in range(51)))
        assert validate(too_many) == "batch size 101 exceeds maximum of 100 keys"

    def test_conditional_batch_checks_conditions_then_ops(self) -> None:
        cmd = ConditionalBatchWrite((KeyExists("a"), ValueEquals("b", b"x" * (MIB + 1))), (SetOp("", b""),))
        assert validate(cmd) == "value size 1048577 exceeds maximum of 1048576 bytes"
        assert validate(ConditionalBatchWrite((KeyNotExists(""),), ())) == "key cannot be empty"

    def test_foreign_objects_in_a_batch_are_rejected(self) -> None:
        assert validate(BatchWrite((Write("k", b"v"),))) is not None  # type: ignore[arg-type]
        assert validate(ConditionalBatchWrite((SetOp("k", b"v"),), ())) is not None  # type: ignore[arg-type]


class TestQueries:
    def test_read_key_rules(self) -> None:
        assert validate(Read("k")) is None
        assert validate(Read("")) == "key cannot be empty"

    def test_batch_read_limit_counts_keys(self) -> None:
        assert validate(BatchRead(tuple(f"k{i}" for i in range(100)))) is None
        assert validate(BatchRead(tuple(f"k{i}" for i in range(101)))) == (
            "batch size 101 exceeds maximum of 100 keys"
        )

    def test_scan_is_lenient_on_values(self) -> None:
        assert validate(Scan("")) is None
        assert validate(Scan("p" * 5000, limit=-5, continuation_token="")) is None

    def test_scan_rejects_wrong_types(self) -> None:
        assert validate(Scan(1)) is not None  # type: ignore[arg-type]
        assert validate(Scan("", limit="10")) is not None  # type: ignore[arg-type]
        assert validate(Scan("", continuation_token=b"k")) is not None  # type: ignore[arg-type]


def test_validate_raises_type_error_for_non_commands() -> None:
    with pytest.raises(TypeError):
        validate("write k v")


# apply() must reach the same verdict on its own and leave the state untouched.
BAD_COMMANDS: list[tuple[Command, object]] = [
    (Write("", b"v"), WriteResult(is_success=False, error="key cannot be empty")),
    (
        Write("k", b"x" * (MIB + 1)),
        WriteResult(is_success=False, error="value size 1048577 exceeds maximum of 1048576 bytes"),
    ),
    (Delete(""), DeleteResult(key="", was_deleted=False, error="key cannot be empty")),
    (
        Delete("k" * 1025),
        DeleteResult(key="k" * 1025, was_deleted=False, error="key size 1025 exceeds maximum of 1024 bytes"),
    ),
    (CompareAndSwap("", None, b"v"), CasResult(is_success=False, error="key cannot be empty")),
    (CompareAndDelete("", b"v"), CasResult(is_success=False, error="key cannot be empty")),
    (
        BatchWrite(tuple(SetOp(f"n{i}", b"v") for i in range(101))),
        BatchWriteResult(
            is_success=False, operations_applied=0, error="batch size 101 exceeds maximum of 100 keys"
        ),
    ),
    (
        ConditionalBatchWrite((), (SetOp("n", b"v"), SetOp("", b"v"))),
        ConditionalBatchWriteResult(
            is_success=False, conditions_met=False, operations_applied=0, error="key cannot be empty"
        ),
    ),
]


@pytest.mark.parametrize(("cmd", "expected"), BAD_COMMANDS)
def test_apply_revalidates_and_leaves_state_untouched(cmd: Command, expected: object) -> None:
    kv = KvStateMachine()
    kv.apply(1, Write("k", b"original"))
    before = kv.state_hash()
    assert kv.apply(2, cmd) == expected
    assert kv.state_hash() == before
    assert kv.applied_index == 2  # a rejected command is still a consumed log entry
