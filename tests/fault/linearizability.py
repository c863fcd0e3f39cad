"""A linearizability checker for histories of single-key registers (read / write / cas).

The search is Wing & Gong's, with Lowe's memoisation: depth-first over "which operations are already
linearized" (a bitmask) and the register value they leave behind; a (bitmask, value) pair seen once
never needs exploring again, which turns the exponential search into one that is fast on the
histories real clusters produce (a handful of operations concurrent at any moment).

Keys are independent registers (linearizability is compositional), so a history is split per key and
each key is checked on its own: smaller bitmasks, far fewer states.

What the checker assumes about each operation:

- `ok`: it took effect exactly once, at some instant between invoke and complete, and returned
  `output`.
- `unknown` write/cas (a timeout, a connection lost after sending): it may have taken effect at any
  instant after invoke, or never. Its completion time is infinite, and the search may leave it out.
- `fail` write/cas: it definitely did not take effect (the client knows nothing was sent, or the node
  refused it before ordering it), so it is dropped. A CAS whose *condition* failed is not `fail`: it
  completed (`ok`) with output "not swapped".
- reads that failed or timed out change nothing and say nothing: dropped.
"""

from __future__ import annotations

import enum
import math
from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Register values: bytes in the workload, anything hashable in tests. None is "key absent".
Value = Hashable


class Kind(enum.StrEnum):
    READ = "read"
    WRITE = "write"
    CAS = "cas"


class Status(enum.StrEnum):
    OK = "ok"
    FAIL = "fail"
    UNKNOWN = "unknown"


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


#: A failed CAS whose actual value was not recorded (the checker then only knows "value != expected").
MISSING: Any = _Missing()


@dataclass(frozen=True)
class CasResult:
    swapped: bool
    #: When not swapped: the value the node saw instead (None = absent), or MISSING if not recorded.
    actual: Value = MISSING


@dataclass
class Op:
    """One client operation. `value` is the written value (write) or `(expected, new)` (cas);
    `output` is the value read (read) or a `CasResult` (cas)."""

    process: int
    kind: Kind
    key: str
    value: Any
    invoke: float
    complete: float | None = None
    status: Status = Status.OK
    output: Any = None
    index: int = field(default=-1, compare=False)

    def describe(self) -> str:
        if self.kind == Kind.READ:
            body = f"read() -> {self.output!r}"
        elif self.kind == Kind.WRITE:
            body = f"write({self.value!r})"
        else:
            exp, new = self.value
            body = f"cas({exp!r}, {new!r})" + (f" -> {self.output}" if self.status == Status.OK else "")
        end = "∞" if self.complete is None else f"{self.complete:.6f}"
        return f"[p{self.process} {self.key} {body} {self.status} {self.invoke:.6f}..{end}]"


@dataclass
class KeyResult:
    key: str
    ok: bool
    ops: int
    states_explored: int
    #: On failure: the deepest set of operations the search managed to linearize, and the
    #: operations it could not place after them (what to look at first).
    message: str = ""


@dataclass
class CheckResult:
    ok: bool
    ops_checked: int
    keys: list[KeyResult]
    inconclusive: bool = False

    @property
    def failures(self) -> list[KeyResult]:
        return [k for k in self.keys if not k.ok]

    def summary(self) -> str:
        if self.ok:
            return f"linearizable ({self.ops_checked} ops, {len(self.keys)} keys)"
        return "\n".join(f"key {k.key!r}: {k.message}" for k in self.failures)


class StateBudgetExceeded(Exception):
    """The search explored more states than allowed: no verdict (never reported as a pass)."""


def _observed_values(ops: Iterable[Op]) -> set[Value]:
    seen: set[Value] = set()
    for op in ops:
        if op.status != Status.OK:
            continue
        if op.kind == Kind.READ:
            seen.add(op.output)
        elif op.kind == Kind.CAS:
            res: CasResult = op.output
            if res.swapped:
                seen.add(op.value[0])
            elif res.actual is not MISSING:
                seen.add(res.actual)
    return seen


def prepare(ops: Sequence[Op]) -> list[Op]:
    """The operations of one key the search must consider (see the module docstring).

    One reduction keeps unknown operations from blowing up the search: an unknown write (or CAS)
    whose value nobody ever observed can be removed. If a linearization applies it, the value it
    installs is, until the next write, seen by no read and matched by no CAS (that would be an
    observation), so the same order without it is also legal; and "never applied" is always
    allowed for an unknown operation. Values must be unique per write for this to hold, which the
    workload guarantees.
    """
    observed = _observed_values(ops)
    # A CAS that failed without saying what it saw constrains the value without observing it, so
    # removing a write could make it illegal: then keep every unknown operation.
    blind_cas = any(
        o.kind == Kind.CAS and o.status == Status.OK and not o.output.swapped and o.output.actual is MISSING
        for o in ops
    )
    kept: list[Op] = []
    for op in ops:
        if op.status == Status.FAIL:
            continue
        if op.kind == Kind.READ and op.status != Status.OK:
            continue
        if op.status == Status.UNKNOWN and not blind_cas:
            written = op.value if op.kind == Kind.WRITE else op.value[1]
            if written not in observed:
                continue
        kept.append(op)
    return kept


def _step(op: Op, state: Value) -> tuple[bool, Value]:
    """Apply `op` to the register: (is it legal here, next state)."""
    if op.kind == Kind.READ:
        return op.output == state, state
    if op.kind == Kind.WRITE:
        return True, op.value
    expected, new = op.value
    if op.status == Status.UNKNOWN:
        # If it took effect at all, its condition held then; "took effect and failed" is
        # indistinguishable from "never took effect", which the search covers by leaving it out.
        return (state == expected, new)
    res: CasResult = op.output
    if res.swapped:
        return state == expected, new
    if state == expected:
        return False, state
    return (res.actual is MISSING or res.actual == state), state


def check_register(
    key: str, ops: Sequence[Op], *, initial: Value = None, max_states: int = 5_000_000
) -> KeyResult:
    """Is this single-register history linearizable? Raises StateBudgetExceeded past `max_states`."""
    todo = sorted(prepare(ops), key=lambda o: o.invoke)
    n = len(todo)
    if n == 0:
        return KeyResult(key, True, 0, 0)
    invoke = [o.invoke for o in todo]
    complete = [math.inf if o.status == Status.UNKNOWN or o.complete is None else o.complete for o in todo]
    required = [o.status == Status.OK for o in todo]
    all_required = 0
    for i in range(n):
        if required[i]:
            all_required |= 1 << i
    # Required ops by completion time: the earliest unlinearized one bounds what may go next.
    by_complete = sorted((i for i in range(n) if required[i]), key=lambda i: complete[i])

    seen: set[tuple[int, Value]] = set()
    best_mask, best_depth = 0, -1
    # Explicit stack (no recursion limit): each frame is (mask, state, depth).
    stack: list[tuple[int, Value, int]] = [(0, initial, 0)]
    explored = 0
    while stack:
        mask, state, depth = stack.pop()
        if (mask, state) in seen:
            continue
        seen.add((mask, state))
        explored += 1
        if explored > max_states:
            raise StateBudgetExceeded(f"key {key!r}: more than {max_states} states")
        if mask & all_required == all_required:
            return KeyResult(key, True, n, explored)
        if depth > best_depth:
            best_mask, best_depth = mask, depth
        horizon = math.inf
        for i in by_complete:
            if not mask >> i & 1:
                horizon = complete[i]
                break
        # Every op invoked before the earliest pending response may be next (real-time order:
        # an op that completed before another was invoked must be linearized before it).
        nexts: list[tuple[int, Value, int]] = []
        first_open = ((mask + 1) & ~mask).bit_length() - 1  # lowest op not yet linearized
        for i in range(first_open, n):
            if invoke[i] > horizon:
                break
            if mask >> i & 1:
                continue
            legal, nxt = _step(todo[i], state)
            if legal and (mask | 1 << i, nxt) not in seen:
                nexts.append((mask | 1 << i, nxt, depth + 1))
        stack.extend(reversed(nexts))  # earliest-invoked candidate is explored first
    done = [todo[i] for i in range(n) if best_mask >> i & 1]
    stuck = [todo[i] for i in range(n) if not best_mask >> i & 1 and required[i]]
    stuck.sort(key=lambda o: o.invoke)
    message = (
        f"not linearizable: at best {len(done)} of {n} ops linearized; "
        f"could not place next: {'; '.join(o.describe() for o in stuck[:6])}"
    )
    return KeyResult(key, False, n, explored, message)


def check(ops: Sequence[Op], *, initial: Value = None, max_states: int = 5_000_000) -> CheckResult:
    """Check a multi-key history: each key is an independent register starting at `initial`."""
    per_key: dict[str, list[Op]] = defaultdict(list)
    for op in ops:
        per_key[op.key].append(op)
    results: list[KeyResult] = []
    inconclusive = False
    for key in sorted(per_key):
        try:
            results.append(check_register(key, per_key[key], initial=initial, max_states=max_states))
        except StateBudgetExceeded as exc:
            inconclusive = True
            results.append(KeyResult(key, False, len(per_key[key]), max_states, f"inconclusive: {exc}"))
    return CheckResult(
        ok=all(r.ok for r in results),
        ops_checked=sum(r.ops for r in results),
        keys=results,
        inconclusive=inconclusive,
    )
