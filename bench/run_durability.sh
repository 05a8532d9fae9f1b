#!/bin/bash
# run_durability.sh - round-robin runs of the durability benchmarks (issue 3,
# point 8 and 5d), one JSON line per run in $OUT (default
# bench/results/durability-<date>.jsonl), tagged with the round, the command
# and the load average, then the median ratios per command. ROUNDS (default
# 5) sets how many rounds; B the binary (default build/agentbus). Each run is
# bounded by `timeout 300`.
set -u
B=${B:-build/agentbus}
ROUNDS=${ROUNDS:-5}
OUT=${OUT:-bench/results/durability-$(date -u +%Y%m%d-%H%M%S).jsonl}
mkdir -p "$(dirname "$OUT")"
for round in $(seq 1 "$ROUNDS"); do
	for cmd in "spill --json" "synced --publishers 1 --json" \
		   "synced --publishers 4 --json" "synced --publishers 16 --json" \
		   "replay --json" "restart --json"; do
		# shellcheck disable=SC2086 # $cmd is meant to split into words
		line=$(timeout 300 "$B" bench $cmd) || echo "round $round: '$cmd' failed" >&2
		[ -n "$line" ] || line=null
		printf '{"round":%d,"cmd":"%s","load":"%s","r":%s}\n' "$round" "$cmd" \
			"$(cut -d' ' -f1 /proc/loadavg)" "$line" >> "$OUT"
	done
done
echo "$OUT"
# The medians over the rounds, per command: `synced`'s p50 against a raw
# append + fdatasync, and the other benchmarks' ratios to their baselines.
python3 - "$OUT" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    row = json.loads(line)
    if row["r"]:
        runs.setdefault(row["cmd"], []).append(row["r"])
for cmd, rows in runs.items():
    for key in ("p50_ratio", "ratio", "synced_ratio"):
        vals = [r[key] for r in rows if key in r]
        if vals:
            print(f"{cmd}: median {key} {statistics.median(vals):.3f} over {len(vals)} runs")
PY
