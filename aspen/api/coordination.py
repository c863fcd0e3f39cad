"""Wire schema of the coordination requests and responses (reference §4.3, §7), joined into the
`Request`/`Response` unions of `aspen.api.messages`.

Same rules as `messages`: tagged enum on `type`, reference variant and field names, strict
validation once at the edge. Each layer adds its models here, plus its names to `WRITE_REQUESTS`
(followers forward them to the leader, clients never retry them blindly) or `READ_REQUESTS`
(served after a ReadIndex barrier on any node, safe to retry).
"""

from __future__ import annotations

from typing import Literal

from aspen.api import barrier as bar
from aspen.api import queue as que
from aspen.api import registry as reg
from aspen.api import semaphore as sem
from aspen.api.locks import LOCK_READ_REQUESTS, LOCK_WRITE_REQUESTS, LockRequest, LockResponse
from aspen.api.wire import I64, U64
from aspen.api.wire import WireModel as _Model


# ---------------------------------------------------------------------------------------- counter --
class CounterGet(_Model):
    type: Literal["CounterGet"] = "CounterGet"
    key: str


class CounterIncrement(_Model):
    type: Literal["CounterIncrement"] = "CounterIncrement"
    key: str


class CounterDecrement(_Model):
    type: Literal["CounterDecrement"] = "CounterDecrement"
    key: str


class CounterAdd(_Model):
    type: Literal["CounterAdd"] = "CounterAdd"
    key: str
    amount: U64


class CounterSubtract(_Model):
    type: Literal["CounterSubtract"] = "CounterSubtract"
    key: str
    amount: U64


class CounterSet(_Model):
    type: Literal["CounterSet"] = "CounterSet"
    key: str
    value: U64


class CounterCompareAndSet(_Model):
    type: Literal["CounterCompareAndSet"] = "CounterCompareAndSet"
    key: str
    expected: U64
    new_value: U64


class SignedCounterGet(_Model):
    type: Literal["SignedCounterGet"] = "SignedCounterGet"
    key: str


class SignedCounterAdd(_Model):
    type: Literal["SignedCounterAdd"] = "SignedCounterAdd"
    key: str
    amount: I64


class CounterResult(_Model):
    type: Literal["CounterResult"] = "CounterResult"
    is_success: bool
    value: U64 | None = None
    error: str | None = None


class SignedCounterResult(_Model):
    type: Literal["SignedCounterResult"] = "SignedCounterResult"
    is_success: bool
    value: I64 | None = None
    error: str | None = None


# --------------------------------------------------------------------------------------- sequence --
class SequenceNext(_Model):
    type: Literal["SequenceNext"] = "SequenceNext"
    key: str


class SequenceReserve(_Model):
    type: Literal["SequenceReserve"] = "SequenceReserve"
    key: str
    count: U64


class SequenceCurrent(_Model):
    type: Literal["SequenceCurrent"] = "SequenceCurrent"
    key: str


class SequenceResult(_Model):
    type: Literal["SequenceResult"] = "SequenceResult"
    is_success: bool
    value: U64 | None = None
    error: str | None = None


# ------------------------------------------------------------------------------------------ unions --
CoordinationRequest = (
    CounterGet
    | CounterIncrement
    | CounterDecrement
    | CounterAdd
    | CounterSubtract
    | CounterSet
    | CounterCompareAndSet
    | SignedCounterGet
    | SignedCounterAdd
    | SequenceNext
    | SequenceReserve
    | SequenceCurrent
    | sem.SemaphoreAcquire
    | sem.SemaphoreTryAcquire
    | sem.SemaphoreRelease
    | sem.SemaphoreStatus
    | que.QueueRequest
    | bar.BarrierRequest
    | reg.ServiceRequest
    | LockRequest
)

CoordinationResponse = (
    # One line per response type: several layers add theirs here.
    CounterResult
    | SignedCounterResult
    | SequenceResult
    | sem.SemaphoreResult
    | que.QueueResponse
    | bar.BarrierResult
    | reg.ServiceResponse
    | LockResponse
)

WRITE_REQUESTS = frozenset(
    {
        "CounterIncrement",
        "CounterDecrement",
        "CounterAdd",
        "CounterSubtract",
        "CounterSet",
        "CounterCompareAndSet",
        "SignedCounterAdd",
        "SequenceNext",
        "SequenceReserve",
        *LOCK_WRITE_REQUESTS,
        *sem.SEMAPHORE_WRITES,
        *que.QUEUE_WRITES,
        *bar.BARRIER_WRITES,
        *reg.SERVICE_WRITES,
    }
)
READ_REQUESTS = frozenset(
    {
        "CounterGet",
        "SignedCounterGet",
        "SequenceCurrent",
        *LOCK_READ_REQUESTS,
        *sem.SEMAPHORE_READS,
        *que.QUEUE_READS,
        *bar.BARRIER_READS,
        *reg.SERVICE_READS,
    }
)

__all__ = [
    "READ_REQUESTS",
    "WRITE_REQUESTS",
    "CoordinationRequest",
    "CoordinationResponse",
    "CounterAdd",
    "CounterCompareAndSet",
    "CounterDecrement",
    "CounterGet",
    "CounterIncrement",
    "CounterResult",
    "CounterSet",
    "CounterSubtract",
    "SequenceCurrent",
    "SequenceNext",
    "SequenceReserve",
    "SequenceResult",
    "SignedCounterAdd",
    "SignedCounterGet",
    "SignedCounterResult",
]
