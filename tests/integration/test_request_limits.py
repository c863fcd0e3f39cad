"""The node enforces the documented request limits itself, whatever a client builds (issue 19,
item 9): a BatchRead of more than 100 keys and a scan limit of 0 are INVALID_REQUEST. The requests
are built with `model_construct`, which skips the client-side check, as another client might."""

from __future__ import annotations

import asyncio

import pytest
from harness import NodeProcess, cli

from aspen.api import messages as m
from aspen.api.errors import InvalidRequestError
from aspen.client import AspenClient

pytestmark = pytest.mark.integration


def _sent_unchecked(node: NodeProcess, request: m.Request) -> InvalidRequestError | m.Response:
    async def go() -> InvalidRequestError | m.Response:
        async with AspenClient(node.ticket, timeout=20) as client:
            try:
                return await client.request(request)
            except InvalidRequestError as err:
                return err

    return asyncio.run(go())


def test_a_batch_read_of_more_than_100_keys_is_an_invalid_request(node: NodeProcess) -> None:
    keys = [f"k{i}" for i in range(10_001)]
    res = _sent_unchecked(node, m.BatchRead.model_construct(keys=keys, stale=False))
    assert isinstance(res, InvalidRequestError), res
    assert "at most 100 keys per batch read (got 10001)" in res.message
    ok = _sent_unchecked(node, m.BatchRead(keys=keys[:100]))
    assert isinstance(ok, m.BatchReadResult) and ok.is_success and ok.values == [None] * 100


def test_a_scan_limit_of_zero_is_an_invalid_request(node: NodeProcess) -> None:
    assert cli(node.ticket, "kv", "set", "lim/a", "1").code == 0
    bad = m.ScanKeys.model_construct(
        prefix="lim/", limit=0, continuation_token=None, stale=False, include_internal=False
    )
    res = _sent_unchecked(node, bad)
    assert isinstance(res, InvalidRequestError), res
    assert "limit: must be between 1 and 10000 (got 0)" in res.message
    one = _sent_unchecked(node, m.ScanKeys(prefix="lim/", limit=1))
    assert isinstance(one, m.ScanResult) and [e.key for e in one.entries] == ["lim/a"]
