"""The service-registry operations, declared once (aspen.api.operation): layer `service`, CLI group
`aspen-cli service`."""

from __future__ import annotations

from typing import Annotated, Literal

from aspen.api.operation import UNCHECKED, Arg, Family, Opt
from aspen.api.wire import U32, U64, Result, WireModel


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


class ServiceRegisterResult(Result):
    type: Literal["ServiceRegisterResult"] = "ServiceRegisterResult"
    is_success: bool
    fencing_token: U64 | None = None
    deadline_ms: U64 | None = None
    error: str | None = None


class ServiceOpResult(Result):
    """The answer to deregister, heartbeat, health and metadata updates."""

    type: Literal["ServiceOpResult"] = "ServiceOpResult"
    is_success: bool
    was_registered: bool | None = None
    deadline_ms: U64 | None = None
    error: str | None = None


class ServiceDiscoverResult(Result):
    type: Literal["ServiceDiscoverResult"] = "ServiceDiscoverResult"
    is_success: bool
    instances: list[ServiceInstanceInfo] = []
    error: str | None = None


class ServiceListResult(Result):
    type: Literal["ServiceListResult"] = "ServiceListResult"
    is_success: bool
    services: list[str] = []
    error: str | None = None


class ServiceGetInstanceResult(Result):
    type: Literal["ServiceGetInstanceResult"] = "ServiceGetInstanceResult"
    is_success: bool
    was_found: bool = False
    instance: ServiceInstanceInfo | None = None
    error: str | None = None


_SERVICE = Annotated[str, Arg("service")]
_INSTANCE = Annotated[str, Arg("instance")]
_TOKEN = Annotated[U64, Opt(low=1)]
_LIMIT = Annotated[U32, Opt(low=1, high=1000)]
service = Family(
    "service",
    "Service registry: instances with a TTL, heartbeats, health, discovery.",
    "service",
    ServiceOpResult,
)


@service.write("register", result=ServiceRegisterResult, printer="service-register")
class ServiceRegister(WireModel):
    """Register INSTANCE of SERVICE at ADDRESS; prints its fencing token."""

    type: Literal["ServiceRegister"] = "ServiceRegister"
    service_name: _SERVICE
    instance_id: _INSTANCE
    address: Annotated[str, Arg()]
    version: Annotated[str, Opt("--svc-version", "Version of the instance.")] = "1.0.0"
    tags: Annotated[list[str], Opt(help="Comma-separated tags.", parser="tags")] = []
    weight: Annotated[U32, Opt()] = 100
    custom_metadata: dict[str, str] = {}
    ttl_ms: Annotated[U64, Opt("--ttl", "TTL in ms.", low=1, high=UNCHECKED)] = 30_000


@service.write("deregister")
class ServiceDeregister(WireModel):
    """Remove INSTANCE of SERVICE."""

    type: Literal["ServiceDeregister"] = "ServiceDeregister"
    service_name: _SERVICE
    instance_id: _INSTANCE
    fencing_token: _TOKEN


@service.read("discover", result=ServiceDiscoverResult, printer="service-discover")
class ServiceDiscover(WireModel):
    """List the live instances of SERVICE."""

    type: Literal["ServiceDiscover"] = "ServiceDiscover"
    service_name: _SERVICE
    healthy_only: Annotated[bool, Opt(help="Only instances whose health is healthy.")] = False
    tags: Annotated[
        list[str], Opt(help="Comma-separated tags an instance must all have.", parser="tags")
    ] = []
    version_prefix: Annotated[str | None, Opt(help="Only versions starting with this.")] = None
    limit: _LIMIT = 100


@service.read("list", result=ServiceListResult, printer="service-list")
class ServiceList(WireModel):
    """List services (with at least one live instance) whose name starts with PREFIX."""

    type: Literal["ServiceList"] = "ServiceList"
    prefix: Annotated[str, Arg()] = ""
    limit: _LIMIT = 100


@service.read("get", result=ServiceGetInstanceResult, printer="service-get")
class ServiceGetInstance(WireModel):
    """Show INSTANCE of SERVICE."""

    type: Literal["ServiceGetInstance"] = "ServiceGetInstance"
    service_name: _SERVICE
    instance_id: _INSTANCE


@service.write("heartbeat")
class ServiceHeartbeat(WireModel):
    """Renew the TTL of INSTANCE of SERVICE."""

    type: Literal["ServiceHeartbeat"] = "ServiceHeartbeat"
    service_name: _SERVICE
    instance_id: _INSTANCE
    fencing_token: _TOKEN


@service.write("health", op="ServiceSetHealth", client="service_update_health")
class ServiceUpdateHealth(WireModel):
    """Set the health of INSTANCE of SERVICE."""

    type: Literal["ServiceUpdateHealth"] = "ServiceUpdateHealth"
    service_name: _SERVICE
    instance_id: _INSTANCE
    fencing_token: _TOKEN
    status: Annotated[str, Opt(choices=("healthy", "unhealthy", "unknown"))]


@service.write("update", op="ServiceUpdate")
class ServiceUpdateMetadata(WireModel):
    """Change the version, tags or weight of INSTANCE of SERVICE."""

    type: Literal["ServiceUpdateMetadata"] = "ServiceUpdateMetadata"
    service_name: _SERVICE
    instance_id: _INSTANCE
    fencing_token: _TOKEN
    version: Annotated[str | None, Opt("--svc-version", "New version.")] = None
    tags: Annotated[list[str] | None, Opt(help="New comma-separated tags.", parser="tags")] = None
    weight: Annotated[U32 | None, Opt(help="New weight.")] = None
