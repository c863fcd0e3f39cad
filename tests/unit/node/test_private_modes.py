"""Issue 19, item 7: the node's data dir is private whatever the umask -- blob files (and their
temp files), the tags file, the node key, the ticket -- a data dir left with loose modes by an
older version is fixed at start, and a cookie file others can read is refused."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from harness import file_mode, loose_entries

from aspen.blob.store import BlobStore
from aspen.node.main import prepare_data_dir, raise_open_file_limit, read_cookie_file, write_private_file
from aspen.rpc.identity import load_or_create

#: Every test runs under the usual login umask (see conftest's `loose_umask`).
pytestmark = pytest.mark.usefixtures("loose_umask")


def test_blob_files_temp_files_and_tags_are_private(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    store = BlobStore(root, max_size=1 << 20, now=0.0)
    info, _ = store.add_bytes(b"hello", tag="user:t", now=0.0)
    pending = store.begin(3)  # a transfer in progress: its .part file is private too
    pending.write(b"abc")
    try:
        assert any(store.tmp_dir.iterdir())
        assert store.path_of(info.hash).is_file() and (root / "tags.json").is_file()
        assert loose_entries(root) == []
    finally:
        pending.abort()


def test_node_key_and_private_files_are_0600(tmp_path: Path) -> None:
    data = tmp_path / "data"
    load_or_create(data, None)
    write_private_file(data / "cluster-ticket.txt", "aspen...")
    leftover = data / "x.tmp"  # a crash between create and rename, by a version without modes
    leftover.write_text("old")
    leftover.chmod(0o644)
    write_private_file(data / "x", "new")
    assert loose_entries(data) == []


def test_a_data_dir_with_loose_modes_is_made_private_at_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "wal").mkdir(parents=True)
    (data / "wal" / "wal-0.log").write_bytes(b"values")
    (data / "blobs" / "data" / "ab").mkdir(parents=True)
    (data / "blobs" / "data" / "ab" / "ab12").write_bytes(b"blob")
    for path in [data, *data.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o755)
    (data / "link").symlink_to(outside)  # not followed: what it points to is not ours to change
    prepare_data_dir(data)
    assert file_mode(outside) == 0o755
    (data / "link").unlink()
    assert loose_entries(data) == []


def test_a_new_data_dir_is_0700(tmp_path: Path) -> None:
    data = tmp_path / "new" / "data"
    prepare_data_dir(data)
    assert file_mode(data) == 0o700


def test_cookie_file_is_read_and_stripped(tmp_path: Path) -> None:
    path = tmp_path / "cookie"
    path.write_text("  s3cret-cookie\n")
    path.chmod(0o600)
    assert read_cookie_file(path) == "s3cret-cookie"
    path.chmod(0o400)
    assert read_cookie_file(path) == "s3cret-cookie"


@pytest.mark.parametrize("loose", [0o640, 0o604, 0o660])
def test_cookie_file_others_can_access_is_refused(tmp_path: Path, loose: int) -> None:
    path = tmp_path / "cookie"
    path.write_text("s3cret-cookie\n")
    path.chmod(loose)
    with pytest.raises(click.BadParameter, match="chmod 600"):
        read_cookie_file(path)


def test_missing_or_empty_cookie_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(click.BadParameter, match="cannot read"):
        read_cookie_file(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    empty.chmod(0o600)
    with pytest.raises(click.BadParameter, match="empty"):
        read_cookie_file(empty)


def test_open_file_limit_is_raised_to_the_hard_limit() -> None:
    import resource

    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        if before[1] != resource.RLIM_INFINITY and before[1] > 64:
            resource.setrlimit(resource.RLIMIT_NOFILE, (64, before[1]))
        soft, hard = raise_open_file_limit()
        assert (soft, hard) == resource.getrlimit(resource.RLIMIT_NOFILE)
        assert hard == before[1]
        assert soft == hard or hard == resource.RLIM_INFINITY
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, before)
