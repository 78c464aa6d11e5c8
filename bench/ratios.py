#!/usr/bin/env python3
"""Prints raft-manager / peer ratios and the benchmark issue's targets from BENCH lines.

Usage: python3 bench/ratios.py target/bench-results.txt
       python3 bench/ratios.py ROUND1.txt ROUND2.txt ROUND3.txt   (median [min-max] per row)

Reads every `BENCH name=... value=... unit=...` line (the last value wins when a name
repeats), compares each raft-manager W1 variant with the peers' W1 from the same file
(openraft 0.9, `w1.openraft.*`; raft-rs 0.7, `w1.raftrs.*`), then prints the performance
issue's table: every row with its figure, the same-run reference, the ratio and a met /
MISSED verdict (W1 at 256 >= 2x the best peer; W1 at 1 in flight p50 <= 0.8x the best
peer's and more ops/s; W2 at 1 in flight p50 <= 1.2x the hardware floor (fdatasync p50 +
loopback RTT p50 from `hw-floor`); W2 at 256 >= 1.5x the raft-rs harness; catch-up >= 1 GB/s
in-process and >= 500 MB/s over TCP; idle node <= 2 MiB with >= 1,000 nodes in one process;
C ABI >= 0.95x the Rust API at 256; W3 >= 10x PySyncObj at 64 threads; W3 async (best
window) >= 2x PySyncObj's best asynchronous configuration), plus failover p50 < 300 ms and
worst < 450 ms. Missing figures are reported as missing.
"""

from __future__ import annotations

import re
import sys

LINE = re.compile(r"^BENCH name=(\S+) value=(\S+) unit=(\S+)")

# raft-manager W1 variants: (label, BENCH name prefix).
VARIANTS = [
    ("Rust API, default", "w1.mem.inproc"),
    ("Rust API, caller_runs", "w1.mem.inproc.caller_runs"),
    ("C ABI, default", "w1.capi"),
    ("C ABI, caller_runs", "w1.capi.caller_runs"),
    ("C++ raft.hpp, default", "w1.cpp"),
    ("Go binding, default", "w1.go"),
    ("Go binding, goroutines", "w1.go.goroutines"),
]
# Language layers over the C ABI, compared with the C ABI's W1 of the same run.
OVER_CAPI = [
    ("C++ raft.hpp", "w1.cpp"),
    ("Go binding (ProposeAsync)", "w1.go"),
    ("Go binding (goroutines, Propose)", "w1.go.goroutines"),
]
WINDOWS = [1, 16, 64, 256]


def load(path: str) -> dict[str, float]:
    figures: dict[str, float] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = LINE.match(line.strip())
            if m:
                try:
                    figures[m.group(1)] = float(m.group(2))
                except ValueError:
                    pass
    return figures


def verdict(ok: bool | None) -> str:
    return "missing" if ok is None else ("met" if ok else "MISSED")


def w1_table(fig: dict[str, float], peer: str, peer_name: str) -> None:
    print(f"W1 raft-manager / {peer_name} (same run): ops/s ratio per in-flight count; one")
    print(f"proposer's p50 in us (raft-manager vs {peer_name})")
    print("| variant | " + " | ".join(f"x at {w}" for w in WINDOWS) + f" | p50 at 1 (rm / {peer_name}) |")
    print("|---|" + "---:|" * len(WINDOWS) + "---|")
    for label, prefix in VARIANTS:
        if f"{prefix}.c1.ops" not in fig and f"{prefix}.c256.ops" not in fig:
            continue
        cells = []
        for w in WINDOWS:
            a, b = fig.get(f"{prefix}.c{w}.ops"), fig.get(f"{peer}.c{w}.ops")
            cells.append(f"{a / b:.2f}" if a is not None and b else "-")
        a, b = fig.get(f"{prefix}.c1.p50"), fig.get(f"{peer}.c1.p50")
        p50 = f"{a:.1f} / {b:.1f}" if a is not None and b is not None else "-"
        print(f"| {label} | " + " | ".join(cells) + f" | {p50} |")
    print()


def targets(fig: dict[str, float]) -> list[tuple[str, str, str, str, bool | None]]:
    """The performance issue's rows: (workload, ours, same-run reference, ratio, verdict)."""
    def get(name: str) -> float | None:
        return fig.get(name)

    peers = [("openraft 0.9", "w1.openraft"), ("raft-rs 0.7", "w1.raftrs")]
    rows: list[tuple[str, str, str, str, bool | None]] = []

    def row(what: str, ours: str, ref: str, ratio: str, ok: bool | None) -> None:
        rows.append((what, ours, ref, ratio, ok))

    # W1, 256 in flight: raft-manager's best mode vs the best peer.
    ours = max((v for v in (get(f"{p}.c256.ops") for _, p in VARIANTS[:2]) if v), default=None)
    best = max(((get(f"{p}.c256.ops"), n) for n, p in peers if get(f"{p}.c256.ops")), default=None)
    if ours and best:
        r = ours / best[0]
        row("W1 in-process, 256 in flight (ops/s)", f"{ours:,.0f}", f"{best[0]:,.0f} ({best[1]})",
            f"{r:.2f}x (goal >= 2x)", r >= 2.0)
    else:
        row("W1 in-process, 256 in flight (ops/s)", "-", "-", "-", None)

    # W1, 1 in flight, default config: p50 <= 0.8x the best peer's and more ops/s.
    p50, ops1 = get("w1.mem.inproc.c1.p50"), get("w1.mem.inproc.c1.ops")
    bp50 = min(((get(f"{p}.c1.p50"), n) for n, p in peers if get(f"{p}.c1.p50")), default=None)
    bops = max(((get(f"{p}.c1.ops"), n) for n, p in peers if get(f"{p}.c1.ops")), default=None)
    if p50 and bp50:
        r = p50 / bp50[0]
        row("W1, 1 in flight, default config (p50 us)", f"{p50:.1f}", f"{bp50[0]:.1f} ({bp50[1]})",
            f"{r:.2f}x (goal <= 0.8x)", r <= 0.8)
    else:
        row("W1, 1 in flight, default config (p50 us)", "-", "-", "-", None)
    if ops1 and bops:
        r = ops1 / bops[0]
        row("W1, 1 in flight, default config (ops/s)", f"{ops1:,.0f}", f"{bops[0]:,.0f} ({bops[1]})",
            f"{r:.2f}x (goal > 1x)", r > 1.0)
    else:
        row("W1, 1 in flight, default config (ops/s)", "-", "-", "-", None)
    cr = get("w1.mem.inproc.caller_runs.c1.p50")
    if cr and p50:
        row("W1, 1 in flight, caller_runs (p50 us)", f"{cr:.1f}", f"{p50:.1f} (default config)",
            f"{cr / p50:.2f}x (goal < 1x)", cr < p50)

    # W2, 1 in flight: p50 <= 1.2x (fdatasync p50 + loopback RTT p50), same run.
    w2p50 = get("w2.disk-fsync-always.tcp.c1.p50")
    # The floor sampled by w2 itself around its 1-in-flight row wins over hw-floor's (the
    # disk's fdatasync latency moves by 10-30x within minutes on a shared machine).
    fs = get("w2.floor.fdatasync.p50") or get("floor.fdatasync.p50")
    rtt = get("w2.floor.tcp_rtt.p50") or get("floor.tcp_rtt.p50")
    if w2p50 and fs is not None and rtt is not None:
        floor = fs + rtt
        r = w2p50 / floor
        rr = get("w2.raftrs.disk-fsync-always.tcp.c1.p50")
        extra = f"; raft-rs {rr:.0f}" if rr else ""
        row("W2 TCP, fsync, 1 in flight (p50 us)", f"{w2p50:.0f}",
            f"floor {floor:.0f} = fdatasync {fs:.0f} + RTT {rtt:.0f}{extra}",
            f"{r:.2f}x (goal <= 1.2x)", r <= 1.2)
    else:
        row("W2 TCP, fsync, 1 in flight (p50 us)", "-", "-", "-", None)

    crp = get("w2.disk-fsync-always.tcp.caller_runs.c1.p50")
    if crp and fs is not None and rtt is not None:
        row("W2 TCP, fsync, 1 in flight, caller_runs (p50 us)", f"{crp:.0f}", f"floor {fs + rtt:.0f}",
            f"{crp / (fs + rtt):.2f}x (goal <= 1.2x)", crp / (fs + rtt) <= 1.2)

    # W2, 256 in flight: >= 1.5x the raft-rs harness.
    a, b = get("w2.disk-fsync-always.tcp.c256.ops"), get("w2.raftrs.disk-fsync-always.tcp.c256.ops")
    if a and b:
        row("W2 TCP, fsync, 256 in flight (ops/s)", f"{a:,.0f}", f"{b:,.0f} (raft-rs)",
            f"{a / b:.2f}x (goal >= 1.5x)", a / b >= 1.5)
    else:
        row("W2 TCP, fsync, 256 in flight (ops/s)", "-", "-", "-", None)

    # Catch-up, 1 M entries behind.
    for name, label, goal in (("catchup.mem.inproc.log.mbps", "catch-up in-process (payload MB/s)", 1000.0),
                              ("catchup.disk.tcp.log.mbps", "catch-up TCP + disk (payload MB/s)", 500.0)):
        v = get(name)
        row(label, f"{v:.0f}" if v is not None else "-", f"goal {goal:.0f}",
            f"{v / goal:.2f}x of goal" if v is not None else "-", v >= goal if v is not None else None)

    # Idle node memory.
    per, n = get("memory.idle.per_node.rss"), get("memory.idle.nodes")
    if per is not None and n is not None:
        row("idle node memory (MiB per node)", f"{per:.3f} ({n:.0f} nodes)", "goal 2 MiB, 1,000 nodes",
            f"{per / 2.0:.2f}x of goal", per <= 2.0 and n >= 1000)
    else:
        row("idle node memory (MiB per node)", "-", "-", "-", None)

    # C ABI vs Rust API, W1 256.
    a, b = get("w1.capi.c256.ops"), get("w1.mem.inproc.c256.ops")
    if a and b:
        row("C ABI vs Rust API, W1 256 (ops/s)", f"{a:,.0f}", f"{b:,.0f} (Rust API)",
            f"{a / b:.2f}x (goal >= 0.95x)", a / b >= 0.95)
    else:
        row("C ABI vs Rust API, W1 256 (ops/s)", "-", "-", "-", None)

    # W3.
    a, b = get("w3.raft_manager.t64.ops"), get("w3.pysyncobj.t64.ops")
    if a and b:
        row("W3 Python, 64 threads blocking (ops/s)", f"{a:,.0f}", f"{b:,.0f} (PySyncObj)",
            f"{a / b:.1f}x (goal >= 10x)", a / b >= 10)
    else:
        row("W3 Python, 64 threads blocking (ops/s)", "-", "-", "-", None)
    a, b = get("w3.raft_manager.async_best.ops"), get("w3.pysyncobj.async_best.ops")
    if a and b:
        row("W3 Python async, best window (ops/s)", f"{a:,.0f}", f"{b:,.0f} (PySyncObj best async)",
            f"{a / b:.2f}x (goal >= 2x)", a / b >= 2)
    else:
        row("W3 Python async, best window (ops/s)", "-", "-", "-", None)

    # Failover (earlier issue's targets, kept).
    fp50, fmax = get("failover.tcp.disk.p50"), get("failover.tcp.disk.max")
    row("failover p50 (ms)", f"{fp50:.0f}" if fp50 is not None else "-", "goal < 300", "-",
        fp50 < 300 if fp50 is not None else None)
    row("failover worst (ms)", f"{fmax:.0f}" if fmax is not None else "-", "goal < 450", "-",
        fmax < 450 if fmax is not None else None)

    return rows


def first_number(text: str) -> float | None:
    m = re.search(r"-?[0-9][0-9,]*\.?[0-9]*", text)
    return float(m.group(0).replace(",", "")) if m else None


def summary(paths: list[str]) -> None:
    """Median [min-max] of every target row over several runs (rounds), each a same-run ratio."""
    runs = [targets(load(p)) for p in paths]
    print(f"Targets over {len(runs)} rounds: median [min-max] of each round's figures and ratio")
    print("| workload | raft-manager | reference | ratio | met in |")
    print("|---|---:|---:|---|---:|")

    def med(v: list[float]) -> str:
        if not v:
            return "-"
        v = sorted(v)
        m = v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2
        fmt = (lambda x: f"{x:,.0f}") if m >= 100 else (lambda x: f"{x:.2f}")
        return f"{fmt(m)} [{fmt(v[0])}-{fmt(v[-1])}]"

    for i, (what, *_rest) in enumerate(runs[0]):
        cells = [r[i] for r in runs if i < len(r) and r[i][0] == what]
        ours = [x for x in (first_number(c[1]) for c in cells) if x is not None]
        ref = [x for x in (first_number(c[2].replace("floor ", "")) for c in cells) if x is not None]
        ratio = [x for x in (first_number(c[3]) for c in cells) if x is not None]
        met = sum(1 for c in cells if c[4])
        known = sum(1 for c in cells if c[4] is not None)
        print(f"| {what} | {med(ours)} | {med(ref)} | {med(ratio)} | {met}/{known} |")


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    if len(sys.argv) > 2:
        summary(sys.argv[1:])
        return 0
    fig = load(sys.argv[1])
    for peer, peer_name in (("w1.openraft", "openraft"), ("w1.raftrs", "raft-rs")):
        if f"{peer}.c1.ops" in fig or f"{peer}.c256.ops" in fig:
            w1_table(fig, peer, peer_name)

    capi_rows = [(label, p) for label, p in OVER_CAPI if f"{p}.c1.ops" in fig or f"{p}.c256.ops" in fig]
    if capi_rows:
        print("W1 language layers / C ABI (same run): ops/s ratio per in-flight count")
        print("| layer | " + " | ".join(f"x at {w}" for w in WINDOWS) + " |")
        print("|---|" + "---:|" * len(WINDOWS))
        for label, prefix in capi_rows:
            cells = []
            for w in WINDOWS:
                a, b = fig.get(f"{prefix}.c{w}.ops"), fig.get(f"w1.capi.c{w}.ops")
                cells.append(f"{a / b:.2f}" if a is not None and b else "-")
            print(f"| {label} | " + " | ".join(cells) + " |")
        print()

    rows = targets(fig)
    print("Targets (same run)")
    print("| workload | raft-manager | reference, same run | ratio | verdict |")
    print("|---|---:|---|---|---|")
    for what, ours, ref, ratio, ok in rows:
        print(f"| {what} | {ours} | {ref} | {ratio} | {verdict(ok)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
