"""Peer TLS/TCP: the node-to-node (and bulk data) transport.

`tls` (contexts, pinning, sockets), `handshake` (the member authentication after TLS) and
`transport` (`TcpTransport`: the listener with its pre-auth limits, the channel mux, and the Raft
channel). It sits below the node and beside the QUIC RPC, whose node identity it shares
(`aspen.rpc.identity`, a leaf); Raft itself knows only the `aspen.raft.transport.Transport`
protocol this implements.

This package's `__init__` imports nothing, so a light importer pays for no asyncio machinery.
"""
