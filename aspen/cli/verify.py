"""`aspen-cli verify …`: end-to-end checks of a running cluster.

`verify kv` writes `--count` keys, waits until the leader reports every voter has matched the
writes (polling its Raft metrics with a deadline, instead of the original's fixed 100 ms sleep),
reads them back linearizably, and deletes them unless `--no-cleanup`. JSON:
`{"name":"kv-replication","passed","message","duration_ms","details","timing","nodes"}`; exit 1
unless passed. `verify blob` adds `--size` random bytes (tagged so GC keeps them during the check),
reads them back through the cluster, compares, and removes the tag unless `--no-cleanup`.
"""

from __future__ import annotations

import asyncio
import io
import os
import time
from typing import Any

import blake3
import click

from aspen.api import messages as m
from aspen.api.errors import AspenError
from aspen.cli.context import command
from aspen.cli.output import Output
from aspen.client.client import AspenClient

#: How long `verify kv` waits for the followers to match the leader, and how often it looks.
REPLICATION_WAIT_S = 10.0
REPLICATION_POLL_S = 0.05
#: `verify blob` holds the blob in memory twice (written and read back): keep it modest.
MAX_VERIFY_BLOB = 64 * 1024 * 1024


@click.group("verify")
def verify_group() -> None:
    """Check that a running cluster works end to end."""


def _ms(since: float) -> int:
    return int((time.monotonic() - since) * 1000)


async def _replication(
    client: AspenClient, errors: list[str]
) -> tuple[bool, list[str], list[dict[str, Any]]]:
    """Poll the contacted node's Raft metrics until every voter matched the leader's applied index
    as first seen (all writes were acknowledged before, so that index covers them)."""
    deadline = time.monotonic() + REPLICATION_WAIT_S
    target: int | None = None
    metrics: m.RaftMetrics | None = None
    for _ in range(int(REPLICATION_WAIT_S / REPLICATION_POLL_S) + 1):
        try:
            metrics = await client.raft_metrics()
        except AspenError as err:
            errors.append(f"Failed to get replication status: {err}")
            return False, [], []
        if metrics.replication is None:
            # A follower answered: it cannot see the others' progress (same as the original).
            leader = metrics.current_leader if metrics.current_leader is not None else "none"
            return True, [f"leader: {leader}, last_applied: {metrics.last_applied_index or 0}"], []
        if target is None:
            target = metrics.last_applied_index or 0
        if all((p.matched_index or 0) >= target for p in metrics.replication):
            break
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(REPLICATION_POLL_S)  # polling a condition with a deadline
    assert metrics is not None and metrics.replication is not None and target is not None
    details: list[str] = []
    nodes: list[dict[str, Any]] = []
    for p in metrics.replication:
        matched = p.matched_index or 0
        status = "OK" if matched >= target else "BEHIND"
        details.append(f"node {p.node_id}: matched={matched}, last_applied={target} [{status}]")
        nodes.append(
            {
                "node_id": p.node_id,
                "matched_index": matched,
                "leader_applied": target,
                "lag": max(0, target - matched),
                "status": status,
            }
        )
    return all(n["status"] == "OK" for n in nodes), details, nodes


@command(verify_group, "kv")
@click.option("--count", type=click.IntRange(min=1, max=1000), default=5, show_default=True)
@click.option("--prefix", default="__verify_", show_default=True)
@click.option("--no-cleanup", is_flag=True, help="Leave the test keys in place.")
async def verify_kv(client: AspenClient, count: int, prefix: str, no_cleanup: bool) -> Output:
    """Write, replicate, read back and delete COUNT test keys."""
    started = time.monotonic()
    stamp = int(time.time())
    keys = [f"{prefix}test_{stamp}_{i}" for i in range(count)]
    errors: list[str] = []
    timing: dict[str, int] = {}

    phase = time.monotonic()
    for i, key in enumerate(keys):
        try:
            res = await client.set(key, f"verify_value_{i}".encode())
        except AspenError as err:
            errors.append(f"Write {key} error: {err}")
            continue
        if not res.is_success:
            errors.append(f"Write {key} failed: {res.error}")
    timing["write_ms"] = _ms(phase)

    phase = time.monotonic()
    replication_ok, replication, nodes = await _replication(client, errors)
    timing["replicate_ms"] = _ms(phase)

    phase = time.monotonic()
    read_ok = 0
    for i, key in enumerate(keys):
        try:
            value = await client.get(key)
        except AspenError as err:
            errors.append(f"Read {key} error: {err}")
            continue
        if value is None:
            errors.append(f"Key {key} not found after write")
        elif value != f"verify_value_{i}".encode():
            errors.append(f"Key {key} value mismatch")
        else:
            read_ok += 1
    timing["read_ms"] = _ms(phase)

    phase = time.monotonic()
    if not no_cleanup:
        for key in keys:
            try:
                await client.delete(key)
            except AspenError as err:
                errors.append(f"Delete {key} error: {err}")
    timing["cleanup_ms"] = _ms(phase)

    passed = not errors and read_ok == count and replication_ok
    if passed:
        message = f"{read_ok}/{count} keys verified, replication OK"
    elif not replication_ok:
        message = f"{read_ok}/{count} keys verified, replication BEHIND"
    else:
        message = f"{read_ok}/{count} keys verified, {len(errors)} errors"
    parts = []
    if replication:
        parts.append("replication: " + ", ".join(replication))
    if errors:
        parts.append("errors: " + "; ".join(errors))
    duration_ms = _ms(started)
    doc = {
        "name": "kv-replication",
        "passed": passed,
        "message": message,
        "duration_ms": duration_ms,
        "details": " | ".join(parts) if parts else None,
        "timing": timing,
        "nodes": nodes or None,
    }
    human = f"[{'PASS' if passed else 'FAIL'}] kv-replication ({duration_ms} ms): {message}"
    if parts:
        human += "\n  " + "\n  ".join(parts)
    return Output(doc, human, ok=passed)


@command(verify_group, "blob")
@click.option("--size", type=click.IntRange(min=1, max=MAX_VERIFY_BLOB), default=1024, show_default=True)
@click.option("--no-cleanup", is_flag=True, help="Keep the test blob's protection tag.")
async def verify_blob(client: AspenClient, size: int, no_cleanup: bool) -> Output:
    """Add a blob of SIZE random bytes, read it back through the cluster and compare."""
    started = time.monotonic()
    data = os.urandom(size)
    digest = blake3.blake3(data).hexdigest()
    tag = f"__verify_blob_{int(time.time())}"
    errors: list[str] = []
    timing: dict[str, int] = {}

    phase = time.monotonic()
    try:
        added = await client.add_blob(data, tag=tag)
        if not added.is_success:
            errors.append(f"Add failed: {added.error}")
        elif added.hash != digest:
            errors.append(f"Add returned hash {added.hash}, expected {digest}")
    except AspenError as err:
        errors.append(f"Add error: {err}")
    timing["add_ms"] = _ms(phase)

    phase = time.monotonic()
    if not errors:
        try:
            buf = io.BytesIO()
            await client.read_blob_into(digest, buf)
            if buf.getvalue() != data:
                errors.append(f"Read back {len(buf.getvalue())} bytes that differ from the {size} written")
        except AspenError as err:
            errors.append(f"Read error: {err}")
    timing["read_ms"] = _ms(phase)

    phase = time.monotonic()
    if not no_cleanup and not errors:
        try:
            res = await client.unprotect_blob(tag)  # unprotected, the test blob is collected by GC
            if not res.is_success:
                errors.append(f"Cleanup failed: {res.error}")
        except AspenError as err:
            errors.append(f"Cleanup error: {err}")
    timing["cleanup_ms"] = _ms(phase)

    passed = not errors
    message = f"{size} bytes stored and read back, hash {digest[:16]}…" if passed else "; ".join(errors)
    duration_ms = _ms(started)
    doc = {
        "name": "blob-storage",
        "passed": passed,
        "message": message,
        "duration_ms": duration_ms,
        "details": f"hash: {digest}, tag: {tag}",
        "timing": timing,
    }
    human = f"[{'PASS' if passed else 'FAIL'}] blob-storage ({duration_ms} ms): {message}"
    return Output(doc, human, ok=passed)
