"""The bounded parser of stored records and the reserved key prefixes (aspen.kv.records), and the
scan that hides reserved keys (issue 19, items 1 and 2)."""

from __future__ import annotations

import sys

import pytest

from aspen.blob.policy import ReplicaRecord
from aspen.kv import (
    RESERVED_PREFIXES,
    KvStateMachine,
    RecordError,
    Rejected,
    Scan,
    Write,
    load_json,
    parse_record,
    reserved_key_error,
)
from aspen.kv.limits import MAX_VALUE_SIZE
from aspen.kv.records import MAX_RECORD_DEPTH


@pytest.mark.parametrize("opener", [b"[", b"{", b'{"a":', b'[{"b":', b'["x",'])
@pytest.mark.parametrize("n", [MAX_RECORD_DEPTH + 1, 200_000])
def test_deep_json_is_refused_before_the_recursive_decoder_runs(opener: bytes, n: int) -> None:
    with pytest.raises(RecordError, match="nested deeper"):
        load_json((opener * n)[:MAX_VALUE_SIZE])


def test_the_bound_does_not_depend_on_the_recursion_limit() -> None:
    doc = b"[" * MAX_RECORD_DEPTH + b"]" * MAX_RECORD_DEPTH
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(200, old // 4))
    try:
        assert load_json(doc) is not None
    finally:
        sys.setrecursionlimit(old)


def test_brackets_inside_strings_do_not_count() -> None:
    text = b'{"a":"' + b"[" * 500 + b'\\"[[[","b":[1,[2]]}'
    assert load_json(text) == {"a": "[" * 500 + '"[[[', "b": [1, [2]]}


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe",
        b'{"a":"\xff"}',
        b"NaN",
        b'{"x":Infinity}',
        b'{"x":-Infinity}',
        b'{"x":1e400}',
        b"9" * 5000,
        b'{"holders":' + b"1" * 4301 + b"}",
        b"",
        b"{",
        b'"unterminated',
        b"x" * (MAX_VALUE_SIZE + 1),
    ],
)
def test_everything_else_the_decoder_refuses_is_one_record_error(raw: bytes) -> None:
    with pytest.raises(RecordError):
        load_json(raw)
    with pytest.raises(Rejected, match="corrupted data in key 'k': not a valid record"):
        parse_record("k", raw)


@pytest.mark.parametrize("raw", [b"[]", b"null", b"5", b'"s"', b"true"])
def test_a_record_is_a_json_object(raw: bytes) -> None:
    with pytest.raises(Rejected, match="not a valid record"):
        parse_record("k", raw)
    assert parse_record("k", b'{"a":[1,{"b":2}]}') == {"a": [1, {"b": 2}]}


def test_blob_replica_records_use_the_same_parser() -> None:
    with pytest.raises(ValueError, match="not a blob replica record: nested deeper"):
        ReplicaRecord.decode(b"[" * 200_000)


def test_reserved_prefixes_and_their_message() -> None:
    assert RESERVED_PREFIXES == ("__coord:", "_system:")
    assert reserved_key_error("__coord:counter:hits") == (
        "key '__coord:counter:hits' is in the reserved prefix '__coord:' (owned by the coordination layers)"
    )
    assert reserved_key_error("_system:blob:replica:ab") is not None
    assert reserved_key_error("__coord") is None and reserved_key_error("user:_system:") is None


# ------------------------------------------------------------------------------------------ scan --
def _machine(keys: list[str]) -> KvStateMachine:
    kv = KvStateMachine()
    for i, key in enumerate(keys, start=1):
        kv.apply(i, Write(key, b"v"))
    return kv


KEYS = [
    "_a",
    "_system:blob:replica:1",
    "_system:blob:replica:2",
    "_systemz",
    "__coord:counter:x",
    "__coord:sem:y",
    "__coord;",
    "__coordinator",
    "a",
    "b",
]
VISIBLE = [k for k in sorted(KEYS) if not k.startswith(RESERVED_PREFIXES)]


def _pages(kv: KvStateMachine, prefix: str, limit: int, include_internal: bool) -> list[list[str]]:
    pages, token = [], None
    for _ in range(100):
        res = kv.scan(Scan(prefix, limit, token, include_internal=include_internal))
        pages.append([e.key for e in res.entries])
        assert res.count == len(res.entries)
        if not res.is_truncated:
            assert res.continuation_token is None
            return pages
        token = res.continuation_token
    raise AssertionError("scan did not end")


@pytest.mark.parametrize("limit", [1, 2, 3, 100])
def test_plain_scans_skip_reserved_keys_and_pages_stay_full(limit: int) -> None:
    kv = _machine(KEYS)
    pages = _pages(kv, "", limit, include_internal=False)
    assert [k for page in pages for k in page] == VISIBLE
    assert all(len(page) == limit for page in pages[:-1])
    assert pages[-1]  # never an empty last page after a truncated one
    everything = _pages(kv, "", limit, include_internal=True)
    assert [k for page in everything for k in page] == sorted(KEYS)


def test_a_scan_inside_a_reserved_prefix_needs_include_internal() -> None:
    kv = _machine(KEYS)
    assert kv.scan(Scan("_system:", include_internal=False)).entries == ()
    assert [e.key for e in kv.scan(Scan("_system:")).entries] == [
        "_system:blob:replica:1",
        "_system:blob:replica:2",
    ]
    assert [e.key for e in kv.scan(Scan("__coord", include_internal=False)).entries] == [
        "__coord;",
        "__coordinator",
    ]


def test_only_reserved_keys_left_means_not_truncated() -> None:
    kv = _machine(["a", "_system:x", "_system:y"])
    res = kv.scan(Scan("", 1, include_internal=False))
    assert [e.key for e in res.entries] == ["a"] and not res.is_truncated
