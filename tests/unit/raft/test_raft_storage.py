"""MemoryStorage, conf changes, restart helpers, inflights."""

from __future__ import annotations

import pytest

from aspen.raft.core import (
    CompactedError,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    Inflights,
    MemoryStorage,
    Snapshot,
    SnapshotMeta,
    SnapshotOutOfDateError,
    UnavailableError,
    apply_conf_change,
    conf_state_from,
    decode_conf_change,
    encode_conf_change,
)

CT = ConfChangeType


def _ents(lo: int, hi: int, term: int = 1) -> list[Entry]:
    return [Entry(term=term, index=i, data=b"%d" % i) for i in range(lo, hi + 1)]


def test_memory_storage_append_and_truncate() -> None:
    st = MemoryStorage()
    st.append(_ents(1, 5))
    assert (st.first_index(), st.last_index()) == (1, 5)
    st.append(_ents(3, 4, term=2))  # conflicting suffix replaced
    assert st.last_index() == 4
    assert [st.term(i) for i in range(1, 5)] == [1, 1, 2, 2]
    with pytest.raises(ValueError):
        st.append(_ents(7, 8))  # gap


def test_entries_read_before_an_append_are_not_changed_by_it() -> None:
    # append() grows and truncates the log in place; what was handed out must stay as it was.
    st = MemoryStorage()
    st.append(_ents(1, 5))
    read = st.entries(1, 6)
    st.append(_ents(3, 4, term=2))
    st.append(_ents(5, 6, term=2))
    assert [(e.index, e.term) for e in read] == [(i, 1) for i in range(1, 6)]
    assert [st.term(i) for i in range(1, 7)] == [1, 1, 2, 2, 2, 2]


def test_memory_storage_compact_and_errors() -> None:
    st = MemoryStorage()
    st.append(_ents(1, 10))
    st.create_snapshot(6, ConfState(voters=(1,)), b"s")
    st.compact(6)
    assert st.first_index() == 7 and st.term(6) == 1
    with pytest.raises(CompactedError):
        st.entries(5, 8)
    with pytest.raises(CompactedError):
        st.term(5)
    with pytest.raises(UnavailableError):
        st.entries(7, 12)
    with pytest.raises(CompactedError):
        st.compact(3)
    assert [e.index for e in st.entries(7, 11)] == [7, 8, 9, 10]
    # Size limits always return at least one entry.
    assert len(st.entries(7, 11, max_bytes=1)) == 1
    # Appending below the compaction point only keeps the new part.
    st.append(_ents(5, 12, term=1))
    assert st.last_index() == 12


def test_memory_storage_apply_snapshot() -> None:
    st = MemoryStorage()
    st.append(_ents(1, 3))
    snap = Snapshot(meta=SnapshotMeta(index=10, term=3, conf_state=ConfState(voters=(1, 2))), data=b"x")
    st.apply_snapshot(snap)
    assert (st.first_index(), st.last_index(), st.term(10)) == (11, 10, 3)
    assert st.conf_state == ConfState(voters=(1, 2))
    with pytest.raises(SnapshotOutOfDateError):
        st.apply_snapshot(snap)


def test_conf_change_codec_roundtrip() -> None:
    cc = ConfChange(CT.ADD_LEARNER, 7, b"addr:1")
    assert decode_conf_change(encode_conf_change(cc)) == cc
    with pytest.raises(ValueError):
        decode_conf_change(b"\xff\x00garbage")
    with pytest.raises(ValueError):
        decode_conf_change(encode_conf_change(cc)[:-2])


def test_apply_conf_change_rules() -> None:
    cs = ConfState(voters=(1, 2), learners=(3,))
    assert apply_conf_change(cs, ConfChange(CT.ADD_VOTER, 3)) == ConfState(voters=(1, 2, 3))
    assert apply_conf_change(cs, ConfChange(CT.ADD_VOTER, 4)) == ConfState(voters=(1, 2, 4), learners=(3,))
    assert apply_conf_change(cs, ConfChange(CT.ADD_LEARNER, 5)) == ConfState(voters=(1, 2), learners=(3, 5))
    assert apply_conf_change(cs, ConfChange(CT.REMOVE_NODE, 3)) == ConfState(voters=(1, 2))
    assert apply_conf_change(cs, ConfChange(CT.REMOVE_NODE, 1)) == ConfState(voters=(2,), learners=(3,))
    with pytest.raises(ValueError):
        apply_conf_change(cs, ConfChange(CT.ADD_LEARNER, 1))
    with pytest.raises(ValueError):
        apply_conf_change(ConfState(voters=(1,)), ConfChange(CT.REMOVE_NODE, 1))
    with pytest.raises(ValueError):
        apply_conf_change(cs, ConfChange(CT.ADD_VOTER, 0))


def test_conf_state_from_snapshot_and_committed_entries() -> None:
    def cc(i: int, t: CT, nid: int) -> Entry:
        return Entry(term=1, index=i, type=EntryType.CONF_CHANGE, data=encode_conf_change(ConfChange(t, nid)))

    snap = Snapshot(meta=SnapshotMeta(index=2, term=1, conf_state=ConfState(voters=(1, 2))))
    ents = [
        cc(2, CT.REMOVE_NODE, 2),
        cc(3, CT.ADD_LEARNER, 3),
        Entry(term=1, index=4),
        cc(5, CT.ADD_VOTER, 3),
    ]
    # Entry 2 is covered by the snapshot, entry 5 is not committed.
    assert conf_state_from(snap, ents, commit=4) == ConfState(voters=(1, 2), learners=(3,))
    assert conf_state_from(snap, ents, commit=5) == ConfState(voters=(1, 2, 3))
    assert conf_state_from(None, [cc(1, CT.ADD_VOTER, 1)], commit=1) == ConfState(voters=(1,))


def test_inflights_limits() -> None:
    inf = Inflights(3, max_bytes=100)
    inf.add(1, 10)
    inf.add(2, 10)
    assert not inf.full()
    inf.add(5, 10)
    assert inf.full()
    inf.free_le(2)
    assert inf.count() == 1 and not inf.full()
    inf.add(6, 95)
    assert inf.full()  # byte limit
    inf.free_first_one()
    assert inf.count() == 1 and inf.bytes == 95
