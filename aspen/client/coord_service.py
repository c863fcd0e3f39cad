"""The service registry in the client: flat methods returning the wire result, and a handle:

    registry = client.service_registry()
    token = await registry.register("api", "api-1", "10.0.0.5:8080", tags=["eu"], ttl_ms=30_000)
    await registry.heartbeat("api", "api-1", token)      # before the TTL passes
    for inst in await registry.discover("api", healthy_only=True):
        ...

Handle methods raise `ServiceRegistryError` when the result has `is_success=false`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

from aspen.api import registry as w
from aspen.api.errors import AspenError

if TYPE_CHECKING:
    from aspen.api import messages as m

R = TypeVar("R")


class ServiceRegistryError(AspenError):
    """A registry operation failed in the domain (stale fencing token, unknown instance …)."""


def _ok(res: R) -> R:
    if not getattr(res, "is_success", False):
        raise ServiceRegistryError(getattr(res, "error", None) or "service registry operation failed")
    return res


class ServiceRegistryMixin:
    if TYPE_CHECKING:

        async def _call(self, request: m.Request, kind: type[R]) -> R: ...

    async def service_register(
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
    ) -> w.ServiceRegisterResult:
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
        return await self._call(request, w.ServiceRegisterResult)

    async def service_deregister(self, service: str, instance: str, fencing_token: int) -> w.ServiceOpResult:
        request = w.ServiceDeregister(service_name=service, instance_id=instance, fencing_token=fencing_token)
        return await self._call(request, w.ServiceOpResult)

    async def service_heartbeat(self, service: str, instance: str, fencing_token: int) -> w.ServiceOpResult:
        request = w.ServiceHeartbeat(service_name=service, instance_id=instance, fencing_token=fencing_token)
        return await self._call(request, w.ServiceOpResult)

    async def service_update_health(
        self, service: str, instance: str, fencing_token: int, status: str
    ) -> w.ServiceOpResult:
        request = w.ServiceUpdateHealth(
            service_name=service, instance_id=instance, fencing_token=fencing_token, status=status
        )
        return await self._call(request, w.ServiceOpResult)

    async def service_update(
        self,
        service: str,
        instance: str,
        fencing_token: int,
        *,
        version: str | None = None,
        tags: Sequence[str] | None = None,
        weight: int | None = None,
    ) -> w.ServiceOpResult:
        request = w.ServiceUpdateMetadata(
            service_name=service,
            instance_id=instance,
            fencing_token=fencing_token,
            version=version,
            tags=None if tags is None else list(tags),
            weight=weight,
        )
        return await self._call(request, w.ServiceOpResult)

    async def service_discover(
        self,
        service: str,
        *,
        healthy_only: bool = False,
        tags: Sequence[str] = (),
        version_prefix: str | None = None,
        limit: int = 100,
    ) -> w.ServiceDiscoverResult:
        request = w.ServiceDiscover(
            service_name=service,
            healthy_only=healthy_only,
            tags=list(tags),
            version_prefix=version_prefix,
            limit=limit,
        )
        return await self._call(request, w.ServiceDiscoverResult)

    async def service_list(self, prefix: str = "", limit: int = 100) -> w.ServiceListResult:
        return await self._call(w.ServiceList(prefix=prefix, limit=limit), w.ServiceListResult)

    async def service_get(self, service: str, instance: str) -> w.ServiceGetInstanceResult:
        request = w.ServiceGetInstance(service_name=service, instance_id=instance)
        return await self._call(request, w.ServiceGetInstanceResult)

    def service_registry(self) -> ServiceRegistry:
        return ServiceRegistry(self)


class ServiceRegistry:
    """The registry; methods return plain values and raise `ServiceRegistryError` on failure."""

    __slots__ = ("_client",)

    def __init__(self, client: ServiceRegistryMixin) -> None:
        self._client = client

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
        res = _ok(
            await self._client.service_register(
                service,
                instance,
                address,
                version=version,
                tags=tags,
                weight=weight,
                ttl_ms=ttl_ms,
                metadata=metadata,
            )
        )
        assert res.fencing_token is not None
        return res.fencing_token

    async def deregister(self, service: str, instance: str, fencing_token: int) -> bool:
        """True if the instance was registered (and live) until now."""
        return bool(
            _ok(await self._client.service_deregister(service, instance, fencing_token)).was_registered
        )

    async def heartbeat(self, service: str, instance: str, fencing_token: int) -> int:
        """Renew the instance's TTL; returns its new deadline (Unix ms)."""
        res = _ok(await self._client.service_heartbeat(service, instance, fencing_token))
        assert res.deadline_ms is not None
        return res.deadline_ms

    async def set_health(self, service: str, instance: str, fencing_token: int, status: str) -> None:
        _ok(await self._client.service_update_health(service, instance, fencing_token, status))

    async def discover(
        self,
        service: str,
        *,
        healthy_only: bool = False,
        tags: Sequence[str] = (),
        version_prefix: str | None = None,
        limit: int = 100,
    ) -> list[w.ServiceInstanceInfo]:
        res = await self._client.service_discover(
            service, healthy_only=healthy_only, tags=tags, version_prefix=version_prefix, limit=limit
        )
        return _ok(res).instances

    async def services(self, prefix: str = "") -> list[str]:
        return _ok(await self._client.service_list(prefix)).services

    async def get(self, service: str, instance: str) -> w.ServiceInstanceInfo | None:
        return _ok(await self._client.service_get(service, instance)).instance


__all__ = ["ServiceRegistry", "ServiceRegistryError", "ServiceRegistryMixin"]
