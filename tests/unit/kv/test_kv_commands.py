"""Single-key commands: Write, Delete, CompareAndSwap, CompareAndDelete, and the apply contract."""

from __future__ import annotations

import pytest

from aspen.kv import (
    CasResult,
    CompareAndDelete,
    CompareAndSwap,
    Delete,
    DeleteResult,
    KvEntry,
    KvStateMachine,
    LeaseGrant,
    Write,
    WriteResult,
)


class TestWrite:
    def test_create_sets_version_1_and_both_revisions_to_the_index(self, kv: KvStateMachine) -> None:
        assert kv.apply(5, Write("k", b"v")) == WriteResult(is_success=True, error=None)
        assert kv.get_entry("k") == KvEntry(b"v", version=1, create_revision=5, mod_revision=5)

    def test_overwrite_bumps_version_and_mod_revision_only(self, kv: KvStateMachine) -> None:
        kv.apply(5, Write("k", b"v1"))
        kv.apply(9, Write("k", b"v2"))
        kv.apply(12, Write("k", b"v2"))  # same value still counts as a modification
        assert kv.get_entry("k") == KvEntry(b"v2", version=3, create_revision=5, mod_revision=12)

    def test_recreate_after_delete_starts_over(self, kv: KvStateMachine) -> None:
        kv.apply(1, Write("k", b"a"))
        kv.apply(2, Write("k", b"b"))
        kv.apply(3, Delete("k"))
        kv.apply(4, Write("k", b"c"))
        assert kv.get_entry("k") == KvEntry(b"c", version=1, create_revision=4, mod_revision=4)

    def test_empty_value_is_a_value(self, kv: KvStateMachine) -> None:
        kv.apply(1, Write("k", b""))
        assert kv.get_entry("k") == KvEntry(b"", 1, 1, 1)

    def test_lease_is_attached_and_replaced_by_the_next_write(self, kv: KvStateMachine) -> None:
        kv.apply(1, LeaseGrant(ttl_seconds=60, now_ms=0, lease_id=7))
        kv.apply(1, Write("k", b"v", lease_id=7))
        entry = kv.get_entry("k")
        assert entry is not None and entry.lease_id == 7
        kv.apply(2, Write("k", b"v"))
        entry = kv.get_entry("k")
        assert entry is not None and entry.lease_id is None

    def test_writes_do_not_touch_other_keys(self, kv: KvStateMachine) -> None:
        kv.apply(1, Write("a", b"1"))
        kv.apply(2, Write("b", b"2"))
        assert kv.get_entry("a") == KvEntry(b"1", 1, 1, 1)
        assert len(kv) == 2


class TestDelete:
    def test_delete_existing(self, kv: KvStateMachine) -> None:
        kv.apply(1, Write("k", b"v"))
        assert kv.apply(2, Delete("k")) == DeleteResult(key="k", was_deleted=True, error=None)
        assert kv.get_entry("k") is None
        assert len(kv) == 0

    def test_delete_missing_is_not_an_error(self, kv: KvStateMachine) -> None:
        assert kv.apply(1, Delete("k")) == DeleteResult(key="k", was_deleted=False, error=None)

    def test_delete_empty_key(self, kv: KvStateMachine) -> None:
        assert kv.apply(1, Delete("")) == DeleteResult(key="", was_deleted=False, error="key cannot be empty")


class TestCompareAndSwap:
    def test_expected_none_creates_an_absent_key(self, kv: KvStateMachine) -> None:
        assert kv.apply(3, CompareAndSwap("k", None, b"new")) == CasResult(
            is_success=True, actual_value=None, error=None
        )
        assert kv.get_entry("k") == KvEntry(b"new", 1, 3, 3)

    def test_expected_none_conflicts_with_a_present_key(self, kv: KvStateMachine) -> None:
        kv.apply(1, Write("k", b"cur"))
        assert kv.apply(2, CompareAndSwap("k", None, b"new")) == CasResult(
            is_success=False, actual_value=b"cur", error=None
        )
        assert kv.get_entry("k") == KvEntry(b"cur", 1, 1, 1)

    def test_matching_value_is_swapped(self, kv: KvStateMachine) -> None:
        kv.apply(1, Write("k", b"cur"))
        assert kv.apply(2, CompareAndSwap("k", b"cur", b"new")).is_success
        assert kv.get_entry("k") == KvEntry(b"new", 2, 1, 2)

    def test_mismatch_reports_the_actual_value(self, kv: KvStateMachine) -> None:
        kv.apply(1, Write("k", b"cur"))
        assert kv.apply(2, CompareAndSwap("k", b"other", b"new")) == CasResult(
            is_success=False, actual_value=b"cur", error=None
        )

    def test_expected_value_on_a_missing_key_conflicts_with_actual_none(self, kv: KvStateMachine) -> None:
        assert kv.apply(1, CompareAndSwap("k", b"cur", b"new")) == CasResult(
            is_success=False, actual_value=None, error=None
        )
        assert "k" not in kv

    def test_empty_expected_matches_only_an_empty_value(self, kv: KvStateMachine) -> None:
        kv.apply(1, Write("k", b""))
        assert kv.apply(2, CompareAndSwap("k", b"", b"x")).is_success
        assert kv.apply(3, CompareAndSwap("k", b"", b"y")) == CasResult(False, b"x", None)

    def test_success_clears_the_lease(self, kv: KvStateMachine) -> None:
        kv.apply(1, LeaseGrant(ttl_seconds=60, now_ms=0, lease_id=9))
        kv.apply(1, Write("k", b"cur", lease_id=9))
        kv.apply(2, CompareAndSwap("k", b"cur", b"new"))
        entry = kv.get_entry("k")
        assert entry is not None and entry.lease_id is None

    def test_conflict_keeps_the_lease(self, kv: KvStateMachine) -> None:
        kv.apply(1, LeaseGrant(ttl_seconds=60, now_ms=0, lease_id=9))
        kv.apply(1, Write("k", b"cur", lease_id=9))
        kv.apply(2, CompareAndSwap("k", b"x", b"new"))
        assert kv.get_entry("k") == KvEntry(b"cur", 1, 1, 1, lease_id=9)


class TestCompareAndDelete:
    def test_matching_value_is_deleted(self, kv: KvStateMachine) -> None:
        kv.apply(1, Write("k", b"cur"))
        assert kv.apply(2, CompareAndDelete("k", b"cur")) == CasResult(True, None, None)
        assert "k" not in kv

    def test_mismatch_reports_the_actual_value(self, kv: KvStateMachine) -> None:
        kv.apply(1, Write("k", b"cur"))
        assert kv.apply(2, CompareAndDelete("k", b"x")) == CasResult(False, b"cur", None)
        assert "k" in kv

    def test_missing_key_is_a_conflict_with_actual_none(self, kv: KvStateMachine) -> None:
        assert kv.apply(1, CompareAndDelete("k", b"x")) == CasResult(False, None, None)

    def test_empty_expected_is_an_ordinary_comparison(self, kv: KvStateMachine) -> None:
        kv.apply(1, Write("full", b"x"))
        kv.apply(2, Write("empty", b""))
        assert kv.apply(3, CompareAndDelete("full", b"")) == CasResult(False, b"x", None)
        assert kv.apply(4, CompareAndDelete("empty", b"")) == CasResult(True, None, None)
        assert kv.apply(5, CompareAndDelete("missing", b"")) == CasResult(False, None, None)

    def test_recreate_after_compare_and_delete_starts_over(self, kv: KvStateMachine) -> None:
        kv.apply(1, Write("k", b"a"))
        kv.apply(2, Write("k", b"b"))
        kv.apply(3, CompareAndDelete("k", b"b"))
        kv.apply(4, CompareAndSwap("k", None, b"c"))
        assert kv.get_entry("k") == KvEntry(b"c", 1, 4, 4)


class TestApplyContract:
    def test_applied_index_follows_every_applied_entry_even_failed_ones(self, kv: KvStateMachine) -> None:
        assert kv.applied_index == 0
        kv.apply(1, Write("k", b"v"))
        kv.apply(4, CompareAndSwap("k", b"nope", b"x"))
        assert kv.applied_index == 4

    def test_several_commands_may_share_an_index(self, kv: KvStateMachine) -> None:
        kv.apply(7, Write("a", b"1"))
        kv.apply(7, Write("a", b"2"))
        assert kv.get_entry("a") == KvEntry(b"2", 2, 7, 7)

    def test_going_back_in_the_log_is_a_programming_error(self, kv: KvStateMachine) -> None:
        kv.apply(5, Write("k", b"v"))
        with pytest.raises(ValueError):
            kv.apply(4, Write("k", b"w"))
        assert kv.get_entry("k") == KvEntry(b"v", 1, 5, 5)
        assert kv.applied_index == 5

    def test_non_command_is_a_type_error(self, kv: KvStateMachine) -> None:
        with pytest.raises(TypeError):
            kv.apply(1, "set k v")  # type: ignore[call-overload]
        assert kv.applied_index == 0

    def test_advance_records_non_kv_entries(self, kv: KvStateMachine) -> None:
        kv.apply(1, Write("k", b"v"))
        kv.advance(3)
        assert kv.applied_index == 3
        with pytest.raises(ValueError):
            kv.advance(2)

    def test_items_lists_entries_in_key_order(self, kv: KvStateMachine) -> None:
        for i, key in enumerate(["b", "a/2", "a/1", "c"], start=1):
            kv.apply(i, Write(key, key.encode()))
        assert [k for k, _ in kv.items()] == ["a/1", "a/2", "b", "c"]
        assert [k for k, _ in kv.items("a/")] == ["a/1", "a/2"]
        assert dict(kv.items("b")) == {"b": KvEntry(b"b", 1, 1, 1)}
