#!/usr/bin/env python3
"""W3: Python, raft_manager (the raft-manager binding) vs PySyncObj.

Each library runs 3 nodes in this process over TCP on 127.0.0.1 with the log in memory;
N Python threads each propose 64-byte commands synchronously on the leader for SECS seconds.
Then the asynchronous form: W proposals kept in flight by completion callbacks, for each W of
--async-windows (raft_manager: `propose_async` + `add_done_callback`; PySyncObj: `callback=`
with its blocking-call setting appendEntriesUseBatch=False at 256 in flight, and with its best
asynchronous setting, appendEntriesUseBatch=True, at each W of --pysyncobj-batch-windows).
The async target compares raft_manager's best window with PySyncObj's best configuration.
Prints a table and one `BENCH name=... value=... unit=...` line per figure.

    python bench/python/w3.py [--threads 1,16,64] [--secs 3] [--async-windows 256,10000]
                              [--pysyncobj-batch-windows 10000,50000]

raft_manager is skipped (with a message) when `import raft_manager` fails; PySyncObj is
skipped when `import pysyncobj` fails (pip install pysyncobj).
"""

import argparse
import socket
import threading
import time


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def pct(sorted_ns, p):
    if not sorted_ns:
        return float("nan")
    i = min(len(sorted_ns) - 1, round((len(sorted_ns) - 1) * p))
    return sorted_ns[i] / 1000.0


def drive(propose, threads, secs, warmup=0.5):
    """Runs `threads` threads calling propose(cmd) in a loop; returns (ops/s, lat_ns)."""
    start = time.perf_counter()
    m_start = start + warmup
    end = m_start + secs
    lats = []
    errors = [0]
    lock = threading.Lock()

    def worker(t):
        mine = []
        seq = t << 32
        cmd_tail = b"x" * 56
        while True:
            t0 = time.perf_counter()
            if t0 >= end:
                break
            seq += 1
            try:
                propose(seq.to_bytes(8, "little") + cmd_tail)
                ok = True
            except Exception:
                ok = False
            t1 = time.perf_counter()
            if t0 >= m_start and t1 <= end:
                if ok:
                    mine.append(int((t1 - t0) * 1e9))
                else:
                    errors[0] += 1
        with lock:
            lats.extend(mine)

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    lats.sort()
    return len(lats) / secs, lats, errors[0]


def drive_async(submit, window, secs, warmup=0.5):
    """Keeps `window` asynchronous proposals in flight for `secs` seconds; `submit(cmd, done)`
    must call `done(ok)` from any thread when the proposal completes (ok: it committed).
    Returns committed ops/s (failed proposals are resubmitted but not counted)."""
    lock = threading.Lock()
    state = {"done": 0, "stop": False}
    cmd = b"y" * 64
    measuring = threading.Event()

    def on_done(ok):
        with lock:
            if measuring.is_set() and ok:
                state["done"] += 1
            stop = state["stop"]
        if not stop:
            submit(cmd, on_done)

    for _ in range(window):
        submit(cmd, on_done)
    time.sleep(warmup)
    measuring.set()
    time.sleep(secs)
    with lock:
        n = state["done"]
        state["stop"] = True
    time.sleep(0.2)
    return n / secs


# ---------------------------------------------------------------- raft_manager

def bench_raft_manager(thread_counts, secs, async_windows=(256,)):
    try:
        import raft_manager
    except Exception as e:  # noqa: BLE001 - any import failure means "not available"
        print(f"w3: raft_manager is not importable ({e}); skipping it "
              "(build the Python binding and put it on PYTHONPATH)")
        return None

    class Counter:
        def __init__(self):
            self.n = 0

        def apply(self, index, command):
            self.n += 1
            return None

        def snapshot(self):
            return self.n.to_bytes(8, "little")

        def restore(self, data):
            self.n = int.from_bytes(data, "little")

    ports = free_ports(3)
    peers = {i + 1: f"127.0.0.1:{ports[i]}" for i in range(3)}
    nodes = [raft_manager.Node(i, peers, Counter(), None, election_timeout=1.0,
                               heartbeat_interval=0.1) for i in (1, 2, 3)]
    try:
        leader = None
        deadline = time.time() + 15
        while leader is None and time.time() < deadline:
            for n in nodes:
                if str(n.status().get("role", "")).lower() == "leader":
                    leader = n
                    break
            time.sleep(0.01)
        if leader is None:
            print("w3: raft_manager: no leader elected")
            return None
        out = []
        for t in thread_counts:
            ops, lats, errs = drive(lambda c: leader.propose(c, timeout=5), t, secs)
            out.append((t, ops, lats, errs))

        def submit(c, done):
            leader.propose_async(c).add_done_callback(lambda f: done(f.exception() is None))

        async_ops = {w: drive_async(submit, w, secs) for w in async_windows}
        return out, async_ops
    finally:
        for n in nodes:
            n.close()


# ---------------------------------------------------------------- PySyncObj

def bench_pysyncobj(thread_counts, secs, tune=None, batch=False, async_windows=(256,)):
    try:
        from pysyncobj import SyncObj, SyncObjConf, replicated
    except Exception as e:  # noqa: BLE001
        print(f"w3: pysyncobj is not importable ({e}); skipping it (pip install pysyncobj)")
        return None

    class Counter(SyncObj):
        def __init__(self, me, partners):
            # appendEntriesUseBatch=False: PySyncObj's fastest setting for blocking calls;
            # True: its fastest with many asynchronous calls outstanding.
            conf = SyncObjConf(dynamicMembershipChange=False, appendEntriesUseBatch=batch,
                               **(tune or {}))
            super().__init__(me, partners, conf)
            self._n = 0

        @replicated
        def add(self, data):
            self._n += 1
            return self._n

    ports = free_ports(3)
    addrs = [f"127.0.0.1:{p}" for p in ports]
    objs = [Counter(a, [b for b in addrs if b != a]) for a in addrs]
    try:
        leader = None
        deadline = time.time() + 15
        while leader is None and time.time() < deadline:
            for o in objs:
                if o._isLeader():
                    leader = o
                    break
            time.sleep(0.01)
        if leader is None:
            print("w3: pysyncobj: no leader elected")
            return None
        out = []
        for t in thread_counts:
            ops, lats, errs = drive(lambda c: leader.add(c, sync=True, timeout=5), t, secs)
            out.append((t, ops, lats, errs))

        def submit(c, done):
            leader.add(c, callback=lambda res, err: done(err == 0))

        async_ops = {w: drive_async(submit, w, secs) for w in async_windows}
        return out, async_ops
    finally:
        for o in objs:
            o.destroy()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", default="1,16,64")
    ap.add_argument("--secs", type=float, default=3.0)
    ap.add_argument("--async-windows", default="256,10000",
                    help="raft_manager asynchronous proposals in flight")
    ap.add_argument("--pysyncobj-batch-windows", default="10000,50000",
                    help="PySyncObj (appendEntriesUseBatch=True) callbacks outstanding")
    ap.add_argument("--pysyncobj-period", type=float, default=None,
                    help="PySyncObj appendEntriesPeriod/autoTickPeriod in seconds "
                         "(default: the library's 0.1/0.05)")
    a = ap.parse_args()
    tune = None
    if a.pysyncobj_period:
        tune = {"appendEntriesPeriod": a.pysyncobj_period,
                "autoTickPeriod": a.pysyncobj_period / 2}
    counts = [int(x) for x in a.threads.split(",")]
    rm_windows = [int(x) for x in a.async_windows.split(",")]
    batch_windows = [int(x) for x in a.pysyncobj_batch_windows.split(",")]
    results = {}
    asyncs = {}  # (library label, window) -> ops/s
    r = bench_raft_manager(counts, a.secs, rm_windows)
    if r:
        results["raft_manager"], ops = r
        asyncs.update({("raft_manager", w): v for w, v in ops.items()})
    r = bench_pysyncobj(counts, a.secs, tune)
    if r:
        results["pysyncobj"], ops = r
        asyncs.update({("pysyncobj", w): v for w, v in ops.items()})
    r = bench_pysyncobj([], a.secs, tune, batch=True, async_windows=batch_windows)
    if r:
        asyncs.update({("pysyncobj.batch", w): v for w, v in r[1].items()})
    for name, r in results.items():
        for t, ops, lats, errs in r:
            print(f"BENCH name=w3.{name}.t{t}.ops value={ops:.3f} unit=ops/s")
            print(f"BENCH name=w3.{name}.t{t}.p50 value={pct(lats, 0.5):.3f} unit=us")
            print(f"BENCH name=w3.{name}.t{t}.p99 value={pct(lats, 0.99):.3f} unit=us")
    for (name, w), ops in asyncs.items():
        print(f"BENCH name=w3.{name}.async{w}.ops value={ops:.3f} unit=ops/s")
    if not results:
        print("w3: nothing to measure")
        return
    print(f"\nW3: Python, 3 nodes in one process over TCP 127.0.0.1, log in memory, "
          f"64-byte commands, synchronous propose from N threads, {a.secs} s per row")
    print("| library      | threads |  ops/s | p50 us | p99 us | errors |")
    print("|--------------|---------|--------|--------|--------|--------|")
    for name, r in results.items():
        for t, ops, lats, errs in r:
            print(f"| {name:<12} | {t:>7} | {ops:>6.0f} | {pct(lats, 0.5):>6.0f} | "
                  f"{pct(lats, 0.99):>6.0f} | {errs:>6} |")
    print("\nW3 async: completion callbacks keep W proposals in flight")
    print("| library | in flight | ops/s |")
    print("|---|---:|---:|")
    for (name, w), ops in asyncs.items():
        label = {"pysyncobj": "PySyncObj (appendEntriesUseBatch=False)",
                 "pysyncobj.batch": "PySyncObj (appendEntriesUseBatch=True)"}.get(name, name)
        print(f"| {label} | {w} | {ops:.0f} |")
    if len(results) == 2:
        for (t, a_ops, *_), (_, b_ops, *_) in zip(results["raft_manager"], results["pysyncobj"]):
            ratio = a_ops / b_ops if b_ops else float("inf")
            print(f"BENCH name=w3.ratio.t{t} value={ratio:.3f} unit=x")
    if asyncs.get(("raft_manager", 256)) and asyncs.get(("pysyncobj", 256)):
        ratio = asyncs[("raft_manager", 256)] / asyncs[("pysyncobj", 256)]
        print(f"BENCH name=w3.ratio.async256 value={ratio:.3f} unit=x")
    rm_best = max((v for (n, _), v in asyncs.items() if n == "raft_manager"), default=0)
    py_best = max((v for (n, _), v in asyncs.items() if n.startswith("pysyncobj")), default=0)
    if rm_best and py_best:
        print(f"BENCH name=w3.raft_manager.async_best.ops value={rm_best:.3f} unit=ops/s")
        print(f"BENCH name=w3.pysyncobj.async_best.ops value={py_best:.3f} unit=ops/s")
        print(f"BENCH name=w3.ratio.async_best value={rm_best / py_best:.3f} unit=x")


if __name__ == "__main__":
    main()
