#!/usr/bin/env python3
"""Linearizable reads across a leader failure, measured on `raft-kv`.

Starts 3 `raft-kv` processes (election timeout 150 ms, fsync always), then RUNS times:
writes a key through the leader, SIGKILLs the leader and, on every survivor, issues
`GET key` in a loop while polling `STATUS` every 2 ms. For each kill it records when a
survivor first reports itself leader (the new leader's election) and when the first GET on
a survivor returned the value. The target (issue "Runtime you can prove"): the first read
succeeds within 2 x ET of the new leader's election, median over the runs. The killed node
is restarted from its data directory before the next run.

    python3 bench/failover_read.py [--bin target/release/raft-kv] [--runs 20] [--election-ms 150]

Prints a table and `BENCH name=... value=... unit=...` lines; exits 1 if the median misses
the target.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time


def free_ports(n: int) -> list[int]:
    """Ports below the ephemeral range, so outgoing connections never take them."""
    ports: list[int] = []
    while len(ports) < n:
        p = random.randint(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                continue
        if p not in ports:
            ports.append(p)
    return ports


def request(port: int, line: str, timeout: float = 3.0) -> str | None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(line.encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
            return buf.decode().strip()
    except OSError:
        return None


def status(port: int) -> dict[str, str]:
    r = request(port, "STATUS", timeout=0.5) or ""
    return dict(kv.split("=", 1) for kv in r.split() if "=" in kv)


class Cluster:
    def __init__(self, binary: str, election_ms: int) -> None:
        self.binary = binary
        self.election_ms = election_ms
        self.dir = tempfile.mkdtemp(prefix="failover-read-")
        ports = free_ports(6)
        self.peer = {i: ports[i - 1] for i in (1, 2, 3)}
        self.client = {i: ports[i + 2] for i in (1, 2, 3)}
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        for i in (1, 2, 3):
            self.start(i)

    def start(self, i: int) -> None:
        peers = ",".join(f"{j}=127.0.0.1:{p}" for j, p in self.peer.items())
        self.procs[i] = subprocess.Popen(
            [
                self.binary, "--id", str(i), "--peers", peers,
                "--client", f"127.0.0.1:{self.client[i]}",
                "--data-dir", os.path.join(self.dir, str(i)),
                "--election-ms", str(self.election_ms),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def leader(self, among: list[int], timeout: float = 10.0) -> int | None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for i in among:
                if status(self.client[i]).get("role") == "leader":
                    return i
            time.sleep(0.01)
        return None

    def stop(self) -> None:
        for p in self.procs.values():
            p.kill()
            p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def one_kill(c: Cluster, run: int) -> tuple[float, float] | None:
    """Returns (ms from kill to election, ms from election to the first good read)."""
    live = [i for i in (1, 2, 3)]
    lead = c.leader(live)
    if lead is None:
        return None
    key, val = f"k{run}", f"v{run}"
    if request(c.client[lead], f"PUT {key} {val}") != "OK":
        return None
    survivors = [i for i in live if i != lead]
    t_kill = time.monotonic()
    c.procs[lead].send_signal(signal.SIGKILL)
    c.procs[lead].wait()
    elected: list[float] = []
    reads: list[float] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set() and not elected:
            for i in survivors:
                if status(c.client[i]).get("role") == "leader":
                    elected.append(time.monotonic())
                    return
            time.sleep(0.002)

    def read(i: int) -> None:
        while not done.is_set():
            if request(c.client[i], f"GET {key}", timeout=5.0) == f"VALUE {val}":
                reads.append(time.monotonic())
                return

    threads = [threading.Thread(target=watch)] + [
        threading.Thread(target=read, args=(i,)) for i in survivors
    ]
    for t in threads:
        t.start()
    end = time.monotonic() + 15
    while time.monotonic() < end and not (elected and reads):
        time.sleep(0.005)
    done.set()
    for t in threads:
        t.join()
    c.start(lead)
    if not (elected and reads):
        return None
    # Wait for the restarted node to catch up before the next kill.
    target = c.leader(survivors)
    if target is not None:
        want = int(status(c.client[target]).get("commit", "0"))
        end = time.monotonic() + 10
        while time.monotonic() < end:
            if int(status(c.client[lead]).get("applied", "0") or 0) >= want:
                break
            time.sleep(0.01)
    first_read = min(reads)
    return ((elected[0] - t_kill) * 1e3, (first_read - elected[0]) * 1e3)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default="target/release/raft-kv")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--election-ms", type=int, default=150)
    a = ap.parse_args()
    c = Cluster(a.bin, a.election_ms)
    samples: list[tuple[float, float]] = []
    failed = 0
    try:
        for run in range(a.runs):
            r = one_kill(c, run)
            if r is None:
                failed += 1
                print(f"run {run}: no election or no read within 15 s", file=sys.stderr)
            else:
                samples.append(r)
    finally:
        c.stop()
    if not samples:
        print("failover_read: no successful run")
        return 1
    elect = [e for e, _ in samples]
    after = [r for _, r in samples]
    med = statistics.median(after)
    target = 2 * a.election_ms
    print(f"{len(samples)} kills ({failed} failed), election timeout {a.election_ms} ms")
    print(f"kill -> new leader      median {statistics.median(elect):7.1f} ms "
          f"[{min(elect):.1f}-{max(elect):.1f}]")
    print(f"new leader -> first GET median {med:7.1f} ms [{min(after):.1f}-{max(after):.1f}]"
          f"  target <= {target} ms: {'met' if med <= target else 'MISSED'}")
    print(f"BENCH name=failover_read.election_p50 value={statistics.median(elect):.1f} unit=ms")
    print(f"BENCH name=failover_read.read_after_election_p50 value={med:.1f} unit=ms")
    print(f"BENCH name=failover_read.failed_runs value={failed} unit=count")
    return 0 if med <= target and failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
