"""The node-local blob store: layout, atomic publication, tags, protection and GC rules."""

from __future__ import annotations

from pathlib import Path

import blake3
import pytest

from aspen.blob.store import BlobStore, BlobTooLargeError, HashMismatchError, is_valid_hash, validate_hash

T0 = 1_000.0


def digest(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs", max_size=1024, now=T0)


def test_blob_is_stored_under_its_blake3_hash(store: BlobStore) -> None:
    info, was_new = store.add_bytes(b"hello", now=T0)
    assert info.hash == digest(b"hello") and info.size_bytes == 5 and was_new
    assert store.path_of(info.hash) == store.root / "data" / info.hash[:2] / info.hash
    assert store.read_bytes(info.hash) == b"hello"
    assert store.add_bytes(b"hello", now=T0)[1] is False  # same bytes: not new
    assert store.verify(info.hash)


def test_a_receive_that_does_not_match_leaves_nothing_visible(store: BlobStore) -> None:
    pending = store.begin(5)
    pending.write(b"hellx")
    with pytest.raises(HashMismatchError):
        pending.commit(digest(b"hello"), now=T0)
    assert not store.has(digest(b"hello")) and not store.has(digest(b"hellx"))
    assert list(store.tmp_dir.iterdir()) == []


def test_a_short_receive_is_refused(store: BlobStore) -> None:
    pending = store.begin(10)
    pending.write(b"12345")
    with pytest.raises(HashMismatchError, match="5 of 10"):
        pending.commit(now=T0)
    assert store.page(10) == []


def test_partial_files_of_a_crash_are_dropped_on_open(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs", now=T0)
    pending = store.begin(100)
    pending.write(b"x" * 50)  # "crash": never committed nor aborted
    assert len(list(store.tmp_dir.iterdir())) == 1
    reopened = BlobStore(tmp_path / "blobs", now=T0)
    assert list(reopened.tmp_dir.iterdir()) == [] and reopened.page(10) == []


def test_size_limit(store: BlobStore) -> None:
    with pytest.raises(BlobTooLargeError):
        store.begin(1025)
    pending = store.begin()
    with pytest.raises(BlobTooLargeError):
        pending.write(b"x" * 1025)
    pending.abort()


def test_untagged_blob_is_collected_only_after_the_grace_period(store: BlobStore) -> None:
    info, _ = store.add_bytes(b"cache", now=T0)
    assert store.gc(now=T0 + 9, grace_s=10) == []
    assert store.gc(now=T0 + 10, grace_s=10) == [info.hash]
    assert not store.has(info.hash)


def test_tagged_blob_survives_gc_until_its_last_tag_goes(store: BlobStore) -> None:
    info, _ = store.add_bytes(b"keep", tag="user:a", now=T0)
    store.set_tag("user:b", info.hash, now=T0)
    assert store.gc(now=T0 + 1e6, grace_s=10) == []
    store.remove_tags(["user:a"], now=T0 + 100)
    assert store.gc(now=T0 + 1e6, grace_s=10) == []  # user:b still protects it
    store.remove_tags(["user:b"], now=T0 + 200)
    assert store.gc(now=T0 + 205, grace_s=10) == []  # grace counts from losing the last tag
    assert store.gc(now=T0 + 210, grace_s=10) == [info.hash]


def test_repointing_a_tag_releases_the_old_blob(store: BlobStore) -> None:
    old, _ = store.add_bytes(b"v1", tag="user:latest", now=T0)
    new, _ = store.add_bytes(b"v2", now=T0)
    store.set_tag("user:latest", new.hash, now=T0 + 5)
    assert store.tags_of(new.hash) == ["user:latest"] and store.tags_of(old.hash) == []
    assert store.gc(now=T0 + 100, grace_s=10) == [old.hash]


def test_removing_a_missing_tag_is_fine(store: BlobStore) -> None:
    assert store.remove_tags(["user:nope"], now=T0) == 0


def test_tags_and_grace_survive_a_restart(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs", now=T0)
    kept, _ = store.add_bytes(b"kept", tag="user:k", now=T0)
    loose, _ = store.add_bytes(b"loose", now=T0)
    again = BlobStore(tmp_path / "blobs", now=T0 + 1_000)
    assert again.tags_of(kept.hash) == ["user:k"]
    # The untagged blob keeps its original clock: it is due.
    assert again.gc(now=T0 + 10, grace_s=10) == [loose.hash]


def test_corrupt_copy_fails_verification_and_can_be_discarded(store: BlobStore) -> None:
    info, _ = store.add_bytes(b"precious", tag="user:p", now=T0)
    path = store.path_of(info.hash)
    path.write_bytes(b"Precious")
    assert not store.verify(info.hash)
    store.discard(info.hash)
    assert not store.has(info.hash) and store.tags_of(info.hash) == ["user:p"]


def test_listing_is_paginated_in_hash_order(store: BlobStore) -> None:
    hashes = sorted(store.add_bytes(bytes([i]), now=T0)[0].hash for i in range(7))
    first = store.page(3)
    assert [i.hash for i in first] == hashes[:3]
    rest = store.page(10, after=first[-1].hash)
    assert [i.hash for i in rest] == hashes[3:]


def test_hash_validation() -> None:
    assert is_valid_hash("a" * 64)
    for bad in ("A" * 64, "a" * 63, "g" * 64, ""):
        assert not is_valid_hash(bad)
        with pytest.raises(ValueError, match="invalid hash"):
            validate_hash(bad)
