"""Aspen's write-ahead log: durable Raft entries, hard state and snapshots.

See `aspen.raft.wal.wal` for the on-disk layout and invariants; the most important one is that a
record is acknowledged only after the fsync that covers it returns.
"""

from aspen.raft.wal.errors import CorruptWalError, WalError, WalWarning
from aspen.raft.wal.wal import WAL, RecoveredState

__all__ = ["WAL", "CorruptWalError", "RecoveredState", "WalError", "WalWarning"]
