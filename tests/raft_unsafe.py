"""A deliberately unsafe Raft, for tests that prove a safety check catches a violation: the
simulator's and the unit tests' (the core itself has no such hook)."""

from __future__ import annotations

import types

from aspen.raft.core.raft import Raft


def _unsafe_maybe_commit(self: Raft) -> bool:
    """Commit by counting replicas of previous-term entries (unsafe, the Raft paper's Figure 8)."""
    mci = self.prs.committed()
    if mci > self.log.committed:
        self.log.commit_to(mci)
        return True
    return False


def allow_unsafe_commit_previous_term(raft: Raft) -> None:
    """Flip the current-term commit rule on one `Raft`."""
    raft.maybe_commit = types.MethodType(_unsafe_maybe_commit, raft)  # type: ignore[method-assign]
