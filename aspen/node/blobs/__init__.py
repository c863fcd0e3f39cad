"""The node's blob service: request handlers, transfer sessions, replication, and GC/repair/scrub.

Where things live:

* Bytes: this node's `BlobStore` (`<data_dir>/blobs`). They never go through Raft.
* Metadata: which nodes hold a hash and its replication policy, as a JSON record in the KV store
  (`aspen.blob.policy`), changed through Raft (`metadata`).
* Transfers: client ↔ node over channel `BLOB_CLIENT_CHANNEL` with a one-time token issued by the
  QUIC RPC (`aspen.rpc.bulk`); node ↔ node over `BLOB_PEER_CHANNEL`, authenticated by member keys.

The modules, each named for what it holds:

* `framing` — the data channels' control frames and bounded reads;
* `metadata` — the replica records (read, and one change at a time);
* `core` — what every part shares (store, metadata, peers, transfer slots, tasks);
* `transfer` — tokens, the client channel, serving bytes, fetching from other nodes;
* `replication` — copying to new holders, `ensure_local`, the node-to-node channel;
* `maintenance` — the GC and repair/scrub loops;
* `handlers` — the wire request handlers;
* `service` — the parts wired together, and their lifecycle.

Invariants:

* This node lists itself in a blob's record only while it has a complete, hash-verified copy tagged
  `_store:` (added here) or `_replica:` (replicated here); it removes itself when the copy goes.
* Every received blob is hashed while it arrives and published only if the hash matches (the store
  guarantees no partial blob is ever visible). A copy found corrupt (when served, scrubbed or
  repaired) is discarded at once and fetched again from a good holder.
* Every transfer is bounded: a token expires, each read/write must progress within
  `transfer_idle_s`, at most `max_concurrent_transfers` run at once, memory is a few chunks.
"""

from __future__ import annotations

from aspen.node.blobs.service import BlobService, make_blob_service

__all__ = ["BlobService", "make_blob_service"]
