"""How much faster than real time raft_manager.sim runs a 3-node cluster whose state
machine is a trivial Python object (virtual time simulated / wall time), every check on.

    python bench/python/sim_speed.py [--seeds 20] [--ops 200]

Prints a table and `BENCH` lines (build the extension with --release for real figures:
`make bench-python-deps`)."""

from __future__ import annotations

import argparse
import time

from raft_manager.sim import ClientCtx, Simulation, read, write


class Counter:
    """Every command adds one; apply and query answer the count."""

    def __init__(self) -> None:
        self.n = 0

    def apply(self, index: int, command: bytes) -> bytes:
        self.n += 1
        return str(self.n).encode()

    def snapshot(self) -> bytes:
        return str(self.n).encode()

    def restore(self, data: bytes) -> None:
        self.n = int(data)

    def query(self, q: bytes) -> bytes:
        return str(self.n).encode()

    def state_hash(self) -> int:
        return self.n


def workload(ctx: ClientCtx):
    return write(b"incr") if ctx.rng.randrange(2) else read(b"count")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--ops", type=int, default=200)
    a = ap.parse_args()
    print(f"3-node simulated cluster, Python state machine, 3 clients x {a.ops} requests, {a.seeds} seeds")
    print(f"{'faults':<10} {'virtual s':>10} {'wall s':>8} {'cpu s':>8} {'x wall':>10} {'x cpu':>10}")
    for name, faults in [("none", {"none": True}), ("default", None)]:
        sim = Simulation(Counter, workload, ops_per_client=a.ops, faults=faults)
        t, c = time.perf_counter(), time.process_time()
        virtual_ms = 0
        for seed in range(a.seeds):
            r = sim.run(seed)
            assert r.failure is None, r.failure
            virtual_ms += r.virtual_ms
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        v = virtual_ms / 1000
        print(f"{name:<10} {v:>10.1f} {wall:>8.2f} {cpu:>8.2f} {v / wall:>10.0f} {v / cpu:>10.0f}")
        print(f"BENCH name=sim_speed_python_3n_faults_{name} value={v / wall:.3f} unit=x_realtime")
        print(f"BENCH name=sim_speed_python_3n_faults_{name}_cpu value={v / cpu:.3f} unit=x_realtime_per_cpu_s")


if __name__ == "__main__":
    main()
