"""The one error taxonomy of Aspen.

Wire errors travel as `Error{code, message, leader_id?}`. The node raises the exceptions below and a
single boundary (`aspen.node.service`) turns them into wire frames; the client turns wire frames back
into the same exceptions (`error_from_wire`); the CLI maps exceptions to exit codes in one table.

Domain failures (a CAS conflict, an oversized key) are *not* errors here: they are results with
`is_success=false` and an `error` string, as the reference specifies.
"""

from __future__ import annotations

import enum


class ErrorCode(enum.StrEnum):
    NOT_LEADER = "NOT_LEADER"
    NOT_INITIALIZED = "NOT_INITIALIZED"
    UNAUTHORIZED = "UNAUTHORIZED"
    RATE_LIMITED = "RATE_LIMITED"
    INVALID_REQUEST = "INVALID_REQUEST"
    #: The outcome is unknown: the operation may or may not have taken effect.
    TIMEOUT = "TIMEOUT"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"


class AspenError(Exception):
    """Base of every error a caller of Aspen can see."""

    code: ErrorCode = ErrorCode.INTERNAL_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.code.value}: {self.message}"


class NotLeaderError(AspenError):
    """No leader is known to the node that answered; try another node."""

    code = ErrorCode.NOT_LEADER

    def __init__(self, message: str = "NOT_LEADER", leader_id: int | None = None) -> None:
        super().__init__(message)
        self.leader_id = leader_id


class NotInitializedError(AspenError):
    code = ErrorCode.NOT_INITIALIZED

    def __init__(self, message: str = "cluster not initialized - call InitCluster first") -> None:
        super().__init__(message)


class UnauthorizedError(AspenError):
    code = ErrorCode.UNAUTHORIZED


class RateLimitedError(AspenError):
    code = ErrorCode.RATE_LIMITED


class InvalidRequestError(AspenError):
    code = ErrorCode.INVALID_REQUEST


class OutcomeUnknownError(AspenError):
    """A timeout: the request may or may not have been applied. Never report this as "failed"."""

    code = ErrorCode.TIMEOUT


class InternalError(AspenError):
    code = ErrorCode.INTERNAL_ERROR


class ServiceUnavailableError(AspenError):
    """The node cannot serve now (shutting down, overloaded); another node may."""

    code = ErrorCode.SERVICE_UNAVAILABLE


class ConnectionFailedError(AspenError):
    """Client side: no node of the ticket could be reached (or none answered in time)."""

    code = ErrorCode.SERVICE_UNAVAILABLE


_BY_CODE: dict[str, type[AspenError]] = {
    ErrorCode.NOT_INITIALIZED: NotInitializedError,
    ErrorCode.UNAUTHORIZED: UnauthorizedError,
    ErrorCode.RATE_LIMITED: RateLimitedError,
    ErrorCode.INVALID_REQUEST: InvalidRequestError,
    ErrorCode.TIMEOUT: OutcomeUnknownError,
    ErrorCode.INTERNAL_ERROR: InternalError,
    ErrorCode.SERVICE_UNAVAILABLE: ServiceUnavailableError,
}


def error_from_wire(code: str, message: str, leader_id: int | None = None) -> AspenError:
    """The exception for a wire `Error` frame; unknown codes become `InternalError` keeping the code."""
    if code == ErrorCode.NOT_LEADER:
        return NotLeaderError(message, leader_id)
    cls = _BY_CODE.get(code)
    if cls is None:
        return InternalError(f"{code}: {message}")
    return cls(message)
