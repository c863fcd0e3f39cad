"""`aspen-cli kv …`. Exit 1 on a domain failure (a failed write, a CAS conflict), in human and JSON
mode alike (the original Aspen exited 0 on some of these failures in JSON mode; a script should not
have to parse the output to learn that a write failed)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from aspen.api import messages as m
from aspen.cli.context import command
from aspen.cli.output import Output, human_bytes, json_bytes
from aspen.client.client import AspenClient

MAX_CLI_BATCH = 100


@click.group("kv")
def kv_group() -> None:
    """Read and write keys."""


@command(kv_group, "get")
@click.argument("key")
@click.option("--stale", is_flag=True, help="Read this node's local state (fast, possibly stale).")
async def get(client: AspenClient, key: str, stale: bool) -> Output:
    """Print the value of KEY."""
    res = await client.read(key, stale=stale)
    doc = {"key": key, "does_exist": res.was_found, "value": json_bytes(res.value)}
    human = human_bytes(res.value) if res.value is not None else f"Key '{key}' not found"
    return Output(doc, human)


def _read_value(value: str | None, file: str | None) -> bytes:
    if value is not None and file is not None:
        raise click.UsageError("give VALUE or --file, not both")
    if file == "-" or value == "-":
        return sys.stdin.buffer.read()
    if file is not None:
        try:
            return Path(file).read_bytes()
        except OSError as err:
            raise click.BadParameter(f"cannot read {file}: {err.strerror}", param_hint="--file") from None
    if value is None:
        raise click.UsageError("missing VALUE (or --file PATH, or - for stdin)")
    return value.encode()


@command(kv_group, "set")
@click.argument("key")
@click.argument("value", required=False)
@click.option("-f", "--file", "file", help="Read the value (raw bytes) from a file, or - for stdin.")
@click.option(
    "--lease",
    "lease_id",
    type=click.IntRange(min=0, max=2**64 - 1),
    help="Attach KEY to this lease: it is deleted when the lease expires or is revoked.",
)
async def set_(
    client: AspenClient, key: str, value: str | None, file: str | None, lease_id: int | None
) -> Output:
    """Set KEY to VALUE."""
    data = _read_value(value, file)
    res = await (client.set(key, data) if lease_id is None else client.set_with_lease(key, data, lease_id))
    status = "success" if res.is_success else "failed"
    doc: dict[str, object] = {"status": status, "key": key}
    if res.error:
        doc["error"] = res.error
    return Output(
        doc, "OK" if res.is_success else f"Write failed: {res.error}", compact=True, ok=res.is_success
    )


@command(kv_group, "delete")
@click.argument("key")
async def delete(client: AspenClient, key: str) -> Output:
    """Delete KEY (deleting a missing key is not an error)."""
    res = await client.delete(key)
    if res.error:
        return Output(
            {"status": "failed", "key": key, "error": res.error},
            f"Delete failed: {res.error}",
            compact=True,
            ok=False,
        )
    doc = {"status": "success", "key": key, "was_deleted": res.was_deleted}
    return Output(doc, "Deleted" if res.was_deleted else "Key not found", compact=True)


def _cas_output(key: str, res: m.CompareAndSwapResult, success_text: str) -> Output:
    if res.error:
        return Output(
            {"status": "failed", "key": key, "is_success": False, "error": res.error},
            f"Failed: {res.error}",
            compact=True,
            ok=False,
        )
    status = "success" if res.is_success else "conflict"
    doc: dict[str, object] = {"status": status, "key": key, "is_success": res.is_success}
    if not res.is_success:
        doc["actual_value"] = json_bytes(res.actual_value)
    return Output(
        doc,
        success_text if res.is_success else "CONFLICT: value has changed",
        compact=True,
        ok=res.is_success,
    )


@command(kv_group, "cas")
@click.argument("key")
@click.option("--expected", help="Current value required for the swap; omit to create only if absent.")
@click.option("--new-value", required=True, help="Value to write.")
async def cas(client: AspenClient, key: str, expected: str | None, new_value: str) -> Output:
    """Compare-and-swap KEY."""
    res = await client.compare_and_swap(
        key, expected.encode() if expected is not None else None, new_value.encode()
    )
    return _cas_output(key, res, "OK")


@command(kv_group, "cad")
@click.argument("key")
@click.option("--expected", required=True, help="Value KEY must hold to be deleted.")
async def cad(client: AspenClient, key: str, expected: str) -> Output:
    """Compare-and-delete KEY."""
    res = await client.compare_and_delete(key, expected.encode())
    return _cas_output(key, res, "Deleted")


def _cut(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


@command(kv_group, "scan")
@click.argument("prefix", default="")
@click.option(
    "--limit",
    type=click.IntRange(min=1, max=10_000),
    default=100,
    show_default=True,
    help="Keys per page (1..10000; etcd's 0 = unlimited is refused: pages are always bounded).",
)
@click.option("--token", help="Continuation token from a previous page.")
@click.option("--stale", is_flag=True, help="Read this node's local state (fast, possibly stale).")
@click.option(
    "--include-internal",
    is_flag=True,
    help="Also list keys under the reserved prefixes (__coord:, _system:); needed to scan inside one.",
)
async def scan(
    client: AspenClient, prefix: str, limit: int, token: str | None, stale: bool, include_internal: bool
) -> Output:
    """List keys starting with PREFIX, in order. Keys under the reserved prefixes (__coord:,
    _system:), where the coordination layers and the node keep their records, are hidden unless
    --include-internal is given; they are read-only either way."""
    res = await client.scan(
        prefix, limit=limit, continuation_token=token, stale=stale, include_internal=include_internal
    )
    doc = {
        "entries": [{"key": e.key, "value": json_bytes(e.value)} for e in res.entries],
        "count": res.count,
        "continuation_token": res.continuation_token,
    }
    if not res.entries:
        human = "No keys found"
    else:
        lines = [f"Found {res.count} key(s)", ""]
        lines += [f"{e.key}: {_cut(human_bytes(e.value))}" for e in res.entries]
        if res.continuation_token:
            lines += ["", f"More results available. Use --token {res.continuation_token}"]
        human = "\n".join(lines)
    return Output(doc, human)


@command(kv_group, "batch-read")
@click.argument("keys", nargs=-1, required=True)
async def batch_read(client: AspenClient, keys: tuple[str, ...]) -> Output:
    """Read up to 100 keys in one request."""
    if len(keys) > MAX_CLI_BATCH:
        raise click.UsageError(f"at most {MAX_CLI_BATCH} keys per batch (got {len(keys)})")
    res = await client.batch_read(keys)
    if not res.is_success or res.values is None:
        raise click.ClickException(f"batch read failed: {res.error}")
    results = [
        {"key": k, "does_exist": v is not None, "value": json_bytes(v)}
        for k, v in zip(keys, res.values, strict=True)
    ]
    lines = [f"Batch read {len(keys)} key(s)"]
    lines += [
        f"{k}: {human_bytes(v) if v is not None else '<not found>'}"
        for k, v in zip(keys, res.values, strict=True)
    ]
    return Output({"count": len(keys), "results": results}, "\n".join(lines))


def _pair(text: str) -> m.SetOperation:
    key, sep, value = text.partition("=")
    if not sep:
        raise click.BadParameter(f"{text!r} is not KEY=VALUE", param_hint="PAIRS")
    if not key:
        raise click.BadParameter(f"{text!r} has an empty key", param_hint="PAIRS")
    return m.SetOperation(key=key, value=value.encode())


@command(kv_group, "batch-write")
@click.argument("pairs", nargs=-1, required=True)
async def batch_write(client: AspenClient, pairs: tuple[str, ...]) -> Output:
    """Set up to 100 KEY=VALUE pairs atomically."""
    if len(pairs) > MAX_CLI_BATCH:
        raise click.UsageError(f"at most {MAX_CLI_BATCH} pairs per batch (got {len(pairs)})")
    ops = [_pair(p) for p in pairs]
    res = await client.batch_write(ops)
    doc: dict[str, object] = {"is_success": res.is_success, "operations_applied": res.operations_applied}
    if res.error:
        doc["error"] = res.error
    human = (
        f"OK: {res.operations_applied} operation(s) applied"
        if res.is_success
        else f"Batch write failed: {res.error}"
    )
    return Output(doc, human, ok=res.is_success)
