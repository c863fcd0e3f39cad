"""Blob store settings, from `ASPEN_BLOBS_*` environment variables (the names the original Aspen uses).

| variable | default | meaning |
|---|---|---|
| `ASPEN_BLOBS_ENABLED` | true | serve blobs (else blob requests answer "blob store not enabled") |
| `ASPEN_BLOBS_MAX_SIZE` | 1073741824 | largest blob in bytes |
| `ASPEN_BLOBS_REPLICATION_FACTOR` | 0 | copies per blob; 0 = min(3, voters) |
| `ASPEN_BLOBS_GC_INTERVAL_S` | 60 | how often untagged blobs are collected |
| `ASPEN_BLOBS_GC_GRACE_S` | 300 | how long an untagged blob is kept first |
| `ASPEN_BLOBS_REPAIR_INTERVAL_S` | 60 | how often the leader repairs under-replicated blobs |
| `ASPEN_BLOBS_SCRUB_INTERVAL_S` | 3600 | how often each node re-hashes its copies (replacing corrupt ones) |
| `ASPEN_BLOBS_TRANSFER_IDLE_S` | 30 | a transfer without progress for this long is abandoned |
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aspen.blob.store import DEFAULT_MAX_BLOB_SIZE

__all__ = ["BlobConfig"]


def _bool(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True, slots=True)
class BlobConfig:
    enabled: bool = True
    max_size: int = DEFAULT_MAX_BLOB_SIZE
    replication_factor: int = 0
    gc_interval_s: float = 60.0
    gc_grace_s: float = 300.0
    repair_interval_s: float = 60.0
    scrub_interval_s: float = 3600.0
    #: A transfer that makes no progress for this long is abandoned (and retried elsewhere).
    transfer_idle_s: float = 30.0
    #: A data-channel token not presented within this time expires.
    token_ttl_s: float = 60.0
    max_concurrent_transfers: int = 10
    #: Bytes the periodic scrub re-hashes per cycle (bounds its disk and CPU use).
    scrub_bytes_per_cycle: int = 2 * 1024 * 1024 * 1024

    @staticmethod
    def from_env(env: Mapping[str, str] | None = None) -> BlobConfig:
        """Read `ASPEN_BLOBS_*`; raises ValueError naming the bad variable."""
        src = os.environ if env is None else env
        values: dict[str, object] = {}
        fields: dict[str, tuple[str, Callable[[str], object]]] = {
            "ASPEN_BLOBS_ENABLED": ("enabled", _bool),
            "ASPEN_BLOBS_MAX_SIZE": ("max_size", int),
            "ASPEN_BLOBS_REPLICATION_FACTOR": ("replication_factor", int),
            "ASPEN_BLOBS_GC_INTERVAL_S": ("gc_interval_s", float),
            "ASPEN_BLOBS_GC_GRACE_S": ("gc_grace_s", float),
            "ASPEN_BLOBS_REPAIR_INTERVAL_S": ("repair_interval_s", float),
            "ASPEN_BLOBS_SCRUB_INTERVAL_S": ("scrub_interval_s", float),
            "ASPEN_BLOBS_TRANSFER_IDLE_S": ("transfer_idle_s", float),
        }
        for var, (name, parse) in fields.items():
            raw = src.get(var)
            if raw is None or raw == "":
                continue
            try:
                values[name] = parse(raw)
            except ValueError:
                raise ValueError(f"{var}={raw!r} is not valid") from None
        cfg = BlobConfig(**values)  # type: ignore[arg-type]
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.max_size <= 0:
            raise ValueError("ASPEN_BLOBS_MAX_SIZE must be positive")
        if not 0 <= self.replication_factor <= 7:
            raise ValueError("ASPEN_BLOBS_REPLICATION_FACTOR must be 0..7")
        for name in (
            "gc_interval_s",
            "gc_grace_s",
            "repair_interval_s",
            "scrub_interval_s",
            "transfer_idle_s",
        ):
            if getattr(self, name) < 0 or (name.endswith("interval_s") and getattr(self, name) == 0):
                raise ValueError(f"blob setting {name} must be positive")
