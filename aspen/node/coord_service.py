"""Dispatch of the service-registry requests (reference §7.10): every mutation is one proposal;
discover, list and get are reads that judge expiry with this node's clock."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aspen.api import registry as w
from aspen.layers import service
from aspen.node.coord_wait import now_ms

if TYPE_CHECKING:
    from aspen.node.coordination import CoordinationHandlers, Handler


def _info(i: service.Instance) -> w.ServiceInstanceInfo:
    return w.ServiceInstanceInfo(
        service_name=i.service_name,
        instance_id=i.instance_id,
        address=i.address,
        version=i.version,
        tags=list(i.tags),
        weight=i.weight,
        health=i.health,
        custom_metadata=dict(i.metadata),
        registered_at_ms=i.registered_at_ms,
        last_heartbeat_ms=i.last_heartbeat_ms,
        deadline_ms=i.deadline_ms,
        fencing_token=i.fencing_token,
    )


def _op_result(res: service.ServiceResult) -> w.ServiceOpResult:
    return w.ServiceOpResult(
        is_success=res.is_success,
        was_registered=res.was_registered,
        deadline_ms=res.deadline_ms,
        error=res.error,
    )


class ServiceHandlers:
    def __init__(self, coord: CoordinationHandlers) -> None:
        self._coord = coord

    def handlers(self) -> dict[str, Handler]:
        return {
            "ServiceRegister": self._register,
            "ServiceDeregister": lambda r: self._op(
                service.ServiceDeregister(r.service_name, r.instance_id, r.fencing_token)
            ),
            "ServiceHeartbeat": lambda r: self._op(
                service.ServiceHeartbeat(r.service_name, r.instance_id, r.fencing_token)
            ),
            "ServiceUpdateHealth": lambda r: self._op(
                service.ServiceSetHealth(r.service_name, r.instance_id, r.fencing_token, r.status)
            ),
            "ServiceUpdateMetadata": lambda r: self._op(
                service.ServiceUpdate(
                    r.service_name,
                    r.instance_id,
                    r.fencing_token,
                    r.version,
                    None if r.tags is None else tuple(r.tags),
                    r.weight,
                )
            ),
            "ServiceDiscover": self._discover,
            "ServiceList": self._list,
            "ServiceGetInstance": self._get,
        }

    async def _propose(self, op: service.ServiceOp) -> service.ServiceResult:
        res: service.ServiceResult = await self._coord._propose(
            service.LAYER, op, len(op.service) + len(op.instance) + 256
        )
        return res

    async def _register(self, req: w.ServiceRegister) -> w.ServiceRegisterResult:
        op = service.ServiceRegister(
            req.service_name,
            req.instance_id,
            req.address,
            req.version,
            tuple(req.tags),
            req.weight,
            req.ttl_ms,
            tuple(sorted(req.custom_metadata.items())),
        )
        res = await self._propose(op)
        return w.ServiceRegisterResult(
            is_success=res.is_success,
            fencing_token=res.fencing_token,
            deadline_ms=res.deadline_ms,
            error=res.error,
        )

    async def _op(self, op: service.ServiceOp) -> w.ServiceOpResult:
        return _op_result(await self._propose(op))

    async def _discover(self, req: w.ServiceDiscover) -> w.ServiceDiscoverResult:
        await self._coord._barrier(False)
        res = service.discover(
            self._coord._view(),
            req.service_name,
            now_ms(),
            healthy_only=req.healthy_only,
            tags=tuple(req.tags),
            version_prefix=req.version_prefix,
            limit=req.limit,
        )
        instances = [_info(i) for i in res.instances]
        return w.ServiceDiscoverResult(is_success=res.is_success, instances=instances, error=res.error)

    async def _list(self, req: w.ServiceList) -> w.ServiceListResult:
        await self._coord._barrier(False)
        res = service.list_services(self._coord._view(), req.prefix, now_ms(), req.limit)
        return w.ServiceListResult(is_success=res.is_success, services=list(res.services), error=res.error)

    async def _get(self, req: w.ServiceGetInstance) -> w.ServiceGetInstanceResult:
        await self._coord._barrier(False)
        res = service.get(self._coord._view(), req.service_name, req.instance_id, now_ms())
        return w.ServiceGetInstanceResult(
            is_success=res.is_success,
            was_found=bool(res.was_registered),
            instance=None if res.instance is None else _info(res.instance),
            error=res.error,
        )


__all__ = ["ServiceHandlers"]
