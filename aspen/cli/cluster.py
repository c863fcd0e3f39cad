"""`aspen-cli cluster …`: initialise the cluster, change its membership, inspect it."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from aspen.cli.context import Settings, _merge, command, global_options, run_client
from aspen.cli.output import Output
from aspen.client.client import AspenClient


@click.group("cluster")
def cluster_group() -> None:
    """Initialise and inspect the cluster."""


@command(cluster_group, "init")
async def init(client: AspenClient) -> Output:
    """Initialise a one-node cluster on the ticket's node."""
    res = await client.init_cluster()
    if res.is_success:
        return Output(
            {"status": "success", "message": "Cluster initialized"},
            "Cluster initialized successfully",
            compact=True,
        )
    return Output(
        {"status": "failed", "error": res.error}, f"Cluster init failed: {res.error}", compact=True, ok=False
    )


@command(cluster_group, "status")
async def status(client: AspenClient) -> Output:
    """Members, their roles and the leader."""
    st = await client.cluster_state()
    nodes = [
        {
            "node_id": n.node_id,
            "endpoint_id": n.endpoint_addr,
            "is_leader": n.is_leader,
            "is_voter": n.is_voter,
        }
        for n in st.nodes
    ]
    lines = ["Cluster State", "", f"{'Node ID':<8} | Leader | Voter | Endpoint ID"]
    for n in st.nodes:
        lines.append(
            f"{n.node_id:<8} | {'*' if n.is_leader else ' ':^6} | "
            f"{'Y' if n.is_voter else 'N':^5} | {n.endpoint_addr}"
        )
    return Output({"nodes": nodes, "leader_id": st.leader_id}, "\n".join(lines))


@command(cluster_group, "health")
async def health(client: AspenClient) -> Output:
    """Health of the node the ticket points at (works before init)."""
    h = await client.health()
    doc = {
        "status": h.status,
        "node_id": h.node_id,
        "raft_node_id": h.raft_node_id,
        "uptime_seconds": h.uptime_seconds,
        "iroh_node_id": h.iroh_node_id,
        "is_initialized": h.is_initialized,
        "membership_node_count": h.membership_node_count,
    }
    human = "\n".join(
        [
            "Health Status",
            f"  Status:      {h.status}",
            f"  Node ID:     {h.node_id}",
            f"  Uptime:      {h.uptime_seconds}s",
            f"  Initialized: {h.is_initialized}",
            f"  Endpoint:    {h.iroh_node_id}",
        ]
    )
    return Output(doc, human)


@command(cluster_group, "metrics")
async def metrics(client: AspenClient) -> Output:
    """Raft metrics of the node the ticket points at."""
    r = await client.raft_metrics()
    doc = {
        "node_id": r.node_id,
        "state": r.state,
        "current_leader": r.current_leader,
        "current_term": r.current_term,
        "last_log_index": r.last_log_index or 0,
        "last_applied": r.last_applied_index or 0,
        "snapshot_index": r.snapshot_index or 0,
        "replication": [{"node_id": p.node_id, "matched_index": p.matched_index} for p in r.replication]
        if r.replication is not None
        else None,
    }
    lines = [
        "Raft Metrics",
        f"  Node:        {r.node_id}",
        f"  State:       {r.state}",
        f"  Leader:      {r.current_leader}",
        f"  Term:        {r.current_term}",
        f"  Last log:    {doc['last_log_index']}",
        f"  Applied:     {doc['last_applied']}",
        f"  Snapshot:    {doc['snapshot_index']}",
    ]
    for p in r.replication or []:
        lines.append(f"  Replication: node {p.node_id} matched {p.matched_index}")
    return Output(doc, "\n".join(lines))


@command(cluster_group, "prometheus")
async def prometheus(client: AspenClient) -> Output:
    """Metrics in the Prometheus text format."""
    text = (await client.metrics()).prometheus_text
    return Output({"format": "prometheus", "metrics": text}, text.rstrip("\n"), compact=True)


@command(cluster_group, "ticket")
async def ticket(client: AspenClient) -> Output:
    """A ticket naming every voter of the cluster."""
    t = await client.cluster_ticket()
    return Output({"ticket": t.ticket}, t.ticket, compact=True)


@cluster_group.group("snapshot", invoke_without_command=True)
@global_options
@click.pass_context
def snapshot_group(ctx: click.Context, /, **kwargs: Any) -> None:
    """Without a subcommand: same as `snapshot trigger`. `snapshot save FILE` takes a backup."""
    settings = _merge(ctx, kwargs)
    if ctx.invoked_subcommand is None:
        run_client(settings, _trigger)


@command(snapshot_group, "trigger")
async def snapshot_trigger(client: AspenClient) -> Output:
    """Snapshot the state machine and compact the log now (on the contacted node)."""
    return await _trigger(client)


#: Show a progress line for backups larger than this (when stderr is a terminal, or with -v).
PROGRESS_MIN_BYTES = 8 * 1024 * 1024


@command(snapshot_group, "save")
@click.argument("file", type=click.Path(dir_okay=False, writable=True, path_type=Path))
async def snapshot_save(client: AspenClient, file: Path) -> Output:
    """Save a consistent, checksummed backup of all keys to FILE (online).

    Restore it into a NEW cluster with `aspen-node restore --from FILE --data-dir DIR`."""
    settings = click.get_current_context().find_object(Settings)
    show = settings is not None and not settings.quiet and (settings.verbose or sys.stderr.isatty())

    def progress(done: int, total: int) -> None:
        if show and total >= PROGRESS_MIN_BYTES:
            end = "\n" if done >= total else ""
            click.echo(
                f"\rsnapshot save: {done // 2**20}/{total // 2**20} MiB ({done * 100 // total}%)",
                err=True,
                nl=False,
            )
            if end:
                click.echo("", err=True)

    started = time.monotonic()
    meta = await client.snapshot_save(file, progress=progress)
    seconds = time.monotonic() - started
    doc = {
        "status": "success",
        "path": str(file),
        "bytes": meta.total_bytes,
        "applied_index": meta.applied_index,
        "node_id": meta.node_id,
        "blake3": meta.checksum,
    }
    human = (
        f"Snapshot saved to {file}: {meta.total_bytes} bytes at applied index {meta.applied_index} "
        f"from node {meta.node_id} in {seconds:.1f}s (blake3 {meta.checksum})"
    )
    return Output(doc, human)


async def _trigger(client: AspenClient) -> Output:
    res = await client.trigger_snapshot()
    if not res.is_success:
        return Output({"status": "failed", "error": res.error}, f"Snapshot failed: {res.error}", ok=False)
    return Output(
        {
            "status": "success",
            "message": "Snapshot triggered successfully",
            "snapshot_index": res.snapshot_index,
        },
        f"Snapshot triggered successfully (index {res.snapshot_index})",
    )


def _status_output(command_name: str, ok: bool, error: str | None, message: str) -> Output:
    """The compact `{"status", "message"}` answer of the membership commands."""
    if not ok:
        return Output(
            {"status": "failed", "error": error}, f"{command_name} failed: {error}", compact=True, ok=False
        )
    return Output({"status": "success", "message": message}, message, compact=True)


@command(cluster_group, "add-learner")
@click.option("--node-id", type=click.IntRange(min=1), required=True, help="Raft id of the new node.")
@click.option(
    "--addr", required=True, help='EndpointAddr JSON: {"id": "<hex64>", "addrs": [{"Ip": "host:port"}]}'
)
async def add_learner(client: AspenClient, node_id: int, addr: str) -> Output:
    """Add a non-voting learner; returns once it has caught up with the log."""
    res = await client.add_learner(node_id, addr)
    return _status_output("add-learner", res.is_success, res.error, f"Learner {node_id} added at {addr}")


@command(cluster_group, "change-membership")
@click.argument("members", nargs=-1, type=click.IntRange(min=1), required=True)
async def change_membership(client: AspenClient, members: tuple[int, ...]) -> Output:
    """Make the voters exactly MEMBERS (learners are promoted; others are removed)."""
    res = await client.change_membership(members)
    return _status_output(
        "change-membership", res.is_success, res.error, f"Membership changed to voters: {list(members)}"
    )


@command(cluster_group, "promote")
@click.option("--learner-id", type=click.IntRange(min=1), required=True)
@click.option("--replace", type=click.IntRange(min=1), default=None, help="Voter to remove in the same step.")
@click.option("--force", is_flag=True, help="Accepted for compatibility; has no effect.")
async def promote(client: AspenClient, learner_id: int, replace: int | None, force: bool) -> Output:
    """Promote a learner to voter."""
    res = await client.promote_learner(learner_id, replace_node=replace, force=force)
    doc = {
        "status": "success" if res.is_success else "failed",
        "learner_id": learner_id,
        "promoted": res.is_success,
        "message": res.message,
        "previous_voters": res.previous_voters,
        "new_voters": res.new_voters,
    }
    if res.error:
        doc["error"] = res.error
    human = f"Learner {learner_id} promoted to voter" if res.is_success else f"promote failed: {res.error}"
    return Output(doc, human, compact=True, ok=res.is_success)
