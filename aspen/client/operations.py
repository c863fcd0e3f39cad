"""The client side of the declared operations (aspen.api.operation): one generic `call`, and the
flat methods (`client.counter_incr("hits")`) derived from the declarations.

A flat method takes the request's fields positionally in declaration order, or by name, builds the
request (so bad arguments raise `InvalidRequestError` before anything is sent) and returns the
declared result model. Retrying follows the kind: a READ is retried on another node after an
ambiguous failure, a write never is (aspen.client.client).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from aspen.api.errors import InvalidRequestError, ServiceUnavailableError
from aspen.api.operation import OPERATIONS, Kind, OpSpec
from aspen.api.wire import TIMED_OUT
from aspen.client.coord_wait import call_waiting

if TYPE_CHECKING:
    from aspen.api import messages as m

R = TypeVar("R")


def _timed_out(result: Any) -> bool:
    """The node's wait (one slice of it) ran out: re-issue with the time left."""
    return getattr(result, "status", None) == TIMED_OUT


def _build(spec: OpSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    names = [p.name for p in spec.params()]
    if len(args) > len(names):
        raise InvalidRequestError(f"{spec.client}() takes at most {len(names)} arguments ({len(args)} given)")
    for name, value in zip(names, args, strict=False):
        if name in kwargs:
            raise InvalidRequestError(f"{spec.client}() got {name!r} twice")
        kwargs[name] = value
    return spec.request(**kwargs)


def flat_method(spec: OpSpec) -> Callable[..., Awaitable[Any]]:
    async def method(self: OperationCalls, *args: Any, **kwargs: Any) -> Any:
        return await self.call(_build(spec, args, kwargs))

    method.__name__ = method.__qualname__ = spec.client or spec.name
    method.__doc__ = f"`{spec.name}` ({', '.join(p.name for p in spec.params())}) -> {spec.result.__name__}"
    return method


class OperationCalls:
    """Mixed into `AspenClient`: `call` plus the declared flat methods (looked up by name on first
    use, so an operation declared after import, as a test does, has its method too)."""

    if TYPE_CHECKING:

        async def request(self, request: m.Request, *, timeout: float | None = None) -> m.Response: ...

    async def call(self, request: Any) -> Any:
        """Send a declared request; its declared result (a non-error response of another type is the
        node's fault: `ServiceUnavailableError`)."""
        spec = OPERATIONS.get(request.type)
        if spec is not None and spec.kind is Kind.BLOCKING:
            # The node waits at most one slice per request: re-issue with the time left.
            return await call_waiting(
                self,  # type: ignore[arg-type]
                lambda left_ms: request.model_copy(update={spec.wait_field: left_ms}),
                spec.result,
                getattr(request, spec.wait_field),
                _timed_out,
            )
        response = await self.request(request)
        if spec is not None and not isinstance(response, spec.result):
            raise ServiceUnavailableError(f"unexpected response {response.type} to {request.type}")
        return response

    if not TYPE_CHECKING:  # mypy sees the hand-written methods only; the declared ones are dynamic

        def __getattr__(self, name: str) -> Any:
            if not name.startswith("_"):
                for spec in OPERATIONS.values():
                    if spec.client == name:
                        method = flat_method(spec)
                        setattr(type(self), name, method)
                        return method.__get__(self, type(self))
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


__all__ = ["OperationCalls", "flat_method"]
