"""`LeaseTable`: the leases held by the KV state machine and the keys attached to each.

The table is bookkeeping only; `KvStateMachine` decides when to grant, renew and revoke and keeps the
table in step with the key rows (every row's `lease_id` names a lease of this table).

Invariants:
- `key in keys_of(id)` iff the row of `key` carries `lease_id == id` (maintained by the machine
  through `attach`/`detach`).
- `_by_expiry` holds exactly one `(expires_at_ms, id)` pair per lease, so expired leases are found
  in O(log n + found) without walking every lease.
- `next_id` is greater than every id ever granted, so an id chosen from it never collides, not even
  with a lease that was revoked since (ids are never reused).
- Deterministic: nothing here depends on set or dict iteration order in a way that leaks out; the
  snapshot lists leases by id and the key lists are sorted.
"""

from __future__ import annotations

from typing import Any

from sortedcontainers import SortedList

from aspen.kv.lease_commands import LeaseInfo
from aspen.kv.limits import MAX_LEASE_ID, MIN_LEASE_ID


class LeaseTable:
    __slots__ = ("_by_expiry", "_keys", "_leases", "next_id")

    def __init__(self) -> None:
        #: id -> (ttl_seconds, expires_at_ms)
        self._leases: dict[int, tuple[int, int]] = {}
        #: id -> attached keys
        self._keys: dict[int, set[str]] = {}
        self._by_expiry: Any = SortedList()
        self.next_id = MIN_LEASE_ID

    def __len__(self) -> int:
        return len(self._leases)

    def __contains__(self, lease_id: object) -> bool:
        return lease_id in self._leases

    def is_pristine(self) -> bool:
        """True for a table that never granted a lease (hashes like the pre-lease format)."""
        return not self._leases and self.next_id == MIN_LEASE_ID

    def info(self, lease_id: int) -> LeaseInfo | None:
        lease = self._leases.get(lease_id)
        if lease is None:
            return None
        return LeaseInfo(lease_id, lease[0], lease[1], len(self._keys[lease_id]))

    def all(self) -> list[LeaseInfo]:
        """Every lease, by id."""
        return [self._info(lease_id) for lease_id in sorted(self._leases)]

    def _info(self, lease_id: int) -> LeaseInfo:
        ttl, expires = self._leases[lease_id]
        return LeaseInfo(lease_id, ttl, expires, len(self._keys[lease_id]))

    def keys_of(self, lease_id: int) -> list[str]:
        """The keys attached to `lease_id`, sorted (empty for an unknown lease)."""
        return sorted(self._keys.get(lease_id, ()))

    def expired(self, now_ms: int, limit: int) -> list[int]:
        """Up to `limit` ids of leases expired at `now_ms`, earliest expiry first."""
        found: list[int] = []
        for expires, lease_id in self._by_expiry:
            if expires > now_ms or len(found) >= limit:
                break
            found.append(lease_id)
        return found

    def choose_id(self) -> int | None:
        """The id a grant without an explicit id gets, or None once the id space is used up."""
        return self.next_id if self.next_id <= MAX_LEASE_ID else None

    # --------------------------------------------------------------------------------- mutation --
    def grant(self, lease_id: int, ttl_seconds: int, expires_at_ms: int) -> None:
        assert lease_id not in self._leases, "grant of an existing lease"
        self._leases[lease_id] = (ttl_seconds, expires_at_ms)
        self._keys[lease_id] = set()
        self._by_expiry.add((expires_at_ms, lease_id))
        self.next_id = max(self.next_id, lease_id + 1)

    def renew(self, lease_id: int, expires_at_ms: int) -> None:
        ttl, old = self._leases[lease_id]
        self._by_expiry.remove((old, lease_id))
        self._leases[lease_id] = (ttl, expires_at_ms)
        self._by_expiry.add((expires_at_ms, lease_id))

    def remove(self, lease_id: int) -> set[str]:
        """Forget the lease; returns the keys that were attached (the caller deletes their rows)."""
        _, expires = self._leases.pop(lease_id)
        self._by_expiry.remove((expires, lease_id))
        return self._keys.pop(lease_id)

    def attach(self, key: str, lease_id: int) -> None:
        self._keys[lease_id].add(key)

    def detach(self, key: str, lease_id: int) -> None:
        keys = self._keys.get(lease_id)
        if keys is not None:
            keys.discard(key)

    # -------------------------------------------------------------------------------- snapshots --
    def to_columns(self) -> list[int]:
        """`[next_id, id, ttl, expires, id, ttl, expires, ...]` by id (attached keys are rebuilt
        from the rows on restore, so they are not stored twice)."""
        flat = [self.next_id]
        for lease_id in sorted(self._leases):
            flat += (lease_id, *self._leases[lease_id])
        return flat

    @classmethod
    def from_columns(cls, flat: object) -> LeaseTable:
        """Inverse of `to_columns`; raises `ValueError` on malformed input."""
        if type(flat) is not list or not flat or len(flat) % 3 != 1:
            raise ValueError("corrupt KV snapshot: bad lease table")
        if any(type(x) is not int for x in flat):
            raise ValueError("corrupt KV snapshot: bad lease field type")
        table = cls()
        for i in range(1, len(flat), 3):
            lease_id, ttl, expires = flat[i], flat[i + 1], flat[i + 2]
            if not MIN_LEASE_ID <= lease_id <= MAX_LEASE_ID or ttl <= 0 or lease_id in table:
                raise ValueError("corrupt KV snapshot: bad lease")
            table.grant(lease_id, ttl, expires)
        if flat[0] < table.next_id:
            raise ValueError("corrupt KV snapshot: lease id counter behind a granted id")
        table.next_id = flat[0]
        return table


__all__ = ["LeaseTable"]
