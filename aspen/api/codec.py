"""Bytes <-> wire models. The only place frames are (de)serialised.

Request body: msgpack map `{"v": PROTOCOL_VERSION, "req": {...}}`, plus optional `"hops"`
(forwarding count) and `"rid"` (a request id, ≤ 64 printable ASCII characters, chosen by the client
and logged by the node, so one CLI invocation can be found in every node's log). The proof of the
cookie is not in it: the transport puts it in a fixed header ahead of the body and checks it before
the body is even buffered (aspen.rpc.auth), so nothing here runs for an unauthenticated request.
Response frame: the response map itself. Decoding a request never raises anything but `AspenError`
subclasses, so the node can answer every malformed frame with a precise `Error`.
"""

from __future__ import annotations

from typing import Any

import msgpack
from pydantic import ValidationError

from aspen.api.errors import AspenError, InvalidRequestError, error_from_wire
from aspen.api.limits import MAX_MESSAGE_BYTES, PROTOCOL_VERSION
from aspen.api.messages import REQUEST_ADAPTER, RESPONSE_TYPES, Error, Request, Response
from aspen.api.operation import OPERATIONS, result_type

#: A follower forwards a request to the leader at most this many times (a leader that lost its
#: role meanwhile answers NOT_LEADER instead of forwarding again).
MAX_PROXY_HOPS = 1
MAX_RID_CHARS = 64
#: Decoding limits, so even an authenticated client's frame costs bounded work: no legitimate
#: request has a container of more than a few hundred items (batches hold ≤ 100 keys) or a string
#: longer than a key or a JSON address; values and blobs are `bin`, bounded by the frame size.
#: msgpack itself refuses nesting deeper than its fixed stack (1024 levels).
MAX_CONTAINER_ITEMS = 100_000
MAX_STR_BYTES = 1024 * 1024


def encode_request(request: Request, *, hops: int = 0, rid: str | None = None) -> bytes:
    envelope: dict[str, object] = {"v": PROTOCOL_VERSION, "req": request.model_dump()}
    if hops:
        envelope["hops"] = hops
    if rid is not None:
        envelope["rid"] = rid
    frame: bytes = msgpack.packb(envelope, use_bin_type=True)
    return frame


def _unpack(data: bytes) -> Any:
    if len(data) > MAX_MESSAGE_BYTES:
        raise InvalidRequestError(f"message of {len(data)} bytes exceeds maximum of {MAX_MESSAGE_BYTES}")
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            max_array_len=MAX_CONTAINER_ITEMS,
            max_map_len=MAX_CONTAINER_ITEMS,
            max_str_len=MAX_STR_BYTES,
            max_bin_len=MAX_MESSAGE_BYTES,
            max_ext_len=0,
        )
    except Exception as exc:  # msgpack raises many types (ExtraData, ValueError, UnicodeDecodeError...)
        raise InvalidRequestError(f"undecodable frame: {type(exc).__name__}") from None


def _describe(err: ValidationError, variant: str | None = None) -> str:
    first = err.errors(include_url=False)[0]
    loc = (variant, *first["loc"]) if variant else first["loc"]
    where = ".".join(str(p) for p in loc) or "request"
    return f"invalid request: {where}: {first['msg']}"


def decode_request(data: bytes) -> Request:
    """Validate an untrusted (but authenticated) request body: envelope, version, then the request."""
    return decode_envelope(data)[0]


def decode_envelope(data: bytes) -> tuple[Request, int]:
    """Like `decode_request`, also returning how many times the request was forwarded."""
    request, hops, _ = decode_envelope_rid(data)
    return request, hops


def _valid_rid(rid: object) -> bool:
    return (
        isinstance(rid, str)
        and 0 < len(rid) <= MAX_RID_CHARS
        and rid.isascii()
        and rid.isprintable()
        and " " not in rid
    )


def decode_envelope_rid(data: bytes) -> tuple[Request, int, str | None]:
    """Like `decode_envelope`, also returning the request id (None when the client sent none)."""
    frame = _unpack(data)
    if not isinstance(frame, dict):
        raise InvalidRequestError("invalid request: frame is not a map")
    if frame.get("v") != PROTOCOL_VERSION:
        raise InvalidRequestError(
            f"unsupported protocol version {frame.get('v')!r} (want {PROTOCOL_VERSION})"
        )
    body = frame.get("req")
    if not isinstance(body, dict):
        raise InvalidRequestError("invalid request: missing request map")
    if not isinstance(body.get("type"), str):
        raise InvalidRequestError("invalid request: missing variant 'type'")
    hops = frame.get("hops", 0)
    if type(hops) is not int or not 0 <= hops <= MAX_PROXY_HOPS:
        raise InvalidRequestError(f"invalid request: hops must be 0..{MAX_PROXY_HOPS}")
    rid = frame.get("rid")
    if rid is not None and not _valid_rid(rid):
        raise InvalidRequestError(
            f"invalid request: rid must be 1..{MAX_RID_CHARS} printable ASCII characters, no spaces"
        )
    spec = OPERATIONS.get(body["type"])
    try:
        if spec is not None:  # a declared operation: validate against its own model only
            return spec.request.model_validate(body), hops, rid  # type: ignore[return-value]
        return REQUEST_ADAPTER.validate_python(body), hops, rid
    except ValidationError as err:
        if spec is not None:
            raise InvalidRequestError(_describe(err, spec.name)) from None
        if err.errors(include_url=False)[0]["type"] == "union_tag_invalid":
            raise InvalidRequestError(f"unknown request variant {body['type']!r}") from None
        raise InvalidRequestError(_describe(err)) from None


def encode_response(response: Response) -> bytes:
    frame: bytes = msgpack.packb(response.model_dump(), use_bin_type=True)
    return frame


def encode_error(err: AspenError) -> bytes:
    leader = getattr(err, "leader_id", None)
    return encode_response(Error(code=err.code.value, message=err.message, leader_id=leader))


def decode_response(data: bytes) -> Response:
    """Client side. A malformed response is the node's fault: `InternalError`, never a crash."""
    try:
        frame = msgpack.unpackb(data, raw=False)
        tag = frame.get("type") if isinstance(frame, dict) else None
        variant = (RESPONSE_TYPES.get(tag) or result_type(tag)) if isinstance(tag, str) else None
        if variant is None:
            raise ValueError(f"unknown response variant {tag!r}")
        response: Response = variant.model_validate(frame)  # type: ignore[assignment]
        return response
    except Exception as exc:
        raise error_from_wire("INTERNAL_ERROR", f"malformed response from node: {exc}") from None


def raise_for_error(response: Response) -> Response:
    """Turn a wire `Error` into its exception; pass every other response through."""
    if isinstance(response, Error):
        raise error_from_wire(response.code, response.message, response.leader_id)
    return response
