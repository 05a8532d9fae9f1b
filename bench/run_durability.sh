#!/bin/bash
# run_durability.sh - round-robin runs of the durability benchmarks (issue 3,
# point 8 and 5d), one JSON line per run in $OUT (default
# bench/results/durability-<date>.jsonl), tagged with the round, the command
# and the load average. ROUNDS (default 5) sets how many rounds; B the binary
# (default build/agentbus). Each run is bounded by `timeout 300`.
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
