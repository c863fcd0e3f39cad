"""`aspen-cli blob …`: JSON shapes and exit codes of the original Aspen; exit 1 whenever
the command's own success field is false. Transfers of more than a few MB show a progress bar on
stderr when it is a terminal."""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import click

from aspen.api import blob_messages as b
from aspen.cli.context import command
from aspen.cli.output import Output, human_bytes
from aspen.client.client import AspenClient

#: Show a progress bar for transfers above this size.
PROGRESS_MIN_BYTES = 8 * 1024 * 1024
#: stdin is copied to a temporary file in chunks of this size (the upload needs its size up front).
SPOOL_CHUNK = 4 * 1024 * 1024


class ProgressBar:
    """progress(done, total) → a click progress bar on stderr, if it is a TTY and the transfer is
    large; called from the transfer's worker thread, at most ~10 redraws a second."""

    def __init__(self, label: str) -> None:
        self._label = label
        self._bar: Any = None
        self._shown = 0
        self._last = 0.0
        self._lock = threading.Lock()

    def __call__(self, done: int, total: int) -> None:
        if total < PROGRESS_MIN_BYTES or not sys.stderr.isatty():
            return
        with self._lock:
            now = time.monotonic()
            if self._bar is None:
                self._bar = click.progressbar(length=total, label=self._label, file=sys.stderr)
                self._bar.__enter__()
            if done < total and now - self._last < 0.1:
                return
            self._last = now
            self._bar.update(max(0, done - self._shown))
            self._shown = done

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None


@click.group("blob")
def blob_group() -> None:
    """Content-addressed blobs (BLAKE3), replicated across the cluster."""


def _add_output(res: b.AddBlobResult) -> Output:
    doc = {
        "is_success": res.is_success,
        "hash": res.hash,
        "size_bytes": res.size_bytes,
        "was_new": res.was_new,
        "error": res.error,
    }
    if res.is_success:
        human = f"{res.hash} ({res.size_bytes} bytes, {'added' if res.was_new else 'exists'})"
    else:
        human = f"Add failed: {res.error}"
    return Output(doc, human, ok=res.is_success)


@command(blob_group, "add")
@click.argument("file", required=False)
@click.option("--data", help="Add this string instead of a file.")
@click.option("--tag", help="Also protect the blob with tag user:TAG.")
async def add(client: AspenClient, file: str | None, data: str | None, tag: str | None) -> Output:
    """Add FILE (or - for stdin, or --data) to the blob store; prints its hash."""
    if (file is None) == (data is None):
        raise click.UsageError("give FILE (or - for stdin) or --data, exactly one")
    bar = ProgressBar("upload")
    try:
        if data is not None:
            res = await client.add_blob(data.encode(), tag=tag, progress=bar)
        elif file == "-":
            with tempfile.TemporaryDirectory(prefix="aspen-blob-") as tmp:
                spool = Path(tmp) / "stdin"
                with open(spool, "wb") as out:
                    shutil.copyfileobj(sys.stdin.buffer, out, SPOOL_CHUNK)
                res = await client.add_blob(path=spool, tag=tag, progress=bar)
        else:
            path = Path(file or "")
            if not path.is_file():
                raise click.BadParameter(f"{file} is not a readable file", param_hint="FILE")
            res = await client.add_blob(path=path, tag=tag, progress=bar)
    finally:
        bar.close()
    return _add_output(res)


@command(blob_group, "get")
@click.argument("hash_", metavar="HASH")
@click.option("-o", "--output", "output", help="Write the blob to this file (- for stdout).")
async def get(client: AspenClient, hash_: str, output: str | None) -> Output:
    """Fetch a blob by HASH (from any node: a node without it fetches it from a replica)."""
    bar = ProgressBar("download")
    try:
        if output == "-":
            res = await client.get_blob(hash_)
            if res.was_found:
                if res.data is not None:
                    sys.stdout.buffer.write(res.data)
                else:
                    await client.read_blob_into(hash_, sys.stdout.buffer, first=res, progress=bar)
                sys.stdout.buffer.flush()
                return Output({}, "", printed=True)  # stdout holds the blob: no JSON after it
        elif output is not None:
            res = await client.get_blob(hash_, dest=Path(output), progress=bar)
        else:
            res = await client.get_blob(hash_)
    finally:
        bar.close()
    doc = {"was_found": res.was_found, "size_bytes": res.size_bytes, "error": res.error}
    if not res.was_found:
        return Output(doc, f"Blob not found: {res.error or hash_}", ok=False)
    if output is not None:
        return Output(doc, f"Wrote {res.size_bytes} bytes to {output}")
    if res.data is not None:
        return Output(doc, human_bytes(res.data))
    return Output(doc, f"<binary: {res.size_bytes} bytes> (use -o FILE to save it)")


@command(blob_group, "has")
@click.argument("hash_", metavar="HASH")
async def has(client: AspenClient, hash_: str) -> Output:
    """Does the cluster hold blob HASH?"""
    res = await client.has_blob(hash_)
    doc = {"hash": hash_, "does_exist": res.does_exist, "error": res.error}
    return Output(doc, "exists" if res.does_exist else "not found", ok=res.does_exist)


@command(blob_group, "ticket")
@click.argument("hash_", metavar="HASH")
async def ticket(client: AspenClient, hash_: str) -> Output:
    """Print a blob ticket (hash, size and providers) for `blob download`."""
    res = await client.blob_ticket(hash_)
    doc = {"is_success": res.is_success, "ticket": res.ticket, "error": res.error}
    human = res.ticket if res.is_success and res.ticket else f"Ticket failed: {res.error}"
    return Output(doc, human, ok=res.is_success)


@command(blob_group, "list")
@click.option("--max-results", type=click.IntRange(min=0, max=1000), default=100, show_default=True)
@click.option("--token", help="Continuation token from a previous page.")
async def list_(client: AspenClient, max_results: int, token: str | None) -> Output:
    """List the blobs stored on the contacted node, in hash order."""
    res = await client.list_blobs(limit=max_results, continuation_token=token)
    doc = {
        "blobs": [{"hash": e.hash, "size_bytes": e.size_bytes} for e in res.blobs],
        "count": res.count,
        "has_more": res.has_more,
        "continuation_token": res.continuation_token,
        "error": res.error,
    }
    if res.error:
        return Output(doc, f"List failed: {res.error}", ok=False)
    if not res.blobs:
        return Output(doc, "No blobs found")
    lines = [f"Blobs ({res.count})", *(f"{e.hash}  {e.size_bytes}" for e in res.blobs)]
    if res.has_more:
        lines.append(f"More results available. Use --token {res.continuation_token}")
    return Output(doc, "\n".join(lines))


@command(blob_group, "protect")
@click.argument("hash_", metavar="HASH")
@click.option("--tag", required=True, help="Protect with tag user:TAG.")
async def protect(client: AspenClient, hash_: str, tag: str) -> Output:
    """Protect blob HASH from garbage collection with a user tag."""
    res = await client.protect_blob(hash_, tag)
    doc = {"operation": "protect", "is_success": res.is_success, "error": res.error}
    return Output(doc, "OK" if res.is_success else f"Protect failed: {res.error}", ok=res.is_success)


@command(blob_group, "unprotect")
@click.argument("tag")
async def unprotect(client: AspenClient, tag: str) -> Output:
    """Remove user tag TAG (a missing tag is not an error)."""
    res = await client.unprotect_blob(tag)
    doc = {"operation": "unprotect", "is_success": res.is_success, "error": res.error}
    return Output(doc, "OK" if res.is_success else f"Unprotect failed: {res.error}", ok=res.is_success)


@command(blob_group, "delete")
@click.argument("hash_", metavar="HASH")
@click.option("--force", is_flag=True, help="Accepted for compatibility; delete always removes user tags.")
async def delete(client: AspenClient, hash_: str, force: bool) -> Output:
    """Drop the contacted node's tags of blob HASH; GC removes the bytes after the grace period."""
    res = await client.delete_blob(hash_, force=force)
    doc = {"is_success": res.is_success, "error": res.error}
    return Output(doc, "deleted" if res.is_success else f"Delete failed: {res.error}", ok=res.is_success)


def _download_output(res: b.DownloadBlobResult) -> Output:
    doc = {"is_success": res.is_success, "hash": res.hash, "size_bytes": res.size_bytes, "error": res.error}
    human = (
        f"Downloaded {res.hash} ({res.size_bytes} bytes)"
        if res.is_success
        else f"Download failed: {res.error}"
    )
    return Output(doc, human, ok=res.is_success)


@command(blob_group, "download")
@click.argument("ticket_", metavar="TICKET")
@click.option("--tag", help="Protect the downloaded blob with tag user:TAG.")
async def download(client: AspenClient, ticket_: str, tag: str | None) -> Output:
    """Have the contacted node fetch the blob named by a blob TICKET."""
    return _download_output(await client.download_blob(ticket_, tag=tag))


@command(blob_group, "download-by-hash")
@click.argument("hash_", metavar="HASH")
@click.option("--tag", help="Protect the downloaded blob with tag user:TAG.")
async def download_by_hash(client: AspenClient, hash_: str, tag: str | None) -> Output:
    """Have the contacted node fetch blob HASH from a replica the metadata names."""
    return _download_output(await client.download_blob_by_hash(hash_, tag=tag))


@command(blob_group, "download-by-provider")
@click.argument("hash_", metavar="HASH")
@click.argument("provider")
@click.option("--tag", help="Protect the downloaded blob with tag user:TAG.")
async def download_by_provider(client: AspenClient, hash_: str, provider: str, tag: str | None) -> Output:
    """Have the contacted node fetch blob HASH from the member with endpoint id PROVIDER."""
    return _download_output(await client.download_blob_by_provider(hash_, provider, tag=tag))


@command(blob_group, "status")
@click.argument("hash_", metavar="HASH")
async def status(client: AspenClient, hash_: str) -> Output:
    """Size and tags of blob HASH on the contacted node."""
    res = await client.blob_status(hash_)
    doc = {
        "was_found": res.was_found,
        "hash": res.hash,
        "size_bytes": res.size_bytes,
        "complete": res.complete,
        "tags": res.tags,
        "error": res.error,
    }
    if not res.was_found:
        return Output(doc, f"Blob not found: {res.error or hash_}", ok=False)
    human = "\n".join(
        [
            f"Hash:   {res.hash}",
            f"Size:   {res.size_bytes} bytes",
            f"Status: {'complete' if res.complete else 'partial'}",
            f"Tags:   {', '.join(res.tags or []) or '-'}",
        ]
    )
    return Output(doc, human)


@command(blob_group, "replication-status")
@click.argument("hash_", metavar="HASH")
async def replication_status(client: AspenClient, hash_: str) -> Output:
    """Which nodes hold blob HASH, and how that compares with its replication policy."""
    res = await client.blob_replication_status(hash_)
    doc = {
        "was_found": res.was_found,
        "hash": res.hash,
        "size_bytes": res.size_bytes,
        "replica_nodes": res.replica_nodes,
        "replication_factor": res.replication_factor,
        "min_replicas": res.min_replicas,
        "status": res.status,
        "replicas_needed": res.replicas_needed,
        "updated_at": res.updated_at,
        "error": res.error,
    }
    if not res.was_found:
        return Output(
            doc, f"No replication metadata for {hash_}{': ' + res.error if res.error else ''}", ok=False
        )
    human = "\n".join(
        [
            f"Hash:               {res.hash}",
            f"Size:               {res.size_bytes} bytes",
            f"Replica nodes:      {', '.join(str(n) for n in res.replica_nodes or []) or '-'}",
            f"Replication factor: {res.replication_factor} (min {res.min_replicas})",
            f"Status:             {res.status}",
            f"Replicas needed:    {res.replicas_needed}",
        ]
    )
    return Output(doc, human)


def _targets(text: str | None) -> list[int]:
    if not text:
        return []
    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of node ids") from None
    if any(i <= 0 for i in ids):
        raise click.BadParameter("node ids must be positive", param_hint="--targets")
    return ids


@command(blob_group, "repair")
@click.argument("hash_", metavar="HASH")
@click.option("--targets", help="Comma-separated node ids to (re)copy to (default: holders + new nodes).")
@click.option("--replication-factor", type=click.IntRange(0, 7), default=0, show_default=True)
async def repair(client: AspenClient, hash_: str, targets: str | None, replication_factor: int) -> Output:
    """Verify blob HASH's copies (replacing corrupt ones) and copy it until the factor is met."""
    res = await client.repair_blob(hash_, targets=_targets(targets), replication_factor=replication_factor)
    doc = {
        "is_success": res.is_success,
        "hash": res.hash,
        "successful_nodes": res.successful_nodes,
        "failed_nodes": [[f.node_id, f.error] for f in res.failed_nodes]
        if res.failed_nodes is not None
        else None,
        "duration_ms": res.duration_ms,
        "error": res.error,
    }
    if res.is_success:
        nodes = ", ".join(str(n) for n in res.successful_nodes or [])
        human = f"Repair successful: {res.hash} on nodes [{nodes}] in {res.duration_ms} ms"
    else:
        failed = "; ".join(f"node {f.node_id}: {f.error}" for f in res.failed_nodes or [])
        human = f"Repair failed: {res.error}{' (' + failed + ')' if failed else ''}"
    return Output(doc, human, ok=res.is_success)


@command(blob_group, "repair-cycle")
async def repair_cycle(client: AspenClient) -> Output:
    """Start a repair cycle on the contacted node (scrub its copies, re-replicate what is short)."""
    res = await client.blob_repair_cycle()
    doc = {"is_success": res.is_success, "error": res.error}
    human = (
        "Repair cycle initiated successfully. Repairs running in background."
        if res.is_success
        else f"Repair cycle failed: {res.error}"
    )
    return Output(doc, human, ok=res.is_success)
