"""QUIC RPC transport for Aspen clients.

Moves opaque request/response frames over QUIC (ALPN ``aspen-client``), one
bidirectional stream per request.  Servers are authenticated by pinning the
Ed25519 key behind their endpoint id; clients by a proof of the cluster cookie bound to the
connection (:mod:`aspen.rpc.auth`), which this package adds to and checks on every request.
Message types live above this package (``aspen.api``).
"""

from aspen.rpc.auth import proof_key
from aspen.rpc.client import DEFAULT_MAX_RESPONSE, RpcClient, RpcConnection
from aspen.rpc.config import (
    ALPN,
    CONN_ERR_AUTH_DEADLINE,
    CONN_ERR_EVICTED,
    CONN_ERR_PREAUTH_LIMIT,
    CONN_ERR_SHUTDOWN,
    CONN_ERR_TOO_MANY_CONNECTIONS,
    MAX_MESSAGE,
    STREAM_ERR_BUSY,
    STREAM_ERR_CANCELLED,
    STREAM_ERR_HANDLER,
    STREAM_ERR_OVERSIZE,
    STREAM_ERR_UNAUTHORIZED,
    AdmissionLimits,
    AspenQuicConfiguration,
)
from aspen.rpc.errors import (
    EndpointMismatchError,
    RpcConnectError,
    RpcRefusedError,
    RpcStreamResetError,
    RpcTimeoutError,
    RpcTransportError,
)
from aspen.rpc.identity import SECRET_KEY_FILENAME, NodeIdentity, endpoint_id_of_certificate, load_or_create
from aspen.rpc.server import Handler, HandlerResult, PeerInfo, RpcServer
from aspen.rpc.ticket import ClusterTicket, TicketError, TicketPeer, parse_host_port

__all__ = [
    "ALPN",
    "CONN_ERR_AUTH_DEADLINE",
    "CONN_ERR_EVICTED",
    "CONN_ERR_PREAUTH_LIMIT",
    "CONN_ERR_SHUTDOWN",
    "CONN_ERR_TOO_MANY_CONNECTIONS",
    "DEFAULT_MAX_RESPONSE",
    "MAX_MESSAGE",
    "SECRET_KEY_FILENAME",
    "STREAM_ERR_BUSY",
    "STREAM_ERR_CANCELLED",
    "STREAM_ERR_HANDLER",
    "STREAM_ERR_OVERSIZE",
    "STREAM_ERR_UNAUTHORIZED",
    "AdmissionLimits",
    "AspenQuicConfiguration",
    "ClusterTicket",
    "EndpointMismatchError",
    "Handler",
    "HandlerResult",
    "NodeIdentity",
    "PeerInfo",
    "RpcClient",
    "RpcConnectError",
    "RpcConnection",
    "RpcRefusedError",
    "RpcServer",
    "RpcStreamResetError",
    "RpcTimeoutError",
    "RpcTransportError",
    "TicketError",
    "TicketPeer",
    "endpoint_id_of_certificate",
    "load_or_create",
    "parse_host_port",
    "proof_key",
]
