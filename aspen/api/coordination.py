"""The counter and sequence operations, declared once each (aspen.api.operation), and the import
of every other family's declarations, so that loading the wire schema declares them all.

Same rules as `messages`: tagged enum on `type`, the original's variant and field names, strict
validation once at the edge. A declaration's kind says whether followers forward it and whether a
client may retry it elsewhere.
"""

from __future__ import annotations

from typing import Annotated, Literal

from aspen.api import barrier as _barrier  # noqa: F401  (declares its operations)
from aspen.api import locks as _locks  # noqa: F401  (declares its operations)
from aspen.api import queue as _queue  # noqa: F401  (declares its operations)
from aspen.api import registry as _registry  # noqa: F401  (declares its operations)
from aspen.api import semaphore as _semaphore  # noqa: F401  (declares its operations)
from aspen.api.operation import Arg, Family, Opt
from aspen.api.wire import I64, U64, Result
from aspen.api.wire import WireModel as _Model


# ---------------------------------------------------------------------------------------- counter --
class CounterResult(Result):
    type: Literal["CounterResult"] = "CounterResult"
    is_success: bool
    value: U64 | None = None
    error: str | None = None


class SignedCounterResult(Result):
    type: Literal["SignedCounterResult"] = "SignedCounterResult"
    is_success: bool
    value: I64 | None = None
    error: str | None = None


_KEY = Annotated[str, Arg()]
counter = Family(
    "counter", "Atomic counters: unsigned (saturating at 0) and signed.", "counter", CounterResult
)


@counter.read("get")
class CounterGet(_Model):
    """Print the value of counter KEY (0 if it was never written)."""

    type: Literal["CounterGet"] = "CounterGet"
    key: _KEY


@counter.write("incr", op="CounterAdd", fixed={"amount": 1})
class CounterIncrement(_Model):
    """Add 1 to KEY; print the new value."""

    type: Literal["CounterIncrement"] = "CounterIncrement"
    key: _KEY


@counter.write("decr", op="CounterSub", fixed={"amount": 1})
class CounterDecrement(_Model):
    """Subtract 1 from KEY (stays at 0); print the new value."""

    type: Literal["CounterDecrement"] = "CounterDecrement"
    key: _KEY


@counter.write("add")
class CounterAdd(_Model):
    """Add AMOUNT to KEY (saturating at 2^64-1); print the new value."""

    type: Literal["CounterAdd"] = "CounterAdd"
    key: _KEY
    amount: Annotated[U64, Arg()]


@counter.write("sub", op="CounterSub")
class CounterSubtract(_Model):
    """Subtract AMOUNT from KEY (saturating at 0); print the new value."""

    type: Literal["CounterSubtract"] = "CounterSubtract"
    key: _KEY
    amount: Annotated[U64, Arg()]


@counter.write("set")
class CounterSet(_Model):
    """Set KEY to VALUE."""

    type: Literal["CounterSet"] = "CounterSet"
    key: _KEY
    value: Annotated[U64, Arg()]


@counter.write("cas", op="CounterCas")
class CounterCompareAndSet(_Model):
    """Compare-and-set KEY; on a mismatch print the error (JSON `value` = actual value) and exit 1."""

    type: Literal["CounterCompareAndSet"] = "CounterCompareAndSet"
    key: _KEY
    expected: Annotated[U64, Opt(help="Value KEY must hold (0 if never written).")]
    new_value: Annotated[U64, Opt(help="Value to set.")]


@counter.read("signed-get", result=SignedCounterResult, client="signed_counter_get")
class SignedCounterGet(_Model):
    """Print the value of KEY read as a signed counter."""

    type: Literal["SignedCounterGet"] = "SignedCounterGet"
    key: _KEY


# ignore_unknown_options: a negative AMOUNT ("-5") is an argument, not an unknown option.
@counter.write(
    "signed-add",
    result=SignedCounterResult,
    client="signed_counter_add",
    settings={"ignore_unknown_options": True},
)
class SignedCounterAdd(_Model):
    """Add AMOUNT (may be negative) to KEY as a signed counter."""

    type: Literal["SignedCounterAdd"] = "SignedCounterAdd"
    key: _KEY
    amount: Annotated[I64, Arg()]


# --------------------------------------------------------------------------------------- sequence --
class SequenceResult(Result):
    type: Literal["SequenceResult"] = "SequenceResult"
    is_success: bool
    value: U64 | None = None
    error: str | None = None


sequence = Family("sequence", "Unique, strictly increasing IDs: 1, 2, 3, …", "sequence", SequenceResult)


@sequence.write("next", op="SequenceReserve", fixed={"count": 1}, printer="counter")
class SequenceNext(_Model):
    """Take and print the next ID of sequence KEY."""

    type: Literal["SequenceNext"] = "SequenceNext"
    key: _KEY


@sequence.write("reserve", printer="counter")
class SequenceReserve(_Model):
    """Reserve COUNT consecutive IDs; print the first (the range is first .. first+COUNT-1)."""

    type: Literal["SequenceReserve"] = "SequenceReserve"
    key: _KEY
    count: Annotated[U64, Arg()]


@sequence.read("current", printer="counter")
class SequenceCurrent(_Model):
    """Print the ID the next `next` would return, without taking it."""

    type: Literal["SequenceCurrent"] = "SequenceCurrent"
    key: _KEY


# ------------------------------------------------------------------------------------------ unions --
