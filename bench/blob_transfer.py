"""Blob transfer throughput and memory through the real `aspen-cli` and `aspen-node` processes.

    python bench/blob_transfer.py --size-mib 1024            # one node: add, then get -o
    python bench/blob_transfer.py --size-mib 1024 --nodes 3  # also node-to-node replication

Prints, as JSON: MB/s of `blob add FILE` and `blob get HASH -o FILE` (whole CLI invocations, so
process start-up is included), whether the round trip is byte-exact, the peak RSS of each CLI run
(from wait4) and of every node (VmHWM), and with 3 nodes how long until the blob had 3 replicas.
A figure, not a test (issue 5, must show 1).
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from harness import NodeProcess, cli, form_cluster, wait_for

from aspen.client import SyncAspenClient

MB = 1_000_000


def run_cli(ticket: str, *args: str) -> tuple[float, int, str]:
    """(seconds, peak RSS in KiB, stdout) of one `aspen-cli` run; the process is reaped with wait4
    so its own peak RSS is known."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "aspen.cli", "--ticket", ticket, *args], stdout=out, stderr=err
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        elapsed = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"aspen-cli {' '.join(args)} failed: {err.read().decode()}")
        return elapsed, usage.ru_maxrss, out.read().decode()


def vm_hwm_kib(node: NodeProcess) -> int:
    assert node.proc is not None
    for line in Path(f"/proc/{node.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def bench(size_mib: int, nodes_wanted: int, root: Path) -> dict[str, Any]:
    src = root / "blob.bin"
    with open(src, "wb") as f:
        for _ in range(size_mib):
            f.write(os.urandom(1024 * 1024))
    size = src.stat().st_size
    nodes: list[NodeProcess] = []
    try:
        if nodes_wanted == 1:
            node = NodeProcess(node_id=1, data_dir=root / "n1").start()
            nodes.append(node)
            assert cli(node.ticket, "cluster", "init").code == 0
        else:
            form_cluster(root, nodes, nodes_wanted)
        ticket = nodes[0].ticket
        add_s, add_rss, out = run_cli(ticket, "--json", "blob", "add", str(src))
        added_at = time.monotonic()
        digest = json.loads(out)["hash"]
        report: dict[str, Any] = {"size_bytes": size, "nodes": nodes_wanted}
        if nodes_wanted > 1:
            # Polled through one library client: a CLI run per poll would take a core from the
            # nodes while they replicate.
            with SyncAspenClient(ticket) as client:

                def replicated() -> bool:
                    res = client.blob_replication_status(digest)
                    return len(res.replica_nodes or []) >= min(3, nodes_wanted)

                wait_for(replicated, timeout=600, interval=0.05, what="replication")
            repl_s = time.monotonic() - added_at
            # Replication to the other nodes runs in parallel from node 1.
            report["replication_seconds_after_add"] = round(repl_s, 2)
            report["replication_mb_s_per_target"] = round(size / MB / repl_s, 1)
        dest = root / "back.bin"
        get_s, get_rss, _ = run_cli(ticket, "blob", "get", digest, "-o", str(dest))
        report.update(
            {
                "add_seconds": round(add_s, 2),
                "add_mb_s": round(size / MB / add_s, 1),
                "get_seconds": round(get_s, 2),
                "get_mb_s": round(size / MB / get_s, 1),
                "byte_exact": filecmp.cmp(src, dest, shallow=False),
                "cli_peak_rss_mib": {"add": round(add_rss / 1024, 1), "get": round(get_rss / 1024, 1)},
                "node_peak_rss_mib": {n.node_id: round(vm_hwm_kib(n) / 1024, 1) for n in nodes},
            }
        )
        return report
    finally:
        for n in nodes:
            n.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--nodes", type=int, default=1, choices=[1, 3])
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: a temp dir)")
    args = parser.parse_args()
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
        print(json.dumps(bench(args.size_mib, args.nodes, args.dir), indent=2))
        return
    with tempfile.TemporaryDirectory(prefix="aspen-blob-bench-") as tmp:
        print(json.dumps(bench(args.size_mib, args.nodes, Path(tmp)), indent=2))


if __name__ == "__main__":
    main()
