"""Wire schema of the client RPC: models, error taxonomy, limits and codec."""

from aspen.api import messages
from aspen.api.codec import (
    decode_request,
    decode_response,
    encode_error,
    encode_request,
    encode_response,
    raise_for_error,
)
from aspen.api.errors import (
    AspenError,
    ConnectionFailedError,
    ErrorCode,
    InternalError,
    InvalidRequestError,
    NotInitializedError,
    NotLeaderError,
    OutcomeUnknownError,
    RateLimitedError,
    ServiceUnavailableError,
    UnauthorizedError,
    error_from_wire,
)

__all__ = [
    "AspenError",
    "ConnectionFailedError",
    "ErrorCode",
    "InternalError",
    "InvalidRequestError",
    "NotInitializedError",
    "NotLeaderError",
    "OutcomeUnknownError",
    "RateLimitedError",
    "ServiceUnavailableError",
    "UnauthorizedError",
    "decode_request",
    "decode_response",
    "encode_error",
    "encode_request",
    "encode_response",
    "error_from_wire",
    "messages",
    "raise_for_error",
]
