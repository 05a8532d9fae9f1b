#!/bin/bash
# run_ab.sh - compare two builds on the 64 B figures of issue 2, point 9:
# spin latency (ratio to the raw cache line of the same run), one producer's
# throughput (2 s window, log-bound) and, where a build has it, --burst.
#
#   bench/run_ab.sh BEFORE_AGENTBUS AFTER_AGENTBUS
#
# Each round runs every configuration once with BEFORE, then once with AFTER,
# so a slow minute of the shared host hits both alike. RUNS (default 5)
# rounds; raw JSON lines go to $OUT (default: a new directory under /tmp).
# A run that fails (e.g. --burst on a build without it) is logged and left out.
set -u

if [ $# -ne 2 ]; then
	echo "usage: bench/run_ab.sh BEFORE_AGENTBUS AFTER_AGENTBUS" >&2
	exit 2
fi
runs=${RUNS:-5}
out=${OUT:-$(mktemp -d /tmp/agentbus-ab.XXXXXX)}
mkdir -p "$out"

# run SIDE BINARY NAME ARGS...: one run, appended to $out/SIDE-NAME.jsonl.
run() {
	local side=$1 bin=$2 name=$3
	shift 3
	if ! timeout 600 "$bin" bench "$@" --json >>"$out/$side-$name.jsonl" 2>>"$out/errors.log"; then
		echo "run failed: $bin bench $* --json" >>"$out/errors.log"
	fi
}

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), before: $1, after: $2, runs: $runs," \
	"load $(cut -d' ' -f1-3 /proc/loadavg), raw: $out" >&2
for r in $(seq 1 "$runs"); do
	echo "# round $r/$runs" >&2
	for side in before after; do
		bin=$1
		[ "$side" = after ] && bin=$2
		run "$side" "$bin" lat-spin-64 latency --size 64 --wait spin
		run "$side" "$bin" tp-1p-64 throughput --size 64
		run "$side" "$bin" tp-burst-64 throughput --size 64 --burst
	done
done

python3 - "$out" <<'EOF'
import json, os, statistics, sys

out = sys.argv[1]

def load(name):
    path = os.path.join(out, name + ".jsonl")
    if not os.path.exists(path):
        return []
    rows = []
    for line in open(path):
        try:
            rows.append(json.loads(line))
        except ValueError:
            pass
    return [r for r in rows if r.get("ok")]

def med(values, fmt):
    return fmt.format(statistics.median(values)) + " (n={})".format(len(values)) if values else "-"

print("| figure | before | after |")
print("|---|---|---|")
for side_rows, label, key, fmt in (
        ("lat-spin-64", "spin p50 ns, 64 B", "p50_ns", "{:.0f}"),
        ("lat-spin-64", "spin p50 / raw cache line", "ratio_p50", "{:.2f}x"),
        ("lat-spin-64", "raw cache line p50 ns", "baseline_p50_ns", "{:.0f}"),
        ("tp-1p-64", "1 producer, 2 s window, M records/s", "msgs_per_s", "{:.2f}"),
        ("tp-burst-64", "1 producer, --burst, M records/s", "msgs_per_s", "{:.2f}"),
        ("tp-burst-64", "publish rate in the burst, M/s", "publish_msgs_per_s", "{:.2f}")):
    cells = []
    for side in ("before", "after"):
        values = [r[key] for r in load(side + "-" + side_rows)]
        if key.endswith("per_s"):
            values = [v / 1e6 for v in values]
        cells.append(med(values, fmt))
    print("| {} | {} | {} |".format(label, *cells))
EOF
