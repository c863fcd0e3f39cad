"""Aspen against etcd on the same machine, in the same run, as ratios (ours / etcd).

    python bench/compare_etcd.py --concurrency 1,16,256 --duration 8 --rounds 2

Starts the 3-member etcd anchor (`../shared/anchors/etcd/cluster.sh`, etcd 3.4 from Debian's
`etcd-server`) and a local 3-node Aspen cluster (bench/load.py), then runs every workload at every
concurrency level against both, alternating which goes first in each round (A/B, then B/A) so a
slow minute of the machine does not land on one side only. Each cell of the table is the best of
the rounds for ops/s and the p50/p99 of that same run. Both clusters are stopped by PID at the end.

The etcd side is the anchor's own load generator (`bench_etcd.py`, gRPC); it needs grpcio and
grpcio-tools, so point `--etcd-python` at an interpreter that has them, e.g. a throwaway venv:
`python -m venv /tmp/etcd-venv && /tmp/etcd-venv/bin/pip install grpcio grpcio-tools`.

Workload pairs: put ↔ put, get (linearizable, ReadIndex) ↔ get-lin, get-stale ↔ get-ser.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import load  # noqa: E402

PAIRS = {"put": "put", "get": "get-lin", "get-stale": "get-ser"}
DEFAULT_ANCHORS = HERE.parent.parent / "shared" / "anchors"


class EtcdAnchor:
    def __init__(self, anchors: Path, python: str) -> None:
        self.dir = anchors / "etcd"
        self.python = python
        self.env = dict(os.environ, ETCD_ANCHOR_DIR=tempfile.mkdtemp(prefix="etcd-anchor-"))

    def start(self) -> EtcdAnchor:
        subprocess.run([str(self.dir / "cluster.sh"), "start"], check=True, env=self.env, timeout=60)
        return self

    def stop(self) -> None:
        subprocess.run([str(self.dir / "cluster.sh"), "stop"], env=self.env, timeout=60, check=False)

    def level(self, op: str, concurrency: int, a: argparse.Namespace, preload: bool) -> dict[str, Any]:
        with tempfile.NamedTemporaryFile(suffix=".jsonl") as out:
            cmd = [
                self.python,
                str(self.dir / "bench_etcd.py"),
                "--op", op,
                "--concurrency", str(concurrency),
                "--duration", str(a.duration),
                "--warmup", str(a.warmup),
                "--procs", str(a.procs),
                "--target", a.target,
                "--value-size", str(a.value_size),
                "--key-space", str(a.key_space),
                "--retries", "1",
                "--quiet-wait", "20",
                "--max-foreign", "0.5",
                "--json", out.name,
            ]  # fmt: skip
            if not preload:
                cmd.append("--no-preload")
            subprocess.run(cmd, check=True, env=self.env, timeout=a.duration * 4 + 240)
            rows = [json.loads(line) for line in Path(out.name).read_text().splitlines() if line]
        row: dict[str, Any] = rows[-1]
        row["system"] = "etcd"
        return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ops", default="put,get,get-stale", help=f"from {', '.join(PAIRS)}")
    ap.add_argument("--concurrency", default="1,16,256")
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=2, help="A/B rounds per cell (best is kept)")
    ap.add_argument("--max-ops", type=int, default=500_000, help="Aspen operations per level (cap)")
    ap.add_argument("--procs", type=int, default=2, help="client processes, both sides")
    ap.add_argument(
        "--target",
        choices=["leader", "all"],
        default="all",
        help="the clients of both systems spread over every member (default), or talk to the leader",
    )
    ap.add_argument(
        "--conns",
        type=int,
        default=3,
        help="Aspen client connections per process (3: with --target all, two per member)",
    )
    ap.add_argument("--value-size", type=int, default=100)
    ap.add_argument("--key-space", type=int, default=10_000)
    ap.add_argument("--anchors", type=Path, default=DEFAULT_ANCHORS)
    ap.add_argument("--etcd-python", default=os.environ.get("ETCD_BENCH_PYTHON", sys.executable))
    ap.add_argument("--json", help="append every measured row (both systems) to this file")
    a = ap.parse_args()
    ops = [o for o in a.ops.split(",") if o]
    for o in ops:
        if o not in PAIRS:
            ap.error(f"unknown op {o!r}")
    levels = [int(c) for c in a.concurrency.split(",")]
    if a.rounds < 1 or a.rounds > 5 or a.duration > 55:
        ap.error("--rounds must be 1..5 and --duration < 55 s")

    def level_cfg(op: str) -> load.LevelConfig:
        return load.LevelConfig.from_args(op, ticket, a)

    etcd = EtcdAnchor(a.anchors, a.etcd_python)
    cluster = load.LocalCluster()
    best: dict[tuple[str, int, str], dict[str, Any]] = {}
    try:
        etcd.start()
        cluster.start()
        ticket = load.leader_first(cluster.ticket, a.target)
        preloaded_aspen = preloaded_etcd = False
        for op in ops:
            if op != "put" and not preloaded_aspen:
                import asyncio

                asyncio.run(load.preload(ticket, a.key_space, a.value_size))
                preloaded_aspen = True
            for c in levels:
                for rnd in range(a.rounds):
                    order = ("aspen", "etcd") if rnd % 2 == 0 else ("etcd", "aspen")
                    for system in order:
                        if system == "etcd":
                            row = etcd.level(PAIRS[op], c, a, preload=op != "put" and not preloaded_etcd)
                            preloaded_etcd = preloaded_etcd or op != "put"
                        else:
                            row = load.run_level(level_cfg(op), c, a.procs, cluster.pids)
                        row["round"] = rnd
                        if a.json:
                            with open(a.json, "a") as f:
                                f.write(json.dumps(row) + "\n")
                        key = (op, c, system)
                        if key not in best or row["ops_per_s"] > best[key]["ops_per_s"]:
                            best[key] = row
                        print(
                            f"# {system:5} {op:9} c={c:<4} {row['ops_per_s']:>9} ops/s "
                            f"p50 {row['p50_ms']} ms p99 {row['p99_ms']} ms "
                            f"foreign {row.get('foreign_cpu_cores')}",
                            flush=True,
                        )
    finally:
        cluster.stop()
        etcd.stop()
    print()
    print(
        f"| {'workload':<22} | {'clients':>7} | {'etcd ops/s':>10} | {'aspen ops/s':>11} | {'ratio':>5} "
        f"| {'etcd p50/p99 ms':>16} | {'aspen p50/p99 ms':>16} |"
    )
    print(f"|{'-' * 24}|{'-' * 9}|{'-' * 12}|{'-' * 13}|{'-' * 7}|{'-' * 18}|{'-' * 18}|")
    for op in ops:
        for c in levels:
            e, s = best.get((op, c, "etcd")), best.get((op, c, "aspen"))
            if e is None or s is None:
                continue
            ratio = s["ops_per_s"] / e["ops_per_s"] if e["ops_per_s"] else float("nan")
            print(
                f"| {op + ' / ' + PAIRS[op]:<22} | {c:>7} | {e['ops_per_s']:>10} | {s['ops_per_s']:>11} "
                f"| {ratio:>5.2f} | {str(e['p50_ms']) + ' / ' + str(e['p99_ms']):>16} "
                f"| {str(s['p50_ms']) + ' / ' + str(s['p99_ms']):>16} |"
            )


if __name__ == "__main__":
    main()
