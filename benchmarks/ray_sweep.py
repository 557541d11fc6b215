"""Wall time of one sweep on a local Ray cluster with 1 and with 2 worker nodes, beside the
same sweep with ``--executor local``.

    python benchmarks/ray_sweep.py [--repeats 3] [--steps 6000]

Each cluster is a head with no CPUs and N one-CPU worker nodes, all on loopback (Ray's
``cluster_utils.Cluster``, as the tests use). Each timing is one whole
``optimlab bench ... --executor ray --address HOST:PORT`` command into a fresh store: what
a user waits for, start-up (importing torch, connecting to the cluster) included. The sweep
is 4 optimizers x 3 rates x 2 seeds on digits: 4 groups (one per optimizer), so 2 workers
train two groups at a time. Prints the median and the spread (min-max) of the repeats, and
the ratios measured in this run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from optimlab.bench.store.environment import cpu_description

# every node and driver on loopback, and no usage report to Ray's servers
RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


def sweep_args(steps: int) -> list[str]:
    return ["digits", "--optimizers", "sgd,adam,rmsprop,adagrad", "--lrs", "0.003,0.01,0.03",
            "--seeds", "2", "--steps", str(steps), "--batch-size", "64"]


def timed(args: list[str], repeats: int) -> list[float]:
    """Seconds of each of ``repeats`` runs of ``optimlab bench ARGS`` into a fresh store."""
    env = {**os.environ, **RAY_ENV, "CI": "1"}
    times = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "optimlab", "bench", *args, "--db",
                                   os.path.join(tmp, "runs.db")], cwd=tmp, env=env,
                                  capture_output=True, text=True)
            times.append(time.perf_counter() - t0)
            if proc.returncode != 0:
                raise SystemExit(f"the sweep failed: {proc.stderr[-2000:]}")
    return times


def on_cluster(workers: int, args: list[str], repeats: int) -> list[float]:
    from ray.cluster_utils import Cluster

    os.environ.update(RAY_ENV)
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "include_dashboard": False, "node_ip_address": "127.0.0.1"})
    try:
        for _ in range(workers):
            cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
        return timed([*args, "--executor", "ray", "--address", cluster.address], repeats)
    finally:
        cluster.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3,
                        help="sweeps timed on each executor (default 3)")
    parser.add_argument("--steps", type=int, default=6000,
                        help="steps of every run of the sweep (default 6000)")
    opts = parser.parse_args()
    if opts.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {opts.repeats}")
    print(f"cpu: {cpu_description()}", flush=True)
    args = sweep_args(opts.steps)
    results = {"local": timed(args, opts.repeats)}
    for workers in (1, 2):
        results[f"ray, {workers} worker{'s' * (workers > 1)}"] = on_cluster(workers, args,
                                                                            opts.repeats)
    print(f"one sweep (4 optimizers x 3 lrs x 2 seeds, digits, {opts.steps} steps), "
          f"{opts.repeats} runs each, {os.cpu_count()} cores")
    medians = {}
    for name, times in results.items():
        medians[name] = statistics.median(times)
        print(f"  {name:16s} median {medians[name]:6.1f} s   spread {min(times):.1f}-"
              f"{max(times):.1f} s")
    print(f"  ray 1 worker / ray 2 workers: {medians['ray, 1 worker'] / medians['ray, 2 workers']:.2f}x"
          f"   local / ray 2 workers: {medians['local'] / medians['ray, 2 workers']:.2f}x")


if __name__ == "__main__":
    main()
