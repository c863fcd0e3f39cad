"""Long soak of the Raft simulator: `python -m tests.sim.soak --seeds 10000 [--start 0] [--jobs 2]`.

Prints the number of seeds run and total simulated steps; lists every failing seed (replay one
with `pytest tests/sim --sim-seed=N`). Exit status 1 if any seed failed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path

# Run as `python -m tests.sim.soak`: make the simulator importable the way pytest sees it.
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from raftsim import run_seed


def _run(seed: int) -> tuple[int, int, str]:
    try:
        return seed, run_seed(seed), ""
    except Exception as exc:
        return seed, 0, f"{type(exc).__name__}: {exc}"[:2000]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=10000)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=max(1, multiprocessing.cpu_count()))
    args = ap.parse_args(argv)
    seeds = range(args.start, args.start + args.seeds)
    t0 = time.monotonic()
    total_steps = 0
    failures: list[tuple[int, str]] = []
    done = 0
    with multiprocessing.Pool(args.jobs) as pool:
        for seed, steps, err in pool.imap_unordered(_run, seeds, chunksize=8):
            done += 1
            total_steps += steps
            if err:
                failures.append((seed, err))
                print(f"FAIL seed={seed}: {err}", flush=True)
            if done % 1000 == 0:
                print(f"... {done} seeds, {total_steps} steps, {time.monotonic() - t0:.0f}s", flush=True)
    print(
        f"seeds run: {done} (from {args.start}), total steps: {total_steps}, failures: {len(failures)}, "
        f"time: {time.monotonic() - t0:.1f}s"
    )
    for seed, _ in sorted(failures):
        print(f"failed seed: {seed}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
