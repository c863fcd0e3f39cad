"""`KvEntry`: one key's stored value and metadata, as seen from outside the state machine.

Invariants (maintained by `KvStateMachine`):
- `version` is 1 when the key is created and grows by 1 on each modification; deleting the key
  forgets it, so a re-created key starts again at 1.
- `create_revision` is the log index of the command that created the key (this incarnation);
  `mod_revision` the log index of its latest modification; `create_revision <= mod_revision`.
- `lease_id` is the lease the key is attached to, or None.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class KvEntry:
    value: bytes
    version: int
    create_revision: int
    mod_revision: int
    lease_id: int | None = None


__all__ = ["KvEntry"]
