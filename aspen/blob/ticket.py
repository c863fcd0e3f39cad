"""Blob tickets: a hash, its size and the nodes that provide it, in one copyable string.

Format: ``"blob"`` + lowercase unpadded base32 of msgpack ``{"h": hash, "s": size, "p": [endpoint
ids]}``. A node given a ticket (`DownloadBlob`) fetches the blob from those providers over the peer
data channel, so they must be members of its cluster; the ticket carries no secret.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import msgpack

from aspen.blob.store import is_valid_hash

__all__ = ["BLOB_TICKET_PREFIX", "BlobTicket"]

BLOB_TICKET_PREFIX = "blob"
MAX_PROVIDERS = 16


@dataclass(frozen=True, slots=True)
class BlobTicket:
    hash: str
    size: int
    providers: tuple[str, ...]

    def encode(self) -> str:
        packed = msgpack.packb({"h": self.hash, "s": self.size, "p": list(self.providers)}, use_bin_type=True)
        return BLOB_TICKET_PREFIX + base64.b32encode(packed).decode("ascii").rstrip("=").lower()

    @staticmethod
    def decode(text: str) -> BlobTicket:
        """Parse and validate a ticket; raises ValueError with the reason."""
        text = text.strip()
        if not text.startswith(BLOB_TICKET_PREFIX):
            raise ValueError("not a blob ticket (must start with 'blob')")
        body = text[len(BLOB_TICKET_PREFIX) :].upper()
        try:
            doc = msgpack.unpackb(base64.b32decode(body + "=" * (-len(body) % 8)), raw=False)
        except Exception as err:
            raise ValueError(f"blob ticket does not decode: {type(err).__name__}") from None
        if not isinstance(doc, dict):
            raise ValueError("blob ticket is not a map")
        digest, size, providers = doc.get("h"), doc.get("s"), doc.get("p")
        if not isinstance(digest, str) or not is_valid_hash(digest):
            raise ValueError("blob ticket has no valid hash")
        if not isinstance(size, int) or size < 0:
            raise ValueError("blob ticket has no valid size")
        if (
            not isinstance(providers, list)
            or not 0 < len(providers) <= MAX_PROVIDERS
            or not all(isinstance(p, str) and is_valid_hash(p) for p in providers)
        ):
            raise ValueError("blob ticket must name 1-16 providers (64-hex endpoint ids)")
        return BlobTicket(digest, size, tuple(providers))
