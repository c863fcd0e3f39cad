"""Bad arguments to the Python client raise `InvalidRequestError` (an `AspenError`) with a precise
message, before anything is sent: never pydantic's `ValidationError`, msgpack's `OverflowError`
or a `UnicodeEncodeError` (issue 19, item 9). Pure: the peer only counts what reaches it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from pydantic import ValidationError

from aspen.api import locks as w
from aspen.api import messages as m
from aspen.api.errors import AspenError, ErrorCode, InvalidRequestError
from aspen.api.limits import MAX_BATCH_READ_KEYS, MAX_LEASE_TTL_SECONDS, MAX_SCAN_LIMIT
from aspen.client import AspenClient, LockNotAcquired, LockTimeout
from aspen.client.locks import Lock, LockMixin
from aspen.kv import limits as kv_limits
from aspen.rpc.ticket import ClusterTicket, TicketPeer


class CountingPeer:
    def __init__(self) -> None:
        self.sent = 0

    async def request(self, _frame: bytes, *, timeout: float) -> bytes:
        self.sent += 1
        raise AssertionError("nothing should be sent")

    def describe(self) -> str:
        return "counting peer"

    async def aclose(self) -> None:
        pass


def refused(call: Callable[[AspenClient], Awaitable[Any]]) -> str:
    """The message of the `InvalidRequestError` that `call` raises, checking nothing was sent."""
    ticket = ClusterTicket(cookie="c", peers=(TicketPeer(endpoint_id="ab" * 32, addrs=("127.0.0.1:1",)),))
    client = AspenClient(ticket, timeout=1)
    peer = CountingPeer()
    client._peers = [peer]  # type: ignore[list-item]
    with pytest.raises(AspenError) as caught:
        asyncio.run(call(client))
    assert isinstance(caught.value, InvalidRequestError), repr(caught.value)
    assert not isinstance(caught.value, ValidationError | OverflowError | UnicodeEncodeError)
    assert caught.value.code is ErrorCode.INVALID_REQUEST and peer.sent == 0
    return caught.value.message


def test_a_lease_ttl_beyond_64_bits_names_the_allowed_range() -> None:
    message = refused(lambda c: c.lease_grant(10**30))
    assert f"lease ttl must be between 1 and {MAX_LEASE_TTL_SECONDS} seconds" in message


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.set("bad\udcff", b"v"),
        lambda c: c.get("bad\udcff"),
        lambda c: c.delete("bad\udcff"),
        lambda c: c.set_with_lease("bad\udcff", b"v", 1),
    ],
)
def test_a_key_without_utf8_form_is_refused_by_name(call: Callable[[AspenClient], Awaitable[Any]]) -> None:
    assert refused(call) == "key is not valid UTF-8"


def test_a_nested_string_without_utf8_form_is_named_by_its_path() -> None:
    ops = [m.SetOperation(key="ok", value=b""), m.SetOperation(key="x\udcff", value=b"")]
    assert refused(lambda c: c.batch_write(ops)) == "operations[1].key is not valid UTF-8"


@pytest.mark.parametrize(
    ("call", "where"),
    [
        (lambda c: c.scan("", limit=-1), "ScanKeys.limit"),
        (lambda c: c.lease_ttl(-1), "LeaseTimeToLive.lease_id"),
        (lambda c: c.lease_revoke(-5), "LeaseRevoke.lease_id"),
        (lambda c: c.lease_grant(30, lease_id=-1), "LeaseGrant.lease_id"),
        (lambda c: c.lock_acquire("k", "h", ttl_ms=-1), "LockAcquire.ttl_ms"),
        (lambda c: c.lock_acquire("k", "h", ttl_ms=1000, timeout_ms=-1), "LockAcquire.timeout_ms"),
        (lambda c: c.lease_keepalive(2**64), "LeaseKeepalive.lease_id"),
    ],
)
def test_negative_and_oversized_integers_are_invalid_requests(
    call: Callable[[AspenClient], Awaitable[Any]], where: str
) -> None:
    message = refused(call)
    assert message.startswith(f"invalid {where}: "), message


def test_scan_limit_zero_is_refused_with_the_allowed_range() -> None:
    # 0 is not etcd's "unlimited" here: every page is bounded, and an empty page had no token.
    assert refused(lambda c: c.scan("", limit=0)).endswith(f"must be between 1 and {MAX_SCAN_LIMIT} (got 0)")
    assert refused(lambda c: c.scan("", limit=MAX_SCAN_LIMIT + 1)).endswith(f"(got {MAX_SCAN_LIMIT + 1})")


def test_batch_read_is_limited_to_the_documented_size() -> None:
    keys = [f"k{i}" for i in range(10_001)]
    message = refused(lambda c: c.batch_read(keys))
    assert message.endswith(f"at most {MAX_BATCH_READ_KEYS} keys per batch read (got 10001)")


def test_the_wire_limits_equal_the_state_machines() -> None:
    # Repeated in aspen.api.limits because the CLI must not import the state machine.
    assert MAX_BATCH_READ_KEYS == kv_limits.MAX_BATCH_OPS
    assert MAX_SCAN_LIMIT == kv_limits.MAX_SCAN_RESULTS
    assert MAX_LEASE_TTL_SECONDS == kv_limits.MAX_LEASE_TTL_SECONDS


def test_frames_from_the_wire_are_not_validated_through_the_client_constructor() -> None:
    # WireModel.__init__ converts errors for direct construction only; pydantic must keep using its
    # own fast path for model_validate (see aspen.api.wire), and its errors stay ValidationError.
    assert m.ScanEntry.__pydantic_custom_init__ is False
    with pytest.raises(ValidationError):
        m.ScanKeys.model_validate({"type": "ScanKeys", "limit": 0})


class TimingOutNode(LockMixin):
    timeout = 1.0

    async def request(self, request: Any, *, timeout: float | None = None) -> Any:
        return w.LockResult(
            is_success=False,
            holder_id="other",
            deadline_ms=9,
            error="operation timed out: x",
            status="timed_out",
        )


class RefusingNode(TimingOutNode):
    async def request(self, request: Any, *, timeout: float | None = None) -> Any:
        return w.LockResult(is_success=False, error="ttl_ms must be positive")


def test_a_lock_wait_that_runs_out_is_a_timeout_error() -> None:
    lock = Lock(TimingOutNode(), "k", ttl_ms=1_000, holder_id="h", timeout_ms=0)
    with pytest.raises(LockTimeout) as caught:
        asyncio.run(lock.acquire())
    assert caught.value.code is ErrorCode.TIMEOUT and isinstance(caught.value, LockNotAcquired)
    # Any other refusal keeps its own class and code.
    other = Lock(RefusingNode(), "k", ttl_ms=1_000, holder_id="h", timeout_ms=0)
    with pytest.raises(LockNotAcquired) as refused_:
        asyncio.run(other.acquire())
    assert not isinstance(refused_.value, LockTimeout)
    assert refused_.value.code is not ErrorCode.TIMEOUT
