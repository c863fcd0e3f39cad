"""Python client library of Aspen."""

from aspen.api.errors import (
    AspenError,
    ConnectionFailedError,
    NotInitializedError,
    NotLeaderError,
    OutcomeUnknownError,
    UnauthorizedError,
)
from aspen.api.messages import DeleteOperation, KeyExists, KeyNotExists, SetOperation, ValueEquals
from aspen.client.client import AspenClient, load_ticket
from aspen.client.coord_barrier import BarrierError
from aspen.client.coord_queue import QueueError
from aspen.client.coord_semaphore import SemaphoreError
from aspen.client.coord_service import ServiceRegistryError
from aspen.client.coordination import CoordinationError
from aspen.client.election import Election
from aspen.client.leases import Lease
from aspen.client.locks import LockNotAcquired, LockTimeout
from aspen.client.sync import SyncAspenClient

__all__ = [
    "AspenClient",
    "AspenError",
    "BarrierError",
    "ConnectionFailedError",
    "CoordinationError",
    "DeleteOperation",
    "Election",
    "KeyExists",
    "KeyNotExists",
    "Lease",
    "LockNotAcquired",
    "LockTimeout",
    "NotInitializedError",
    "NotLeaderError",
    "OutcomeUnknownError",
    "QueueError",
    "SemaphoreError",
    "ServiceRegistryError",
    "SetOperation",
    "SyncAspenClient",
    "UnauthorizedError",
    "ValueEquals",
    "load_ticket",
]
