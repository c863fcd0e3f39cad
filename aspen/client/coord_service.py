"""The service registry's handle in the client (the flat methods, `client.service_register(...)`
and the rest, are derived from the declarations in aspen.api.registry):

    registry = client.service_registry()
    token = await registry.register("api", "api-1", "10.0.0.5:8080", tags=["eu"], ttl_ms=30_000)
    await registry.heartbeat("api", "api-1", token)      # before the TTL passes
    for inst in await registry.discover("api", healthy_only=True):
        ...

Handle methods return plain values and raise `ServiceRegistryError` when the result has
`is_success=false`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeVar

from aspen.api import registry as w
from aspen.api.errors import AspenError

R = TypeVar("R")


class ServiceRegistryError(AspenError):
    """A registry operation failed in the domain (stale fencing token, unknown instance …)."""


class _Calls(Protocol):
    async def call(self, request: Any) -> Any: ...


class ServiceRegistry:
    """The registry; methods return plain values and raise `ServiceRegistryError` on failure."""

    __slots__ = ("_client",)

    def __init__(self, client: _Calls) -> None:
        self._client = client

    async def _ok(self, request: Any, kind: type[R]) -> R:
        res = await self._client.call(request)
        assert isinstance(res, kind)  # `call` checked it is the declared result
        if not getattr(res, "is_success", False):
            raise ServiceRegistryError(getattr(res, "error", None) or "service registry operation failed")
        return res

    async def register(
        self,
        service: str,
        instance: str,
        address: str,
        *,
        version: str = "1.0.0",
        tags: Sequence[str] = (),
        weight: int = 100,
        ttl_ms: int = 30_000,
        metadata: Mapping[str, str] | None = None,
    ) -> int:
        """Register (or re-register) an instance; returns its new fencing token."""
        request = w.ServiceRegister(
            service_name=service,
            instance_id=instance,
            address=address,
            version=version,
            tags=list(tags),
            weight=weight,
            ttl_ms=ttl_ms,
            custom_metadata=dict(metadata or {}),
        )
        res = await self._ok(request, w.ServiceRegisterResult)
        assert res.fencing_token is not None
        return res.fencing_token

    async def deregister(self, service: str, instance: str, fencing_token: int) -> bool:
        """True if the instance was registered (and live) until now."""
        request = w.ServiceDeregister(service_name=service, instance_id=instance, fencing_token=fencing_token)
        return bool((await self._ok(request, w.ServiceOpResult)).was_registered)

    async def heartbeat(self, service: str, instance: str, fencing_token: int) -> int:
        """Renew the instance's TTL; returns its new deadline (Unix ms)."""
        request = w.ServiceHeartbeat(service_name=service, instance_id=instance, fencing_token=fencing_token)
        res = await self._ok(request, w.ServiceOpResult)
        assert res.deadline_ms is not None
        return res.deadline_ms

    async def set_health(self, service: str, instance: str, fencing_token: int, status: str) -> None:
        request = w.ServiceUpdateHealth(
            service_name=service, instance_id=instance, fencing_token=fencing_token, status=status
        )
        await self._ok(request, w.ServiceOpResult)

    async def discover(
        self,
        service: str,
        *,
        healthy_only: bool = False,
        tags: Sequence[str] = (),
        version_prefix: str | None = None,
        limit: int = 100,
    ) -> list[w.ServiceInstanceInfo]:
        request = w.ServiceDiscover(
            service_name=service,
            healthy_only=healthy_only,
            tags=list(tags),
            version_prefix=version_prefix,
            limit=limit,
        )
        return (await self._ok(request, w.ServiceDiscoverResult)).instances

    async def services(self, prefix: str = "") -> list[str]:
        return (await self._ok(w.ServiceList(prefix=prefix), w.ServiceListResult)).services

    async def get(self, service: str, instance: str) -> w.ServiceInstanceInfo | None:
        request = w.ServiceGetInstance(service_name=service, instance_id=instance)
        return (await self._ok(request, w.ServiceGetInstanceResult)).instance


__all__ = ["ServiceRegistry", "ServiceRegistryError"]
