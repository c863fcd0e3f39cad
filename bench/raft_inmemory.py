"""Raft driver throughput: a 3-member in-process cluster (real WAL fsyncs, in-memory network).

    python bench/raft_inmemory.py --proposals 100000 --concurrency 256

Prints proposals/s (ops), log entries/s and the mean group-commit batch size. A figure, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from cluster_inproc import InProcCluster, write  # noqa: E402


async def bench(proposals: int, concurrency: int, value_size: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="aspen-bench-") as root:
        cluster = InProcCluster(Path(root))
        await cluster.start()
        try:
            leader = await cluster.leader()
            first_index = leader.applied_index
            value = b"v" * value_size
            next_i = 0

            async def worker() -> None:
                nonlocal next_i
                while next_i < proposals:
                    i = next_i
                    next_i += 1
                    res = await write(leader, f"key-{i:012d}", value)
                    assert res.is_success

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            elapsed = time.perf_counter() - started
            entries = leader.applied_index - first_index
            assert await cluster.converged(leader.applied_index, timeout=120)
            assert len(cluster.hashes()) == 1, "replicas diverged"
            return {
                "proposals": proposals,
                "concurrency": concurrency,
                "seconds": round(elapsed, 3),
                "ops_per_s": round(proposals / elapsed),
                "entries": entries,
                "entries_per_s": round(entries / elapsed),
                "mean_batch": round(proposals / max(entries, 1), 1),
            }
        finally:
            await cluster.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--proposals", type=int, default=100_000)
    ap.add_argument("--concurrency", type=int, default=256)
    ap.add_argument("--value-size", type=int, default=100)
    args = ap.parse_args()
    print(json.dumps(asyncio.run(bench(args.proposals, args.concurrency, args.value_size))))


if __name__ == "__main__":
    main()
