#!/usr/bin/env bash
# Interleaved rounds of the performance issue's workloads (`make bench-rounds`): each round
# runs every program once, in the same order, so a drift of the shared machine hits
# raft-manager and its peers alike; every round's BENCH lines go to
# target/bench-rounds/round-N.txt (with the load average before each program), then
# bench/ratios.py prints each round's table and the median [min-max] over the rounds.
# Assumes `make bench`'s build step ran. ROUNDS (3) and SECS (2, per row) override.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
secs=${SECS:-2}
out=target/bench-rounds
mkdir -p "$out"
rel=./target/release
py=.venv/bin/python
files=()
for r in $(seq 1 "$rounds"); do
  f="$out/round-$r.txt"
  : > "$f"
  files+=("$f")
  run() {
    echo "== round $r: $* (load average $(cut -d' ' -f1-3 /proc/loadavg))" | tee -a "$f"
    "$@" 2>&1 | tee -a "$f" | grep -v '^BENCH ' || true
  }
  run $rel/w1 --secs "$secs" --warmup 0.5
  run $rel/openraft-peer --secs "$secs" --warmup 0.5
  run $rel/raftrs-peer --secs "$secs" --warmup 0.5
  [ -x $rel/w1-capi ] && run $rel/w1-capi --secs "$secs" --warmup 0.5
  run $rel/hw-floor --syncs 400 --pings 4000
  run $rel/w2 --secs "$secs" --warmup 0.5
  run $rel/raftrs-peer w2 --secs "$secs" --warmup 0.5
  run $rel/catchup
  run $rel/catchup --tcp
  run $rel/failover --runs 20
  [ -x $py ] && run $py bench/python/w3.py --secs "$secs"
  # Last: its 4,000 mostly sleeping threads inflate the load average for a minute or two.
  run $rel/memory --idle 1000
done
for f in "${files[@]}"; do
  echo "== $f"
  python3 bench/ratios.py "$f" | sed -n '/^Targets/,$p'
done
echo "== median [min-max] over $rounds rounds"
python3 bench/ratios.py "${files[@]}"
