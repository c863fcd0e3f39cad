"""The coordination-layer framework: typed operations in, one `LayerCommand` in the log, typed
results out.

A layer is a `Layer` value: a name (persistent: it is in the log), its operation types (frozen
slotted dataclasses whose class names are persistent op names), an `apply(txn, op, now_ms)` function
and a `rejected(message)` factory for its failure result. The framework does the rest:

- `Layer.command(op, now_ms)` turns an operation into the `LayerCommand` the node proposes;
- `Layer.__call__(txn, cmd)` (the `LayerApplier` the KV machine calls) decodes and type-checks the
  args back into the op type, runs `op.check()` and then `apply`; a decoding error, a failed check
  or a `Rejected` raised while applying becomes `rejected(message)` and writes nothing; so does any
  other exception (apply is total: no command may raise out of the state machine).

Invariants:
- Op fields are plain values only: int, bool, str, bytes, None, unions of those, and `tuple[T, ...]`.
  They are encoded positionally; never reorder or retype a field of a logged op (add a new op).
- Decoding is strict (exact types; bool is not an int), so a malformed log entry is rejected the
  same way on every replica instead of being coerced differently.
- `check()` is pure and is run both by the proposer (to refuse bad input without a log entry) and
  at apply time (the log may hold entries proposed by an older or buggy node).
- A layer draws no randomness: a field marked `drawn()` (a receipt's nonce) is filled by the node
  when it builds the op from a request, so the value is in the log and every replica sees it.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from aspen.kv.layer import KvTxn, LayerCommand, Rejected
from aspen.kv.validation import check_key

#: Field metadata of an op field the node fills with a fresh random number (see `drawn`).
DRAWN = "aspen.drawn"


def drawn() -> Any:
    """Mark an op field (an int below 2^63) the node draws when it builds the op from a request."""
    return field(metadata={DRAWN: True})


class Op(Protocol):
    """An operation of a layer: a frozen slotted dataclass with a pure validity check."""

    def check(self) -> str | None:
        """The first reason this op is invalid, or None."""
        ...


OpT = TypeVar("OpT", bound=Op)
ResultT = TypeVar("ResultT")


def _matches(value: object, hint: Any) -> bool:
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        return any(_matches(value, h) for h in typing.get_args(hint))
    if origin is tuple:
        args = typing.get_args(hint)
        if type(value) is not tuple:
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return len(args) == len(value) and all(_matches(v, h) for v, h in zip(value, args, strict=True))
    if hint is None or hint is type(None):
        return value is None
    # Exact types: msgpack only produces exact types, and a bool must not pass as an int.
    return type(value) is hint


@functools.cache
def _field_hints(op_type: type) -> tuple[tuple[str, Any], ...]:
    hints = typing.get_type_hints(op_type)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(op_type))


def decode_op(op_type: type[OpT], args: tuple[Any, ...]) -> OpT:
    """Rebuild an op from its logged positional args; raises `ValueError` if they do not fit."""
    fields = _field_hints(op_type)
    if len(args) != len(fields):
        raise ValueError(f"{op_type.__name__} needs {len(fields)} arguments, got {len(args)}")
    for (name, hint), value in zip(fields, args, strict=True):
        if not _matches(value, hint):
            raise ValueError(f"{op_type.__name__}.{name}: unexpected {type(value).__name__}")
    return op_type(*args)


def encode_op(op: Op) -> tuple[Any, ...]:
    return tuple(getattr(op, name) for name, _ in _field_hints(type(op)))


def check_user_key(prefix: str, key: object) -> str | None:
    """Why the caller's `key` cannot name a record stored at `prefix + key`, or None."""
    if type(key) is not str or not key:
        return "key cannot be empty"
    return check_key(prefix + key)


@dataclass(frozen=True, slots=True)
class Blocked:
    """Why a blocking op cannot succeed now, as the applied state shows it: the node waits (without
    proposing) until one of `keys` changes, or until `ready_at_ms` when time alone unblocks it (a
    holder's expiry); `timed_out` is the layer result to answer if the wait runs out first."""

    keys: tuple[str, ...]
    timed_out: Any
    ready_at_ms: int | None = None
    #: Also wake on any key under these (a queue's items).
    prefixes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Wait:
    """How a BLOCKING operation (aspen.api.operation) waits on its layer op: `blocked(reader,
    now_ms, op)` is a pure check of the applied state (None: an attempt may succeed now, or fails
    for a reason waiting cannot cure, so propose it); `check_timeout(timeout_ms)` refuses a wait the
    layer does not allow (an error message, or None). `announce`: the first attempt is proposed
    even when blocked, because it records the waiter in the state (an rwlock's pending writer); an
    op field `wait_ms` is then given the time left of the wait with every attempt."""

    blocked: Callable[[Any, int, Any], Blocked | None]
    check_timeout: Callable[[int], str | None] = lambda timeout_ms: None
    announce: bool = False
    #: For an op that joins something and then waits for others (a barrier): `settle(reader,
    #: now_ms, op, result_of_the_attempt)` is the answer once the state shows it, `Blocked` while
    #: it does not, or None to attempt again (once `blocked` allows). Without it, a successful
    #: attempt is the answer.
    settle: Callable[[Any, int, Any, Any], Any] | None = None


@dataclass(frozen=True, slots=True)
class Layer(Generic[OpT, ResultT]):
    name: str
    ops: tuple[type[OpT], ...]
    apply: Callable[[KvTxn, OpT, int], ResultT]
    rejected: Callable[[str], ResultT]
    #: Key prefixes the layer keeps its records under (each inside a reserved prefix of aspen.kv);
    #: tests write adversarial bytes under every one of them, so a new layer is covered by declaring it.
    prefixes: tuple[str, ...] = ()
    #: Read-only queries by the name a READ operation declares (aspen.api.operation):
    #: `query(reader, now_ms, **request_fields) -> result`, pure like `apply`; the result is any
    #: value whose attributes the declared result model takes.
    queries: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    #: How a BLOCKING operation waits, by the name of the op it proposes (see `Wait`).
    waits: Mapping[str, Wait] = field(default_factory=dict)
    #: Op builders by the name a WRITE declares, for a request whose fields are not one op's (one
    #: enqueue is a batch of one): `build(**request_fields) -> op`, pure. Nested request models
    #: arrive as tuples of their fields, as op fields hold them.
    builders: Mapping[str, Callable[..., OpT]] = field(default_factory=dict)

    def command(self, op: OpT, now_ms: int) -> LayerCommand:
        """The log command for `op`, stamped with the proposer's clock."""
        if type(op) not in self.ops:
            raise TypeError(f"{type(op).__name__} is not an operation of layer {self.name!r}")
        return LayerCommand(self.name, type(op).__name__, now_ms, encode_op(op))

    def __call__(self, txn: KvTxn, cmd: LayerCommand) -> ResultT:
        op_type = next((t for t in self.ops if t.__name__ == cmd.op), None)
        if op_type is None:
            return self.rejected(f"unknown {self.name} operation {cmd.op!r}")
        try:
            op = decode_op(op_type, cmd.args)
        except ValueError as err:
            return self.rejected(f"malformed {self.name} command: {err}")
        error = op.check()
        if error is not None:
            return self.rejected(error)
        try:
            return self.apply(txn, op, cmd.now_ms)
        except Rejected as err:
            # The machine commits whatever the txn holds once we return, so drop the partial writes.
            txn.clear()
            return self.rejected(err.message)
        except Exception as err:
            # A bug, or stored bytes a layer's checks missed: apply must stay total. Records are
            # parsed with bounds (aspen.kv.records), so what reaches here depends on the stored bytes
            # and the op alone, and every replica rejects the same command with the same message.
            txn.clear()
            return self.rejected(f"{self.name} {cmd.op} failed on the stored data ({type(err).__name__})")


__all__ = ["DRAWN", "Blocked", "Layer", "Op", "Wait", "check_user_key", "decode_op", "drawn", "encode_op"]
