"""Lease requests at the wire edge: valid ones decode to their models, bad ones to INVALID_REQUEST."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from aspen.api import lease_messages as lm
from aspen.api import messages as m
from aspen.api.codec import decode_request, decode_response, encode_request, encode_response
from aspen.api.errors import InvalidRequestError
from aspen.api.limits import PROTOCOL_VERSION


def frame(body: dict[str, Any]) -> bytes:
    packed: bytes = msgpack.packb({"v": PROTOCOL_VERSION, "req": body}, use_bin_type=True)
    return packed


@pytest.mark.parametrize(
    "request_",
    [
        lm.LeaseGrant(ttl_seconds=10),
        lm.LeaseGrant(ttl_seconds=-5, lease_id=2**64 - 1),  # reaches the node, which explains the error
        lm.LeaseRevoke(lease_id=3),
        lm.LeaseKeepalive(lease_id=3),
        lm.LeaseTimeToLive(lease_id=3, include_keys=True, stale=True),
        lm.LeaseList(),
        lm.WriteKeyWithLease(key="k", value=b"\x00v", lease_id=3),
    ],
)
def test_lease_requests_round_trip(request_: Any) -> None:
    assert decode_request(encode_request(request_)) == request_


@pytest.mark.parametrize(
    "body",
    [
        {"type": "LeaseGrant"},  # ttl missing
        {"type": "LeaseGrant", "ttl_seconds": "10"},  # strict: no str -> int
        {"type": "LeaseRevoke", "lease_id": -1},
        {"type": "LeaseKeepalive", "lease_id": 1.5},
        {"type": "LeaseTimeToLive", "lease_id": 1, "extra": True},
        {"type": "WriteKeyWithLease", "key": "k", "value": "not bytes", "lease_id": 1},
    ],
)
def test_malformed_lease_requests_are_invalid_requests(body: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequestError):
        decode_request(frame(body))


def test_lease_results_round_trip() -> None:
    results: list[m.Response] = [
        lm.LeaseGrantResult(is_success=True, lease_id=1, ttl_seconds=10),
        lm.LeaseRevokeResult(is_success=True, keys_deleted=2),
        lm.LeaseKeepaliveResult(is_success=False, error="lease not found"),
        lm.LeaseTimeToLiveResult(
            is_success=True, lease_id=1, granted_ttl_seconds=10, remaining_ttl_seconds=9, keys=["a"]
        ),
        lm.LeaseListResult(
            is_success=True,
            leases=[
                lm.LeaseListEntry(
                    lease_id=1, granted_ttl_seconds=10, remaining_ttl_seconds=0, attached_keys=3
                )
            ],
        ),
    ]
    for result in results:
        assert decode_response(encode_response(result)) == result


def test_lease_writes_are_forwarded_and_reads_retryable() -> None:
    from aspen.client.client import IDEMPOTENT
    from aspen.node.service import FORWARDED

    assert {"LeaseGrant", "LeaseRevoke", "LeaseKeepalive", "WriteKeyWithLease"} <= FORWARDED
    assert {"LeaseTimeToLive", "LeaseList"} <= IDEMPOTENT
    assert not (lm.LEASE_WRITES & IDEMPOTENT)
