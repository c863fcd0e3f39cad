"""Exceptions and warnings raised by the write-ahead log."""

from __future__ import annotations


class WalError(Exception):
    """The WAL cannot do what was asked: misuse (a gap in the indices, concurrent use, use after
    close) or an I/O failure. After an I/O failure the WAL refuses all further writes, because after
    a failed write or fsync the kernel's page cache no longer tells us what is on disk; the process
    must reopen the WAL (normally: restart) to find out."""


class CorruptWalError(WalError):
    """The on-disk log is damaged in a way that may have lost acknowledged records (a bad record in
    a non-tail segment, or in the middle of the tail segment with later batches after it, a missing
    segment, a gap in the indices). Opening refuses rather than silently serving a shorter log."""


class WalWarning(UserWarning):
    """Something was repaired or ignored during recovery (a corrupt snapshot file skipped, a hard
    state commit clamped); the WAL still opened with no acknowledged data lost."""
