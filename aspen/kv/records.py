"""The one parser of JSON records stored in the KV map (coordination layers, blob replica records),
and the key prefixes those records live under, which plain KV clients may not write.

Stored bytes are untrusted: an older node, a restored backup or (before the prefixes were reserved)
a plain `kv set` may have left anything at a record's key, and the layers parse those bytes inside
`apply`. So parsing must be total and deterministic:

- Size- and depth-bounded *before* `json.loads`, by a linear scan without recursion. Python's JSON
  decoder recurses per nesting level; where it gives up depends on the interpreter's recursion
  limit and on how deep the caller's stack already is, so two replicas could disagree on whether
  the same bytes parse. An explicit bound (`MAX_RECORD_DEPTH`) makes the answer depend on the bytes
  alone, and far below any recursion limit.
- Everything else the decoder can refuse (invalid UTF-8, integers beyond Python's digit limit,
  NaN/Infinity, non-finite floats) is one `RecordError`, never a stray exception type.

Invariant: `MAX_RECORD_DEPTH` and `MAX_RECORD_BYTES` are replicated semantics (like aspen.kv.limits):
change them only together with a log format version bump.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Final

from aspen.kv.layer import Rejected
from aspen.kv.limits import MAX_VALUE_SIZE

#: Deepest nesting of arrays/objects a stored record may have; real records nest at most 3 deep.
MAX_RECORD_DEPTH: Final = 64
#: Largest stored record: a KV value can never be larger.
MAX_RECORD_BYTES: Final = MAX_VALUE_SIZE


@dataclass(frozen=True, slots=True)
class ReservedPrefix:
    prefix: str
    #: Who writes keys under the prefix, for the error message.
    owner: str


#: Key prefixes owned by the system. Plain KV writes to them are refused at the node's edge and
#: plain scans hide them (see aspen.node.service). Later subsystems add their prefix here.
RESERVED: Final[tuple[ReservedPrefix, ...]] = (
    ReservedPrefix("__coord:", "the coordination layers"),
    ReservedPrefix("_system:", "the node's internal records"),
)
RESERVED_PREFIXES: Final[tuple[str, ...]] = tuple(r.prefix for r in RESERVED)


def reserved_prefix(key: str) -> ReservedPrefix | None:
    """The reserved prefix `key` falls under, or None."""
    return next((r for r in RESERVED if key.startswith(r.prefix)), None)


def reserved_key_error(key: str) -> str | None:
    """Why a plain KV client may not write `key`, or None."""
    found = reserved_prefix(key)
    if found is None:
        return None
    return f"key {key!r} is in the reserved prefix {found.prefix!r} (owned by {found.owner})"


class RecordError(ValueError):
    """The bytes are not a JSON document within the record bounds."""


# A JSON string (escapes skipped in one step), or one bracket. Unrolled-loop form: linear time, no
# backtracking. An unterminated string matches to the end of the input, which json.loads refuses.
_TOKENS: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.DOTALL)


def _check_depth(raw: bytes) -> None:
    # Fast path: fewer opening brackets than the bound cannot nest deeper than it (brackets inside
    # strings only overcount).
    if raw.count(b"[") + raw.count(b"{") <= MAX_RECORD_DEPTH:
        return
    depth = 0
    for match in _TOKENS.finditer(raw):
        ch = raw[match.start()]
        if ch in b"[{":
            depth += 1
            if depth > MAX_RECORD_DEPTH:
                raise RecordError(f"nested deeper than {MAX_RECORD_DEPTH}")
        elif ch in b"]}":
            depth -= 1


def _refuse_constant(name: str) -> Any:
    raise RecordError(f"{name} is not allowed")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise RecordError("number out of range")
    return value


def load_json(raw: bytes) -> Any:
    """The JSON document in `raw`; `RecordError` if it is too large, too deep, or not JSON."""
    if type(raw) is not bytes:
        raise RecordError(f"expected bytes, not {type(raw).__name__}")
    if len(raw) > MAX_RECORD_BYTES:
        raise RecordError(f"larger than {MAX_RECORD_BYTES} bytes")
    _check_depth(raw)
    try:
        return json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecordError:
        raise
    # ValueError covers JSONDecodeError, UnicodeDecodeError and the int digit limit; RecursionError
    # cannot happen under the depth bound, but apply must stay total even if the bound is wrong.
    except (ValueError, TypeError, RecursionError) as err:
        raise RecordError(type(err).__name__) from None


def parse_record(key: str, raw: bytes, what: str = "a valid record") -> dict[str, Any]:
    """The JSON object stored at `key`; the layers' `Rejected` if `raw` is anything else."""
    try:
        record = load_json(raw)
    except RecordError:
        record = None
    if type(record) is not dict:
        raise Rejected(f"corrupted data in key '{key}': not {what}")
    return record


__all__ = [
    "MAX_RECORD_BYTES",
    "MAX_RECORD_DEPTH",
    "RESERVED",
    "RESERVED_PREFIXES",
    "RecordError",
    "ReservedPrefix",
    "load_json",
    "parse_record",
    "reserved_key_error",
    "reserved_prefix",
]
