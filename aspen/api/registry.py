"""Wire models of the service-registry requests (reference §4.3 122-129, §7.10)."""

from __future__ import annotations

from typing import Literal

from aspen.api.wire import U32, U64, WireModel


class ServiceRegister(WireModel):
    type: Literal["ServiceRegister"] = "ServiceRegister"
    service_name: str
    instance_id: str
    address: str
    version: str = "1.0.0"
    tags: list[str] = []
    weight: U32 = 100
    custom_metadata: dict[str, str] = {}
    ttl_ms: U64 = 30_000


class ServiceDeregister(WireModel):
    type: Literal["ServiceDeregister"] = "ServiceDeregister"
    service_name: str
    instance_id: str
    fencing_token: U64


class ServiceDiscover(WireModel):
    type: Literal["ServiceDiscover"] = "ServiceDiscover"
    service_name: str
    healthy_only: bool = False
    tags: list[str] = []
    version_prefix: str | None = None
    limit: U32 = 100


class ServiceList(WireModel):
    type: Literal["ServiceList"] = "ServiceList"
    prefix: str = ""
    limit: U32 = 100


class ServiceGetInstance(WireModel):
    type: Literal["ServiceGetInstance"] = "ServiceGetInstance"
    service_name: str
    instance_id: str


class ServiceHeartbeat(WireModel):
    type: Literal["ServiceHeartbeat"] = "ServiceHeartbeat"
    service_name: str
    instance_id: str
    fencing_token: U64


class ServiceUpdateHealth(WireModel):
    type: Literal["ServiceUpdateHealth"] = "ServiceUpdateHealth"
    service_name: str
    instance_id: str
    fencing_token: U64
    status: str


class ServiceUpdateMetadata(WireModel):
    type: Literal["ServiceUpdateMetadata"] = "ServiceUpdateMetadata"
    service_name: str
    instance_id: str
    fencing_token: U64
    version: str | None = None
    tags: list[str] | None = None
    weight: U32 | None = None


class ServiceInstanceInfo(WireModel):
    service_name: str
    instance_id: str
    address: str
    version: str
    tags: list[str]
    weight: U32
    health: str
    custom_metadata: dict[str, str]
    registered_at_ms: U64
    last_heartbeat_ms: U64
    deadline_ms: U64
    fencing_token: U64


class ServiceRegisterResult(WireModel):
    type: Literal["ServiceRegisterResult"] = "ServiceRegisterResult"
    is_success: bool
    fencing_token: U64 | None = None
    deadline_ms: U64 | None = None
    error: str | None = None


class ServiceOpResult(WireModel):
    """The answer to deregister, heartbeat, health and metadata updates."""

    type: Literal["ServiceOpResult"] = "ServiceOpResult"
    is_success: bool
    was_registered: bool | None = None
    deadline_ms: U64 | None = None
    error: str | None = None


class ServiceDiscoverResult(WireModel):
    type: Literal["ServiceDiscoverResult"] = "ServiceDiscoverResult"
    is_success: bool
    instances: list[ServiceInstanceInfo] = []
    error: str | None = None


class ServiceListResult(WireModel):
    type: Literal["ServiceListResult"] = "ServiceListResult"
    is_success: bool
    services: list[str] = []
    error: str | None = None


class ServiceGetInstanceResult(WireModel):
    type: Literal["ServiceGetInstanceResult"] = "ServiceGetInstanceResult"
    is_success: bool
    was_found: bool = False
    instance: ServiceInstanceInfo | None = None
    error: str | None = None


SERVICE_WRITES = frozenset(
    {
        "ServiceRegister",
        "ServiceDeregister",
        "ServiceHeartbeat",
        "ServiceUpdateHealth",
        "ServiceUpdateMetadata",
    }
)
SERVICE_READS = frozenset({"ServiceDiscover", "ServiceList", "ServiceGetInstance"})

ServiceRequest = (
    ServiceRegister
    | ServiceDeregister
    | ServiceDiscover
    | ServiceList
    | ServiceGetInstance
    | ServiceHeartbeat
    | ServiceUpdateHealth
    | ServiceUpdateMetadata
)
ServiceResponse = (
    ServiceRegisterResult
    | ServiceOpResult
    | ServiceDiscoverResult
    | ServiceListResult
    | ServiceGetInstanceResult
)

__all__ = [
    "SERVICE_READS",
    "SERVICE_WRITES",
    "ServiceDeregister",
    "ServiceDiscover",
    "ServiceDiscoverResult",
    "ServiceGetInstance",
    "ServiceGetInstanceResult",
    "ServiceHeartbeat",
    "ServiceInstanceInfo",
    "ServiceList",
    "ServiceListResult",
    "ServiceOpResult",
    "ServiceRegister",
    "ServiceRegisterResult",
    "ServiceRequest",
    "ServiceResponse",
    "ServiceUpdateHealth",
    "ServiceUpdateMetadata",
]
