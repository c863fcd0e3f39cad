"""On-disk record framing of WAL segments.

Every record is ``[u32 length][u32 crc32c][u8 type][payload]``, little-endian, where ``length`` is
the payload length (excluding the type byte) and the CRC32C covers the type byte and the payload.

The type byte is a record kind in its low 6 bits plus two batch flags:

* ``BATCH_BEGIN`` (0x40) on the first record of every batch written by one ``save`` /
  ``save_snapshot`` / segment creation, and
* ``BATCH_END`` (0x80) on its last record (a one-record batch carries both).

Batches are what recovery treats as atomic: a batch is applied only once its ``BATCH_END`` record
has been read, so a crash half-way through writing a batch loses exactly that batch. The
``BATCH_BEGIN`` flag lets recovery tell "the damage is inside the unfinished last batch" (a torn
write: drop it) from "a later batch was written after the damaged one" (the damaged batch had been
acknowledged: refuse to open).

Payloads (all integers unsigned little-endian):

* SEGMENT_HEADER: magic (8 bytes), segment sequence number (u64), first index (u64).
* ENTRY: term (u64), index (u64), entry type (u8), then the raw entry data (the rest of the record).
* HARD_STATE: term (u64), vote (u64), commit (u64).
* SNAPSHOT_MARKER: snapshot index (u64), snapshot term (u64).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from google_crc32c import extend as _crc_extend
from google_crc32c import value as _crc_value

from aspen.raft.core.types import Entry, HardState

SEGMENT_HEADER = 1
ENTRY = 2
HARD_STATE = 3
SNAPSHOT_MARKER = 4

BATCH_BEGIN = 0x40
BATCH_END = 0x80
KIND_MASK = 0x3F

SEGMENT_MAGIC = b"ASPNWAL1"

#: length, crc
REC_HEADER = struct.Struct("<II")
REC_HEADER_SIZE = REC_HEADER.size + 1  # plus the type byte
#: type byte, term, index, entry type: the CRC'd fixed part of an ENTRY record.
ENTRY_FIXED = struct.Struct("<BQQB")
ENTRY_PAYLOAD_MIN = ENTRY_FIXED.size - 1
#: term, index, entry type, read at the payload offset.
ENTRY_FIELDS = struct.Struct("<QQB")
HARD_STATE_BODY = struct.Struct("<BQQQ")
MARKER_BODY = struct.Struct("<BQQ")
SEGMENT_HEADER_BODY = struct.Struct("<B8sQQ")

#: Exact payload size of each fixed-size record kind (ENTRY is variable: at least ENTRY_PAYLOAD_MIN).
FIXED_PAYLOAD = {
    SEGMENT_HEADER: SEGMENT_HEADER_BODY.size - 1,
    HARD_STATE: HARD_STATE_BODY.size - 1,
    SNAPSHOT_MARKER: MARKER_BODY.size - 1,
}

# Type bytes a valid record can start its type field with (any kind, any flag combination); used to
# find resynchronisation candidates quickly with a C-level regex scan instead of a Python loop.
_TYPE_BYTE = re.compile(rb"[\x01-\x04\x41-\x44\x81-\x84\xc1-\xc4]")

crc_value = _crc_value
crc_extend = _crc_extend


@dataclass(frozen=True, slots=True)
class SegmentHeader:
    seq: int
    first_index: int


@dataclass(frozen=True, slots=True)
class Marker:
    index: int
    term: int


def _flags(first: bool, last: bool) -> int:
    return (BATCH_BEGIN if first else 0) | (BATCH_END if last else 0)


def _encode_fixed(kind: int, body_struct: struct.Struct, *fields: object) -> bytes:
    body = body_struct.pack(kind, *fields)
    return REC_HEADER.pack(len(body) - 1, _crc_value(body)) + body


def encode_hard_state(hs: HardState, *, first: bool, last: bool) -> bytes:
    return _encode_fixed(HARD_STATE | _flags(first, last), HARD_STATE_BODY, hs.term, hs.vote, hs.commit)


def encode_marker(index: int, term: int, *, first: bool, last: bool) -> bytes:
    return _encode_fixed(SNAPSHOT_MARKER | _flags(first, last), MARKER_BODY, index, term)


def encode_segment_header(seq: int, first_index: int, *, first: bool, last: bool) -> bytes:
    return _encode_fixed(
        SEGMENT_HEADER | _flags(first, last), SEGMENT_HEADER_BODY, SEGMENT_MAGIC, seq, first_index
    )


def _encode_entry(parts: list[bytes], e: Entry, rtype: int) -> None:
    data = e.data
    if type(data) is not bytes:
        data = bytes(data)  # the C CRC only takes read-only bytes
    fixed = ENTRY_FIXED.pack(rtype, e.term, e.index, e.type)
    parts.append(REC_HEADER.pack(ENTRY_PAYLOAD_MIN + len(data), _crc_extend(_crc_value(fixed), data)))
    parts.append(fixed)
    parts.append(data)


def encode_batch(entries: Sequence[Entry], hard_state: HardState | None) -> bytes:
    """One batch: the entries, then the hard state, flagged BEGIN on the first and END on the last
    record. Entries must already have been validated as consecutive."""
    parts: list[bytes] = []
    n = len(entries)
    if n:
        ends_batch = hard_state is None
        if n == 1:
            _encode_entry(parts, entries[0], ENTRY | BATCH_BEGIN | (BATCH_END if ends_batch else 0))
        else:
            _encode_entry(parts, entries[0], ENTRY | BATCH_BEGIN)
            # Hot path: the middle of the batch, with everything bound to locals.
            append = parts.append
            pack_fixed = ENTRY_FIXED.pack
            pack_hdr = REC_HEADER.pack
            value = _crc_value
            extend = _crc_extend
            for i in range(1, n - 1):
                e = entries[i]
                data = e.data
                if type(data) is not bytes:
                    data = bytes(data)
                fixed = pack_fixed(ENTRY, e.term, e.index, e.type)
                append(pack_hdr(ENTRY_PAYLOAD_MIN + len(data), extend(value(fixed), data)))
                append(fixed)
                append(data)
            _encode_entry(parts, entries[n - 1], ENTRY | (BATCH_END if ends_batch else 0))
    if hard_state is not None:
        parts.append(encode_hard_state(hard_state, first=not n, last=True))
    return b"".join(parts)


def payload_size_ok(kind: int, length: int) -> bool:
    if kind == ENTRY:
        return length >= ENTRY_PAYLOAD_MIN
    return FIXED_PAYLOAD.get(kind) == length


def valid_record_at(buf: bytes, pos: int) -> int | None:
    """The end offset of a complete, CRC-valid record starting at `pos`, else None."""
    n = len(buf)
    if n - pos < REC_HEADER_SIZE:
        return None
    length: int
    crc: int
    length, crc = REC_HEADER.unpack_from(buf, pos)
    end = pos + REC_HEADER_SIZE + length
    if end > n or not payload_size_ok(buf[pos + 8] & KIND_MASK, length):
        return None
    if _crc_value(buf[pos + 8 : end]) != crc:
        return None
    return end


def find_batch_begin_after(buf: bytes, start: int) -> int | None:
    """The offset of a CRC-valid record flagged BATCH_BEGIN at or after `start`, if any.

    Used after a bad record in the tail segment: if another batch starts after the damage, the
    damaged batch was complete when the next one was written (so it had been acknowledged) and the
    damage is corruption, not a torn write. Candidates are positions whose type byte is plausible;
    each is confirmed by its length and CRC (a false match needs a 32-bit CRC collision).
    """
    search = _TYPE_BYTE.search
    m = search(buf, start + 8)
    while m is not None:
        pos = m.start() - 8
        end = valid_record_at(buf, pos)
        if end is not None:
            if buf[pos + 8] & BATCH_BEGIN:
                return pos
            # A valid record inside the damaged batch: carry on after it.
            m = search(buf, end + 8)
        else:
            m = search(buf, m.start() + 1)
    return None
