#!/usr/bin/env python3
"""Prints raft-manager / peer ratios and the benchmark issue's targets from BENCH lines.

Usage: python3 bench/ratios.py target/bench-results.txt

Reads every `BENCH name=... value=... unit=...` line (the last value wins when a name
repeats), compares each raft-manager W1 variant with openraft's W1 from the same file, and
checks the targets: W1 at 256 in flight >= 2x openraft's ops/s, one proposer's p50 below
openraft's, W2 >= 100,000 ops/s at 256, W3 >= 10x PySyncObj at 64 threads and async >= 3x,
failover p50 < 300 ms and worst < 450 ms. Missing figures are reported as missing.
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


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    fig = load(sys.argv[1])
    peer = "w1.openraft"
    print("W1 raft-manager / openraft (same run): ops/s ratio per in-flight count; one")
    print("proposer's p50 in us (raft-manager vs openraft)")
    print("| variant | " + " | ".join(f"x at {w}" for w in WINDOWS) + " | p50 at 1 (rm / openraft) |")
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

    def ratio(a: str, b: str) -> float | None:
        x, y = fig.get(a), fig.get(b)
        return x / y if x is not None and y else None

    checks: list[tuple[str, bool | None]] = []
    best256 = [r for r in (ratio(f"{p}.c256.ops", f"{peer}.c256.ops") for _, p in VARIANTS[:2]) if r]
    checks.append(("W1 at 256 in flight >= 2x openraft (Rust API, best mode)",
                   max(best256) >= 2.0 if best256 else None))
    p50s = [fig[f"{p}.c1.p50"] for _, p in VARIANTS[:2] if f"{p}.c1.p50" in fig]
    checks.append(("W1 one proposer p50 below openraft's (Rust API, best mode)",
                   min(p50s) < fig[f"{peer}.c1.p50"] if p50s and f"{peer}.c1.p50" in fig else None))
    w2 = fig.get("w2.disk-fsync-always.tcp.c256.ops")
    checks.append(("W2 >= 100,000 ops/s at 256 with fsync", w2 >= 100_000 if w2 is not None else None))
    w3 = fig.get("w3.ratio.t64")
    checks.append(("W3 >= 10x PySyncObj at 64 threads", w3 >= 10 if w3 is not None else None))
    w3a = fig.get("w3.ratio.async256")
    checks.append(("W3 async >= 3x PySyncObj async", w3a >= 3 if w3a is not None else None))
    fp50, fmax = fig.get("failover.tcp.disk.p50"), fig.get("failover.tcp.disk.max")
    checks.append(("failover p50 < 300 ms", fp50 < 300 if fp50 is not None else None))
    checks.append(("failover worst < 450 ms", fmax < 450 if fmax is not None else None))
    print("Targets")
    for what, ok in checks:
        print(f"  {verdict(ok):8} {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
