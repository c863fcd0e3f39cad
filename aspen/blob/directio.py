"""Writing a large file sequentially past the page cache (`O_DIRECT`), with a buffered fallback.

Blob bytes are written once, fsynced and then rarely read soon: caching them costs a copy into
fresh page-cache memory per byte (on a VM, often the most expensive step of a transfer: first-touch
pages are much slower to write than direct writes from one reused buffer; docs/performance.md has
the figures), and it pushes the KV store's and the WAL's pages out of memory. So incoming bytes are
gathered into one aligned buffer and written from it by DMA.

Invariants: every direct write starts at an offset that is a multiple of `ALIGN` and is a whole
number of `ALIGN` blocks long, from the page-aligned buffer; the last, partial block is written
padded with zeros and the file is then truncated to its true size. Where the OS or the filesystem
refuses `O_DIRECT` (tmpfs, macOS, an odd device), the same calls do plain buffered writes.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
from pathlib import Path

__all__ = ["ALIGN", "SequentialWriter"]

#: Direct I/O alignment: 4 KiB covers the logical block size of every common disk and filesystem.
ALIGN = 4096
#: Bytes gathered before one direct write: large enough for the disk's full speed.
BUFFER = 4 * 1024 * 1024
_O_DIRECT = getattr(os, "O_DIRECT", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class SequentialWriter:
    """An append-only file opened for writing; `sync` makes everything written durable."""

    def __init__(self, path: Path, *, direct: bool = True, exclusive: bool = True) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_CLOEXEC | (os.O_EXCL if exclusive else 0)
        self.size = 0
        self._buf: mmap.mmap | None = None
        self._fill = 0
        fd = -1
        if direct and _O_DIRECT:
            try:
                fd = os.open(path, flags | _O_DIRECT, 0o600)
            except OSError as err:
                if err.errno != errno.EINVAL:
                    raise
                fd = -1  # the filesystem does not do direct I/O
            else:
                try:
                    self._buf = mmap.mmap(-1, BUFFER)  # anonymous mappings are page-aligned
                except BaseException:
                    os.close(fd)
                    raise
        self._fd = fd if fd >= 0 else os.open(path, flags, 0o600)
        if not exclusive:
            os.fchmod(self._fd, 0o600)  # an existing file keeps the mode it was created with

    @property
    def direct(self) -> bool:
        return self._buf is not None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        self.size += len(view)
        if self._buf is None:
            _write_all(self._fd, view)
            return
        # Bounded by len(data): each turn moves at least one byte into the buffer.
        while view:
            n = min(len(view), BUFFER - self._fill)
            self._buf[self._fill : self._fill + n] = view[:n]
            self._fill += n
            view = view[n:]
            if self._fill == BUFFER:
                self._flush(BUFFER)
                self._fill = 0

    def _flush(self, nbytes: int) -> None:
        assert self._buf is not None
        with memoryview(self._buf) as whole, whole[:nbytes] as out:
            try:
                _write_all(self._fd, out)
            except OSError as err:
                if err.errno != errno.EINVAL:
                    raise
                # Refused at write time (some filesystems accept the flag at open only): carry on
                # with buffered writes of the same bytes; the file offset is still block-aligned.
                self._go_buffered()
                _write_all(self._fd, out)

    def _go_buffered(self) -> None:
        fcntl.fcntl(self._fd, fcntl.F_SETFL, fcntl.fcntl(self._fd, fcntl.F_GETFL) & ~_O_DIRECT)

    def finish(self) -> None:
        """Write out what is gathered; the file then holds every byte written. The last write."""
        if self._buf is not None and self._fill:
            padded = -(-self._fill // ALIGN) * ALIGN
            self._buf[self._fill : padded] = bytes(padded - self._fill)
            self._flush(padded)
            self._fill = 0
            os.ftruncate(self._fd, self.size)

    def sync(self) -> None:
        """`finish`, then fsync: on return every byte written is on disk."""
        self.finish()
        os.fsync(self._fd)

    def restart(self) -> None:
        """Forget everything written: the file is empty again."""
        os.ftruncate(self._fd, 0)
        os.lseek(self._fd, 0, os.SEEK_SET)
        self.size = 0
        self._fill = 0

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._buf is not None:
            self._buf.close()
            self._buf = None


def _write_all(fd: int, view: memoryview) -> None:
    # Bounded by len(view): each turn writes at least one byte or raises.
    while view:
        view = view[os.write(fd, view) :]
