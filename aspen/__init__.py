"""Aspen: a distributed, linearizable key-value and blob store with its own Raft."""

__version__ = "0.1.0"
