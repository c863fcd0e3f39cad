"""TLS 1.3 over TCP for the peer listener: contexts with the node's self-signed Ed25519 certificate,
the pin check on the dialling side, listening sockets and socket tuning.

Peers are pinned by key (the dialling side checks the certificate's key against the endpoint id it
expects) and the dialled side authenticates the caller inside the channel (`aspen.peer.handshake`):
Python's ssl module cannot verify a self-signed client certificate against a pinned key.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import tempfile
from typing import Any

from cryptography import x509

from aspen.rpc.identity import NodeIdentity, endpoint_id_of_certificate

__all__ = [
    "ACCEPT_BACKLOG",
    "UNACKED_TIMEOUT",
    "abort",
    "linger",
    "listen",
    "make_contexts",
    "peer_endpoint_id",
    "tune_socket",
]

#: Bytes sent on a peer link and not acknowledged for this long mean the link is dead or stuck in
#: TCP's retransmission backoff: the kernel drops the connection and the transport redials.
UNACKED_TIMEOUT = 3.0
#: Kernel queue of connections not yet accepted (capped by net.core.somaxconn): a flood overflows
#: it less often, and what waits there holds no descriptor of ours.
ACCEPT_BACKLOG = 1024


def peer_endpoint_id(writer: asyncio.StreamWriter) -> str | None:
    """The endpoint id (public key) of the certificate the other side presented, if any."""
    ssl_object = writer.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if not der:
        return None
    return endpoint_id_of_certificate(x509.load_der_x509_certificate(der))


def tune_socket(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is None:
        return
    try:
        # Heartbeats and votes are tiny and latency-bound: never wait for Nagle.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # A peer that vanished without a FIN/RST (power loss) is eventually noticed on idle links.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if hasattr(socket, "TCP_USER_TIMEOUT"):  # Linux
            # After heavy packet loss TCP's retransmission timer may have backed off to many
            # seconds, and a link that is fine again stays silent that long: give up on it and
            # redial instead (etcd's peer connections have a 5 s write timeout for the same reason).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(UNACKED_TIMEOUT * 1000))
    except (OSError, AttributeError):
        pass


def abort(writer: asyncio.StreamWriter) -> None:
    # abort, not close: a graceful TLS shutdown waits for the peer, which may be the broken party.
    try:
        writer.transport.abort()
    except Exception:  # already closed, or a loop implementation quirk: nothing left to release
        pass


def listen(host: str, port: int) -> list[socket.socket]:
    """Bound, listening, non-blocking sockets for (host, port), one per address family, as
    `asyncio.start_server` makes them ("" or None: every interface). With port 0 the port the
    first socket got is used for the others too, so the node has one port number."""
    infos = socket.getaddrinfo(
        host or None, port, family=socket.AF_UNSPEC, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    seen: set[tuple[int, Any]] = set()
    socks: list[socket.socket] = []
    try:
        for family, type_, proto, _, addr in infos:
            if (family, addr) in seen:
                continue
            seen.add((family, addr))
            sock = socket.socket(family, type_, proto)
            socks.append(sock)
            # A restarted node binds its port again while old connections are in TIME_WAIT.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                # The IPv4 socket (if any) serves IPv4: without this both would claim the port.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(socks) > 1:
                addr = (addr[0], socks[0].getsockname()[1], *addr[2:])
            sock.bind(addr)
            sock.listen(ACCEPT_BACKLOG)
            sock.setblocking(False)
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    if not socks:
        raise OSError(f"no address to listen on for {host!r}")
    return socks


async def linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Flush what was written (drain with no high-water mark waits for an empty buffer), then wait
    for the peer, which has read all it expects, to close its side; the caller bounds the time."""
    writer.transport.set_write_buffer_limits(high=0)
    await writer.drain()
    try:
        await reader.read(1)
    except (OSError, asyncio.IncompleteReadError):
        pass


def make_contexts(identity: NodeIdentity) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    for ctx in (server, client):
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    # Peers are pinned by key (client side, after the handshake) and authenticated by signature
    # (server side); there is no CA to verify against.
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    server.verify_mode = ssl.CERT_NONE
    # load_cert_chain only reads files: write the PEMs into a private (0700) temporary directory,
    # with 0600 files, and delete them as soon as they are loaded.
    with tempfile.TemporaryDirectory(prefix="aspen-raft-tls-") as tmp:
        cert_path = os.path.join(tmp, "cert.pem")
        key_path = os.path.join(tmp, "key.pem")
        for path, data in ((cert_path, identity.certificate_pem()), (key_path, identity.private_key_pem())):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        for ctx in (server, client):
            ctx.load_cert_chain(cert_path, key_path)
    return server, client
