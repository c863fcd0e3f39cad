"""Blob files written past the page cache hold exactly the bytes given, whatever their sizes and
however they arrive in pieces, and fall back to buffered writes where direct I/O is refused."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from aspen.blob.directio import ALIGN, BUFFER, SequentialWriter

SIZES = [0, 1, ALIGN - 1, ALIGN, ALIGN + 1, BUFFER - 1, BUFFER, BUFFER + 1, 2 * BUFFER + 12_345]


def pieces(data: bytes, step: int) -> list[bytes]:
    return [data[i : i + step] for i in range(0, len(data), step)]


CASES = [(size, step) for size in SIZES for step in (1_000_003, 65_536, 7) if step > 7 or size <= ALIGN + 1]


@pytest.mark.parametrize(("size", "step"), CASES)
def test_the_file_holds_exactly_what_was_written(tmp_path: Path, size: int, step: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "blob.part"
    writer = SequentialWriter(path)
    try:
        for piece in pieces(data, step):
            writer.write(piece)
        writer.sync()
    finally:
        writer.close()
    assert writer.size == size
    assert path.read_bytes() == data


def test_restart_empties_the_file(tmp_path: Path) -> None:
    path = tmp_path / "blob.part"
    writer = SequentialWriter(path)
    writer.write(os.urandom(BUFFER + 99))
    writer.restart()
    writer.write(b"second try")
    writer.finish()
    writer.close()
    assert path.read_bytes() == b"second try"


def test_an_existing_file_is_refused_unless_it_may_be_replaced(tmp_path: Path) -> None:
    path = tmp_path / "blob.part"
    path.write_bytes(b"old and longer")
    with pytest.raises(FileExistsError):
        SequentialWriter(path)
    writer = SequentialWriter(path, exclusive=False)
    writer.write(b"new")
    writer.finish()
    writer.close()
    assert path.read_bytes() == b"new"


def test_buffered_writes_when_direct_io_is_not_wanted(tmp_path: Path) -> None:
    data = os.urandom(BUFFER + 5)
    writer = SequentialWriter(tmp_path / "b", direct=False)
    writer.write(data)
    writer.sync()
    writer.close()
    assert not writer.direct and (tmp_path / "b").read_bytes() == data


def test_a_direct_write_refused_midway_carries_on_buffered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = SequentialWriter(tmp_path / "b")
    if not writer.direct:
        writer.close()
        pytest.skip("no direct I/O on this filesystem")
    real_write = os.write
    refused: list[int] = []

    def refuse_once(fd: int, data: memoryview) -> int:
        if not refused:
            refused.append(len(data))
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", refuse_once)
    data = os.urandom(2 * BUFFER + 3)
    writer.write(data)
    writer.sync()
    writer.close()
    assert refused == [BUFFER] and (tmp_path / "b").read_bytes() == data


def test_a_filesystem_that_refuses_direct_io_gets_buffered_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open

    def no_direct(path: Path, flags: int, mode: int = 0o777) -> int:
        if flags & getattr(os, "O_DIRECT", 0):
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", no_direct)
    writer = SequentialWriter(tmp_path / "b")
    writer.write(b"x" * (ALIGN + 1))
    writer.sync()
    writer.close()
    assert not writer.direct and (tmp_path / "b").read_bytes() == b"x" * (ALIGN + 1)
