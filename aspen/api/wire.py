"""Base pieces of every wire model module (`aspen.api.messages` and the modules it unites: blobs,
leases, coordination, locks, semaphore, queue, barrier, registry): the one strict model
configuration and the integer ranges. Its own module so that none of them imports another."""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from aspen.api.errors import InvalidRequestError

# u64 on the wire; Python ints are unbounded, so bound them here rather than deep inside.
U64 = Annotated[int, Field(ge=0, le=2**64 - 1)]
U32 = Annotated[int, Field(ge=0, le=2**32 - 1)]
I64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
NodeIdField = Annotated[int, Field(ge=1, le=2**64 - 1)]

#: The longest a node waits inside one blocking request (semaphore acquire, dequeue-wait, barrier
#: enter/leave). It stays well below the follower→leader forwarding timeout and the client's
#: per-request budget; a longer wait is the client re-issuing the request with the time left.
MAX_WAIT_PER_REQUEST_MS = 15_000


def int_range(low: int, high: int) -> AfterValidator:
    """An int bound whose error names the whole allowed range ("must be between 1 and 10000"),
    where pydantic's own `ge`/`le` messages name only the side that was crossed."""

    def check(value: int) -> int:
        if not low <= value <= high:
            raise PydanticCustomError(
                "int_range",
                "must be between {low} and {high} (got {got})",
                {"low": low, "high": high, "got": value},
            )
        return value

    return AfterValidator(check)


def at_most(limit: int, what: str) -> AfterValidator:
    """A length bound on a list, with the documented limit in the error."""

    def check(value: list[Any]) -> list[Any]:
        if len(value) > limit:
            raise PydanticCustomError(
                "too_many",
                "at most {limit} {what} (got {got})",
                {"limit": limit, "what": what, "got": len(value)},
            )
        return value

    return AfterValidator(check)


def describe(err: ValidationError, model: str) -> str:
    """One line for the first error: where (`Model.field`) and what."""
    first = err.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"invalid {model}{'.' + where if where else ''}: {first['msg']}"


#: A declared operation's outcome, for code to branch on (`error` is for people): `ok`; `failed`
#: (it ran and did not succeed: held, limited, a mismatch); `rejected` (invalid input: nothing was
#: proposed); `timed_out` (a blocking request's wait ran out: the client re-issues it while time is
#: left). Set by the node's dispatch (aspen.node.dispatch).
Status = Literal["ok", "failed", "rejected", "timed_out"]
OK: Final = "ok"
FAILED: Final = "failed"
REJECTED: Final = "rejected"
TIMED_OUT: Final = "timed_out"


class WireModel(BaseModel):
    """Strict (no coercion), closed (unknown fields refused) and immutable.

    Building one from bad arguments (the client, before anything is sent) raises
    `InvalidRequestError`, an `AspenError`, instead of pydantic's `ValidationError`: one conversion
    here covers every request a client method builds. Frames from the wire are validated with
    `model_validate` / the request adapter, which do not pass through `__init__`; the codec maps
    those errors itself."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, defer_build=True)

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise InvalidRequestError(describe(err, type(self).__name__)) from None

    # Tells pydantic this is still its own `__init__`: otherwise it would route every validation,
    # also `model_validate` of each nested model in a 10,000-entry scan page, through this Python
    # frame (≈ 50 % slower). Direct construction still comes here; a unit test checks both.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]


class Result(WireModel):
    """The base of the declared operations' results: their `status`."""

    status: Status | None = None


__all__ = [
    "FAILED",
    "I64",
    "MAX_WAIT_PER_REQUEST_MS",
    "OK",
    "REJECTED",
    "TIMED_OUT",
    "U32",
    "U64",
    "NodeIdField",
    "Result",
    "Status",
    "WireModel",
    "at_most",
    "describe",
    "int_range",
]
