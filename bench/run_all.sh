#!/bin/bash
# run_all.sh - rerun every benchmark recorded in bench/RESULTS.md and print
# the medians as Markdown tables.
#
#   bench/run_all.sh [BENCH_COMMAND]
#
# BENCH_COMMAND defaults to `build/agentbus bench` (or build/bench/agentbus-bench
# when the CLI is absent). RUNS (default 5) is the number of runs per
# configuration; the runs go round-robin over the configurations, so a slow
# minute of the shared host hits all of them alike. Raw JSON lines are kept in
# $OUT (default: a new directory under /tmp), one file per configuration.
# Every run is bounded by `timeout`; a failed run is reported and left out.
# SUMMARY_ONLY=1 OUT=DIR only prints the medians of the runs already in DIR.
set -u

cd "$(dirname "$0")/.." || exit 1
if [ $# -gt 0 ]; then
	bench="$*"
elif [ -x build/agentbus ]; then
	bench="build/agentbus bench"
else
	bench="build/bench/agentbus-bench"
fi
runs=${RUNS:-5}
out=${OUT:-$(mktemp -d /tmp/agentbus-bench.XXXXXX)}
mkdir -p "$out"
sizes="64 1024 65536"

# run NAME ARGS...: one run, appended to $out/NAME.jsonl.
run() {
	local name=$1
	shift
	if ! timeout 600 $bench "$@" --json >>"$out/$name.jsonl" 2>>"$out/errors.log"; then
		echo "run failed: $bench $* --json" | tee -a "$out/errors.log" >&2
	fi
}

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git describe --always --dirty 2>/dev/null || cat COMMIT 2>/dev/null)," \
	"$(nproc) CPUs, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg), bench: $bench," \
	"runs: $runs, raw: $out" >&2
if [ -z "${SUMMARY_ONLY:-}" ]; then
run noise-before noise
for r in $(seq 1 "$runs"); do
	echo "# round $r/$runs" >&2
	for size in $sizes; do
		run "lat-spin-$size" latency --size "$size" --wait spin
		run "lat-sleep-$size" latency --size "$size" --wait sleep
		run "tp-1p-$size" throughput --size "$size" --producers 1
		run "tp-2p-same-$size" throughput --size "$size" --producers 2 --same-cpu
	done
done
run noise-after noise
fi

python3 - "$out" "$sizes" <<'EOF'
import json, os, statistics, sys

out, sizes = sys.argv[1], [int(s) for s in sys.argv[2].split()]

def load(name):
    path = os.path.join(out, name + ".jsonl")
    rows = []
    if os.path.exists(path):
        for line in open(path):
            line = line.strip()
            if line:
                row = json.loads(line)
                if row.get("ok", True):
                    rows.append(row)
    return rows

def med(rows, key, sub=None):
    vals = [(r[sub][key] if sub else r[key]) for r in rows if (sub is None or sub in r)]
    return statistics.median(vals) if vals else float("nan")

print("## Latency (one way, ns; medians over runs of each run's percentile)\n")
print("| size | wait | runs | agentbus p50 | p99 | p99.9 | max | baseline p50 | agentbus/baseline p50 (median of per-run ratios) | unix socket p50 | ping-pong/2 p50 |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for wait in ("spin", "sleep"):
    for size in sizes:
        rows = load(f"lat-{wait}-{size}")
        if not rows:
            print(f"| {size} | {wait} | 0 | failed |")
            continue
        base = "cache line" if wait == "spin" else "futex wake"
        pp = med(rows, "p50_ns", "cacheline_pingpong_half_rtt") if wait == "spin" else float("nan")
        print(f"| {size} B | {wait} | {len(rows)} | {med(rows,'p50_ns'):.0f} | {med(rows,'p99_ns'):.0f} "
              f"| {med(rows,'p999_ns'):.0f} | {med(rows,'max_ns'):.0f} | {base} {med(rows,'baseline_p50_ns'):.0f} "
              f"| {med(rows,'ratio_p50'):.2f}x | {med(rows,'p50_ns','unix_socket'):.0f} "
              f"| {'-' if pp != pp else f'{pp:.0f}'} |")

print("\n## Throughput (records delivered to the subscriber per second; medians over runs)\n")
print("| size | producers | runs | M records/s | MB/s (payload) | publish M records/s | 2 same-CPU / 1 (medians) | median of per-round ratios |")
print("|---|---|---|---|---|---|---|---|")
for size in sizes:
    one, two = load(f"tp-1p-{size}"), load(f"tp-2p-same-{size}")
    m1 = med(one, "msgs_per_s")
    for label, rows in (("1", one), ("2, --same-cpu", two)):
        if not rows:
            print(f"| {size} B | {label} | 0 | failed |")
            continue
        m = med(rows, "msgs_per_s")
        ratio = per_round = ""
        if rows is two and one:
            ratio = f"{m / m1:.2f}x"
            pairs = [b["msgs_per_s"] / a["msgs_per_s"] for a, b in zip(one, two) if a["msgs_per_s"]]
            per_round = f"{statistics.median(pairs):.2f}x" if pairs else ""
        print(f"| {size} B | {label} | {len(rows)} | {m/1e6:.3f} | {med(rows,'bytes_per_s')/1e6:.0f} "
              f"| {med(rows,'publish_msgs_per_s')/1e6:.3f} | {ratio} | {per_round} |")

print("\n## Host noise (share of time a pinned spinning process did not run)\n")
for name in ("noise-before", "noise-after"):
    for row in load(name):
        cells = ", ".join(f"{p['probe']} CPU {p['cpu']}: {p['lost_pct']:.1f}% (max gap {p['max_gap_ns']/1e6:.1f} ms)"
                          for p in row["probes"])
        print(f"- {name}: {cells}")
EOF
if [ -s "$out/errors.log" ]; then
	echo "# stderr of the runs: $out/errors.log" >&2
fi
