"""Reads: Read, BatchRead, and Scan with prefixes, limits and continuation tokens."""

from __future__ import annotations

import pytest

from aspen.kv import (
    BatchRead,
    BatchReadResult,
    BatchWrite,
    Delete,
    KvStateMachine,
    Read,
    ReadResult,
    Scan,
    ScanEntry,
    ScanResult,
    SetOp,
    Write,
)


def with_keys(keys: list[str]) -> KvStateMachine:
    kv = KvStateMachine()
    for start in range(0, len(keys), 100):
        chunk = keys[start : start + 100]
        kv.apply(start // 100 + 1, BatchWrite(tuple(SetOp(k, k.encode()) for k in chunk)))
    return kv


def scan_all(kv: KvStateMachine, prefix: str, limit: int | None) -> tuple[list[str], int]:
    """Follow continuation tokens to the end; returns the keys and the number of pages."""
    keys: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        page = kv.scan(Scan(prefix, limit, token))
        pages += 1
        assert page.count == len(page.entries)
        keys += [e.key for e in page.entries]
        if not page.is_truncated:
            assert page.continuation_token is None
            return keys, pages
        token = page.continuation_token
        assert pages < 10_000


class TestRead:
    def test_found_and_missing(self) -> None:
        kv = KvStateMachine()
        kv.apply(1, Write("k", b"v"))
        assert kv.read(Read("k")) == ReadResult(value=b"v", was_found=True)
        assert kv.read(Read("nope")) == ReadResult(value=None, was_found=False)

    def test_empty_value_is_found(self) -> None:
        kv = KvStateMachine()
        kv.apply(1, Write("k", b""))
        assert kv.read(Read("k")) == ReadResult(value=b"", was_found=True)

    def test_batch_read_keeps_request_order_and_duplicates(self) -> None:
        kv = KvStateMachine()
        kv.apply(1, Write("a", b"1"))
        kv.apply(2, Write("b", b"2"))
        assert kv.batch_read(BatchRead(("b", "x", "a", "b"))) == BatchReadResult((b"2", None, b"1", b"2"))
        assert kv.batch_read(BatchRead(())) == BatchReadResult(())

    def test_query_dispatches_by_type(self) -> None:
        kv = KvStateMachine()
        kv.apply(1, Write("a", b"1"))
        assert kv.query(Read("a")) == ReadResult(b"1", True)
        assert kv.query(BatchRead(("a",))) == BatchReadResult((b"1",))
        assert kv.query(Scan("a")).count == 1
        with pytest.raises(TypeError):
            kv.query(Write("a", b"1"))  # type: ignore[call-overload]


class TestScanBasics:
    def test_returns_matching_keys_in_order_with_metadata(self) -> None:
        kv = KvStateMachine()
        kv.apply(1, Write("user/b", b"B"))
        kv.apply(2, Write("user/a", b"A"))
        kv.apply(3, Write("users", b"S"))
        kv.apply(4, Write("user/a", b"A2"))
        kv.apply(5, Write("usea", b"x"))
        assert kv.scan(Scan("user/")) == ScanResult(
            entries=(
                ScanEntry("user/a", b"A2", version=2, create_revision=2, mod_revision=4),
                ScanEntry("user/b", b"B", version=1, create_revision=1, mod_revision=1),
            ),
            count=2,
            is_truncated=False,
            continuation_token=None,
        )

    def test_empty_prefix_matches_everything(self) -> None:
        keys = ["a", "b", "c"]
        assert [e.key for e in with_keys(keys).scan(Scan("")).entries] == keys

    def test_no_match(self) -> None:
        assert with_keys(["a", "c"]).scan(Scan("b")) == ScanResult((), 0, False, None)
        assert KvStateMachine().scan(Scan("")) == ScanResult((), 0, False, None)

    def test_prefix_itself_is_a_match(self) -> None:
        assert [e.key for e in with_keys(["ab", "abc", "abd", "ac"]).scan(Scan("ab")).entries] == [
            "ab",
            "abc",
            "abd",
        ]

    def test_order_is_utf8_byte_order(self) -> None:
        keys = ["z", "é", "\uffff", "😀", "a", "\u00ff", "\u0100", "A"]
        got = [e.key for e in with_keys(keys).scan(Scan("")).entries]
        assert got == sorted(keys, key=lambda k: k.encode("utf-8"))


class TestScanLimits:
    def test_default_limit_is_1000(self) -> None:
        page = with_keys([f"k{i:04}" for i in range(1001)]).scan(Scan("k"))
        assert page.count == 1000 and page.is_truncated and page.continuation_token == "k0999"

    def test_limit_is_clamped_to_10000(self) -> None:
        kv = with_keys([f"k{i:05}" for i in range(10_001)])
        page = kv.scan(Scan("k", limit=50_000))
        assert page.count == 10_000 and page.is_truncated and page.continuation_token == "k09999"
        rest = kv.scan(Scan("k", limit=50_000, continuation_token=page.continuation_token))
        assert [e.key for e in rest.entries] == ["k10000"] and not rest.is_truncated

    def test_exactly_limit_matches_is_not_truncated(self) -> None:
        kv = with_keys(["p1", "p2", "p3", "q"])
        assert kv.scan(Scan("p", limit=3)) == ScanResult(
            tuple(ScanEntry(k, k.encode(), 1, 1, 1) for k in ("p1", "p2", "p3")), 3, False, None
        )

    def test_one_more_than_limit_is_truncated(self) -> None:
        page = with_keys(["p1", "p2", "p3", "p4"]).scan(Scan("p", limit=3))
        assert page.count == 3 and page.is_truncated and page.continuation_token == "p3"

    def test_limit_zero_returns_nothing_but_reports_whether_matches_exist(self) -> None:
        kv = with_keys(["p1", "p2"])
        assert kv.scan(Scan("p", limit=0)) == ScanResult((), 0, True, None)
        assert kv.scan(Scan("q", limit=0)) == ScanResult((), 0, False, None)
        # Resuming from a token: the token is handed back unchanged, so no position is lost.
        assert kv.scan(Scan("p", limit=0, continuation_token="p1")) == ScanResult((), 0, True, "p1")
        assert kv.scan(Scan("p", limit=0, continuation_token="p2")) == ScanResult((), 0, False, None)

    def test_negative_limit_is_clamped_to_zero(self) -> None:
        assert with_keys(["p1"]).scan(Scan("p", limit=-3)) == ScanResult((), 0, True, None)


class TestScanPagination:
    @pytest.mark.parametrize("limit", [1, 2, 7, 10, 33, 250, 1000])
    def test_pages_cover_every_key_exactly_once(self, limit: int) -> None:
        matching = [f"app/{i:04}" for i in range(250)]
        kv = with_keys([*matching, "ap", "apq", "app", "apq/1", "b/1", "app0"])
        keys, pages = scan_all(kv, "app/", limit)
        assert keys == matching
        assert len(set(keys)) == len(keys)
        assert pages == -(-250 // limit)  # ceil: the look-ahead avoids an empty trailing page

    def test_exact_multiple_of_limit_needs_no_empty_trailing_page(self) -> None:
        kv = with_keys([f"k{i}" for i in range(6)])
        keys, pages = scan_all(kv, "k", 3)
        assert keys == [f"k{i}" for i in range(6)]
        assert pages == 2  # look-ahead detects the end, no empty third page

    def test_next_page_starts_strictly_after_the_token(self) -> None:
        kv = with_keys(["k1", "k2", "k3"])
        assert [e.key for e in kv.scan(Scan("k", continuation_token="k1")).entries] == ["k2", "k3"]

    def test_token_key_deleted_between_pages(self) -> None:
        kv = with_keys([f"k{i}" for i in range(6)])
        first = kv.scan(Scan("k", limit=3))
        assert first.continuation_token == "k2"
        kv.apply(100, BatchWrite((SetOp("k2", b"x"),)))  # unrelated noise at the token
        kv.apply(101, Delete("k2"))
        kv.apply(102, Delete("k3"))
        second = kv.scan(Scan("k", limit=3, continuation_token=first.continuation_token))
        assert [e.key for e in second.entries] == ["k4", "k5"]
        assert not second.is_truncated

    def test_keys_inserted_before_the_token_are_not_revisited(self) -> None:
        kv = with_keys(["k1", "k3", "k5"])
        first = kv.scan(Scan("k", limit=2))
        kv.apply(200, Write("k0", b""))
        kv.apply(201, Write("k4", b""))
        second = kv.scan(Scan("k", limit=2, continuation_token=first.continuation_token))
        assert [e.key for e in second.entries] == ["k4", "k5"]

    def test_token_before_the_prefix_is_ignored(self) -> None:
        kv = with_keys(["a", "p1", "p2"])
        assert [e.key for e in kv.scan(Scan("p", continuation_token="a")).entries] == ["p1", "p2"]
        assert [e.key for e in kv.scan(Scan("p", continuation_token="")).entries] == ["p1", "p2"]

    def test_token_past_the_prefix_range_yields_nothing(self) -> None:
        kv = with_keys(["p1", "p2", "q"])
        assert kv.scan(Scan("p", continuation_token="q")) == ScanResult((), 0, False, None)

    def test_token_equal_to_the_prefix_skips_only_the_prefix_key(self) -> None:
        kv = with_keys(["p", "p1"])
        assert [e.key for e in kv.scan(Scan("p", continuation_token="p")).entries] == ["p1"]


def test_scan_walks_only_the_page_not_the_whole_map() -> None:
    """Efficiency: a page costs O(log n + limit). Counted via the keys the iterator hands out."""
    kv = with_keys([f"k{i:05}" for i in range(20_000)])
    data = kv._data  # white-box: count how many keys the scan pulls from the ordered index
    pulled = 0
    original = data.irange

    def counting_irange(*args: object, **kwargs: object) -> object:
        nonlocal pulled
        for key in original(*args, **kwargs):
            pulled += 1
            yield key

    data.irange = counting_irange
    try:
        page = kv.scan(Scan("k", limit=10, continuation_token="k10000"))
    finally:
        del data.irange
    assert page.entries[0].key == "k10001"
    assert pulled == 11  # 10 entries + 1 look-ahead
