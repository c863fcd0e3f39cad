"""Shared helpers of the layers that keep JSON records and compose keys from user names
(semaphore, queue, barrier, service registry).

Invariants:
- Records are JSON with sorted keys and no spaces, so every replica writes identical bytes.
- A stored record that does not parse as the expected JSON object is reported as corrupt
  (`Rejected`), never coerced or silently replaced. Parsing is size- and depth-bounded
  (`aspen.kv.records.parse_record`), so no stored bytes can make a layer raise anything else.
- `escape` is injective and never produces `:`; a name escaped into a composite key
  (`<prefix><a>:<b>`) therefore cannot collide with another name's keys or sub-keys.
"""

from __future__ import annotations

import json
from typing import Any

from aspen.kv.layer import KvReader
from aspen.kv.records import parse_record


def escape(name: str) -> str:
    """`name` with `%` and `:` percent-encoded, so it can be one segment of a `:`-separated key."""
    return name.replace("%", "%25").replace(":", "%3A")


def unescape(segment: str) -> str:
    return segment.replace("%3A", ":").replace("%25", "%")


def dump(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode()


def load(reader: KvReader, key: str) -> dict[str, Any] | None:
    """The JSON object stored at `key`, None if missing; `Rejected` if it is not a JSON object."""
    raw = reader.get(key)
    if raw is None:
        return None
    return parse(key, raw)


def parse(key: str, raw: bytes) -> dict[str, Any]:
    """The JSON object in `raw` (stored at `key`), through the one bounded parser of stored records."""
    return parse_record(key, raw)


def check_id(what: str, value: object, *, max_bytes: int = 256) -> str | None:
    """Why `value` cannot be an identifier (holder, participant, consumer, instance …), or None."""
    if type(value) is not str or not value:
        return f"{what} cannot be empty"
    if len(value.encode()) > max_bytes:
        return f"{what} exceeds {max_bytes} bytes"
    return None


def check_range(what: str, value: int, low: int, high: int) -> str | None:
    return None if low <= value <= high else f"{what} must be between {low} and {high}"


__all__ = ["check_id", "check_range", "dump", "escape", "load", "parse", "unescape"]
