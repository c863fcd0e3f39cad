"""Resident memory per node with N keys, and the time to snapshot them.

    python bench/memory.py --keys 1000000

Starts a local 3-node cluster (bench/load.py), loads `--keys` keys of 16 bytes with `--value-size`
byte values through `aspen.client` (BatchWrite of 100 keys, 32 in flight), then reports for every
node its resident set (VmRSS) and peak (VmHWM) before and after loading, the load rate, and the time
of an explicit snapshot (`cluster snapshot`: a forked child writes the image while the node keeps
serving) with the size of the snapshot file. Stops the nodes by PID at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import load  # noqa: E402


def vm(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of `pid`, in MiB."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(rest.split()[0]) // 1024
    return out


async def fill(ticket: str, keys: int, value_size: int, in_flight: int = 32) -> float:
    from aspen.api.messages import SetOperation
    from aspen.client import AspenClient

    value = b"v" * value_size
    batches = iter(range(0, keys, 100))
    started = time.perf_counter()
    async with AspenClient(ticket, timeout=60) as client:

        async def worker() -> None:
            for start in batches:
                ops = [
                    SetOperation(key=load.key_for(i), value=value)
                    for i in range(start, min(start + 100, keys))
                ]
                res = await client.batch_write(ops)
                if not res.is_success:
                    raise SystemExit(f"batch at {start} failed: {res.error}")

        await asyncio.gather(*(worker() for _ in range(in_flight)))
    return time.perf_counter() - started


async def snapshot_all(cluster: load.LocalCluster) -> dict[int, float]:
    from aspen.client import AspenClient

    took: dict[int, float] = {}
    for node in cluster.nodes:
        async with AspenClient(node.ticket, timeout=300) as client:
            t0 = time.perf_counter()
            await client.trigger_snapshot()
            took[node.node_id] = round(time.perf_counter() - t0, 2)
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--value-size", type=int, default=100)
    ap.add_argument("--json", help="append the result as one JSON line to this file")
    a = ap.parse_args()
    if not 0 < a.keys <= 10_000_000:
        ap.error("--keys must be 1..10,000,000")
    cluster = load.LocalCluster().start()
    try:
        ticket = load.leader_first(cluster.ticket, "leader")
        before = {n: vm(pid) for n, pid in cluster.pids.items()}
        seconds = fill(ticket, a.keys, a.value_size)
        loaded = asyncio.run(seconds)
        after = {n: vm(pid) for n, pid in cluster.pids.items()}
        snap_s = asyncio.run(snapshot_all(cluster))
        sizes = {
            n.node_id: max((p.stat().st_size for p in n.data_dir.rglob("*.snap")), default=0) // 2**20
            for n in cluster.nodes
        }
        result: dict[str, Any] = {
            "keys": a.keys,
            "value_size": a.value_size,
            "load_seconds": round(loaded, 1),
            "load_keys_per_s": round(a.keys / loaded),
            "rss_mib_before": {n: v["VmRSS"] for n, v in before.items()},
            "rss_mib_after": {n: v["VmRSS"] for n, v in after.items()},
            "hwm_mib_after": {n: v["VmHWM"] for n, v in after.items()},
            "snapshot_seconds": snap_s,
            "snapshot_file_mib": sizes,
        }
        print(json.dumps(result, indent=2))
        if a.json:
            with open(a.json, "a") as f:
                f.write(json.dumps(result) + "\n")
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
