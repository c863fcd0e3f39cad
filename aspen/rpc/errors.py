"""Exceptions raised by the QUIC RPC transport.

Every failure a caller of :mod:`aspen.rpc.client` can see is an
:class:`RpcTransportError`, so the layer above needs a single ``except`` to
tell "the transport failed" apart from an application-level error reply
(which, to this layer, is just another opaque response frame).
"""

from __future__ import annotations


class RpcTransportError(Exception):
    """The request could not be completed by the transport.

    Unless a subclass says otherwise, the request may or may not have reached
    the server and may or may not have been executed: callers that retry must
    only do so for idempotent requests or with their own de-duplication.
    """


class RpcTimeoutError(RpcTransportError):
    """No complete response arrived within the deadline.

    The outcome of the request is unknown: the server may have executed it,
    may still execute it, or may never have seen it.
    """


class RpcConnectError(RpcTransportError):
    """No connection could be made, so the request was never sent: retrying it is always safe."""


class RpcRefusedError(RpcConnectError):
    """The node closed the connection before serving any request on it (too many connections, or
    it was evicted or timed out while unauthenticated): no request sent on it was executed.

    ``error_code`` is one of :data:`aspen.rpc.config.REFUSED_CONNECTION_CODES`.
    """

    def __init__(self, error_code: int, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code


class EndpointMismatchError(RpcConnectError):
    """The server proved possession of a different key than the one pinned.

    Raised before any request bytes are sent, so nothing reached the server.
    """

    def __init__(self, expected: str, got: str) -> None:
        super().__init__(f"endpoint id mismatch: expected {expected}, server presented {got}")
        self.expected = expected
        self.got = got


class RpcStreamResetError(RpcTransportError):
    """The server aborted this request's stream without a response.

    ``error_code`` is one of the ``STREAM_ERR_*`` codes in
    :mod:`aspen.rpc.config` (for instance the handler raised), or a QUIC code.
    """

    def __init__(self, error_code: int, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
