#!/bin/bash
# test_cli.sh - end-to-end test of the `agentbus` command-line tool.
#
# Usage: bash cli/test_cli.sh [PATH/TO/agentbus]   (default build/agentbus)
#
# Starts a daemon on a private bus (cli-test-<pid>) with its logs in a private
# data directory (mktemp -d), runs every command, the happy paths and the
# error cases, checking exit codes and output, then stops the daemon by pid,
# replays and verifies the logs without it (also after damaging one byte),
# and removes the bus's shared memory and the data directory. Every command
# runs under `timeout`, so a hang is a failure, not a stuck test. Exits 0
# when all checks pass, 1 otherwise.

set -u

AB=${1:-build/agentbus}
BUS=cli-test-$$
SHM_ROOT=${AGENTBUS_SHM_DIR:-/dev/shm/agentbus-$(id -u)}
TMP=$(mktemp -d)
DATA=$(mktemp -d)
DAEMON_PID=
LONG_PID=
FAILURES=0
CHECKS=0
# Logs go where --data-dir says, never to the user's data directory.
unset AGENTBUS_BUS AGENTBUS_DATA
export XDG_DATA_HOME=$TMP/xdg

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

cleanup() {
	if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
		kill -TERM "$DAEMON_PID" 2>/dev/null
		wait_gone "$DAEMON_PID" 50 || kill -KILL "$DAEMON_PID" 2>/dev/null
	fi
	if [ -n "$LONG_PID" ] && kill -0 "$LONG_PID" 2>/dev/null; then
		kill -TERM "$LONG_PID" 2>/dev/null
		wait_gone "$LONG_PID" 50 || kill -KILL "$LONG_PID" 2>/dev/null
	fi
	rm -rf "${SHM_ROOT:?}/$BUS" "${SHM_ROOT:?}/$BUS-long" "${TMP:?}" "${DATA:?}"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	FAILURES=$((FAILURES + 1))
}

# wait_gone PID TENTHS: wait up to TENTHS/10 s for PID to exit; 1 if it did not.
wait_gone() {
	local i
	for ((i = 0; i < $2; i++)); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.1
	done
	return 1
}

# run CMD...: run with a time limit; sets RC, OUT, ERR. Any death by a
# signal (a crash, or the time limit) is a failure on its own.
run() {
	CHECKS=$((CHECKS + 1))
	timeout -k 2 20 "$@" >"$TMP/out" 2>"$TMP/err" </dev/null
	RC=$?
	OUT=$(<"$TMP/out")
	ERR=$(<"$TMP/err")
	if [ "$RC" -ge 124 ]; then
		fail "'$*' died or hung (exit $RC): $ERR"
	fi
}

# ok CMD...: must exit 0.
ok() {
	run "$@"
	[ "$RC" -eq 0 ] || fail "'$*' exited $RC, want 0; stderr: $ERR"
}

# bad CODE PATTERN CMD...: must exit CODE with one line on stderr matching PATTERN.
bad() {
	local code=$1 pattern=$2
	shift 2
	run "$@"
	[ "$RC" -eq "$code" ] || fail "'$*' exited $RC, want $code; stderr: $ERR"
	[ "$(wc -l <"$TMP/err")" -eq 1 ] || fail "'$*' wrote $(wc -l <"$TMP/err") lines on stderr, want 1: $ERR"
	grep -qE -- "$pattern" <<<"$ERR" || fail "'$*': stderr '$ERR' does not match '$pattern'"
	[ "${ERR#agentbus: }" != "$ERR" ] || fail "'$*': stderr does not start with 'agentbus: ': $ERR"
}

# has PATTERN: the last command's stdout matches the extended regex PATTERN.
has() {
	grep -qE -- "$1" <<<"$OUT" || fail "output of last command lacks '$1'; got: $OUT"
}

# lines N: the last command printed exactly N lines.
lines() {
	local n
	n=$(grep -c '' <<<"$OUT")
	[ -n "$OUT" ] || n=0
	[ "$n" -eq "$1" ] || fail "last command printed $n lines, want $1; got: $OUT"
}

# The tool with --bus of the test bus (an array: `timeout` cannot run a function).
ABB=("$AB" --bus "$BUS")

# ---------------------------------------------------------------------------
# Without a daemon
# ---------------------------------------------------------------------------

test_help() {
	local cmd
	ok "$AB" --help; has '^Usage: agentbus'
	ok "$AB" -h; has 'Commands:'
	ok "$AB" help; has 'Commands:'
	ok "$AB" --version; has '^agentbus '
	for cmd in daemon stream pub sub replay verify "stream add" "stream ls" "stream info" "stream rm"; do
		# shellcheck disable=SC2086
		ok "$AB" $cmd --help; has '^Usage: agentbus'
		# shellcheck disable=SC2086
		ok "$AB" help $cmd; has '^Usage: agentbus'
	done
	ok "$AB" pub -h; has 'SUBJECT'
	ok "$AB" sub --help; has 'data_base64'
	ok "$AB" stream ls --bus x --help; has 'stream ls'
	ok "$AB" stream add --help; has '--retention-force'; has '--fsync'
	ok "$AB" replay --help; has '--rate'
	ok "$AB" verify --help; has 'seq N: WHAT'
}

test_usage_errors() {
	bad 2 "^agentbus: missing command" "$AB"
	bad 2 "^agentbus: missing command" "$AB" --bus x
	bad 2 "unknown command 'frobnicate'" "$AB" frobnicate
	bad 2 "unknown or ambiguous option '--bogus'" "$AB" --bogus
	bad 2 "unknown or ambiguous option '--from'" "$AB" sub s --from=3
	bad 2 "unknown option '-x'" "$AB" -x
	bad 2 "missing command" "$AB" stream
	bad 2 "unknown command 'nope'" "$AB" stream nope
	bad 2 "unknown or ambiguous option '--bogus'" "$AB" stream ls --bogus
	bad 2 "option '--bus' needs a value" "$AB" stream ls --bus
	bad 2 "--bus needs a name" "$AB" --bus= stream ls
	bad 2 "option '--json' takes no value" "$AB" stream ls --json=yes
	bad 2 "missing NAME" "$AB" stream info
	bad 2 "unexpected argument 'b'" "$AB" stream info a b
	bad 2 "unexpected argument 'x'" "$AB" stream ls x
	bad 2 "unknown or ambiguous option '--json'" "$AB" stream rm s --json
	bad 2 "unexpected argument 'x'" "$AB" daemon x
	bad 2 "missing STREAM" "$AB" pub
	bad 2 "missing SUBJECT" "$AB" pub s
	bad 2 "missing STREAM" "$AB" sub
	for size in abc -1 10X 1.5K 0 "" " 5" 99999999999999999999 18014398509481984K 16EiB 4Kb; do
		bad 2 "bad --ring-size" "$AB" stream add s --ring-size "$size"
	done
	bad 2 "bad --max-record" "$AB" stream add s --max-record=-5
	bad 2 "invalid subject 'a..b'" "$AB" pub s a..b x
	bad 2 "invalid subject" "$AB" pub s 'tool.*' x
	bad 2 "invalid subject" "$AB" pub s 'has space' x
	bad 2 "bad --count" "$AB" pub s a.b x --count 0
	bad 2 "bad --count" "$AB" pub s a.b x --count -3
	bad 2 "bad --count" "$AB" pub s a.b x --count 1e3
	bad 2 "bad --header" "$AB" pub s a.b x --header novalue
	bad 2 "bad --header" "$AB" pub s a.b x --header =v
	bad 2 "--key must not be empty" "$AB" pub s a.b x --key ''
	bad 2 "option '--count' needs a value" "$AB" sub s --count
	bad 2 "invalid --subject" "$AB" sub s --subject 'a.>.b'
	bad 2 "invalid --subject" "$AB" sub s --subject ''
	bad 2 "bad --from-seq" "$AB" sub s --from-seq 0
	bad 2 "bad --from-seq" "$AB" sub s --from-seq x
	bad 2 "exclude each other" "$AB" sub s --new --from-start
	bad 2 "exclude each other" "$AB" sub s --from-seq 3 --from-start
	for t in -1 abc 1e3 . 1.2.3 "" 99999999999; do
		bad 2 "bad --timeout" "$AB" sub s --timeout "$t"
	done
	bad 2 "bad --count" "$AB" sub s --count 0
}

# The options of issue 3 (durability, retention, replay, verify), refused
# before anything is opened.
test_durability_usage_errors() {
	local v
	bad 2 "option '--data-dir' needs a value" "$AB" daemon --data-dir
	bad 2 "--data-dir needs a directory" "$AB" daemon --data-dir ''
	for v in fast '' MEMORY 1; do
		bad 2 "bad --durability" "$AB" stream add s --durability "$v"
	done
	bad 2 "bad --durability" "$AB" pub s a.b x --durability safe
	for v in sometimes '' 0ms 200 1.5s -1ms 200us; do
		bad 2 "bad --fsync" "$AB" stream add s --fsync "$v"
	done
	bad 2 "--durability synced needs an --fsync other than never" \
		"$AB" stream add s --fsync never --durability synced
	bad 2 "--durability synced needs an --fsync other than never" \
		"$AB" stream add s --durability synced --fsync=never
	bad 2 "bad --overflow" "$AB" stream add s --overflow drop
	bad 2 "bad --segment-size" "$AB" stream add s --segment-size 1X
	for v in abc 30 -1s 1.5h 0s '' 1d2h; do
		bad 2 "bad --max-age" "$AB" stream add s --max-age "$v"
	done
	bad 2 "bad --max-bytes" "$AB" stream add s --max-bytes -1
	bad 2 "bad --max-records" "$AB" stream add s --max-records 0
	bad 2 "bad --max-records" "$AB" stream add s --max-records 1k
	bad 2 "option '--retention-force' takes no value" "$AB" stream add s --retention-force=1
	for v in yesterday 2026-13-01T00:00:00Z 2026-02-29T00:00:00Z 2026-11-31T00:00:00Z \
		'2026-11-22 18:30:00Z' 2026-11-22T18:30:00 2026-11-22T18:30:00.Z \
		2026-11-22T24:00:00Z 2026-11-22T18:30:00.1234567890Z -5 -5x - ''; do
		bad 2 "bad --from-time" "$AB" sub s --from-time "$v"
	done
	bad 2 "bad --from-time" "$AB" replay s --from-time 2026-11-22T18:30:00
	bad 2 "bad --from-time" "$AB" replay s --from-time -5
	bad 2 "exclude each other" "$AB" sub s --from-time -5m --from-start
	bad 2 "missing STREAM" "$AB" replay
	bad 2 "unexpected argument 'b'" "$AB" replay a b
	bad 2 "exclude each other" "$AB" replay s --from-start --from-seq 1
	bad 2 "exclude each other" "$AB" replay s --from-time -1m --from-seq 1
	bad 2 "bad --from-seq" "$AB" replay s --from-seq 0
	bad 2 "bad --to-seq" "$AB" replay s --to-seq 0
	bad 2 "bad --to-seq" "$AB" replay s --to-seq x
	bad 2 "--to-seq 2 is before --from-seq 5" "$AB" replay s --from-seq 5 --to-seq 2
	bad 2 "bad --rate" "$AB" replay s --rate fast
	bad 2 "invalid --subject" "$AB" replay s --subject 'a.>.b'
	bad 2 "--data-dir needs a directory" "$AB" replay s --data-dir ''
	bad 2 "unexpected argument 'b'" "$AB" verify a b
	bad 2 "--data-dir needs a directory" "$AB" verify --data-dir ''
	bad 2 "unknown or ambiguous option '--bogus'" "$AB" verify --bogus
}

test_no_daemon() {
	bad 1 "no daemon serves bus '$BUS'" "$AB" --bus "$BUS" stream ls
	bad 1 "no daemon serves bus '$BUS'" "$AB" pub --bus "$BUS" s a.b x
	bad 1 "no daemon serves bus '$BUS'" "$AB" sub s --bus "$BUS" --timeout 0
}

# ---------------------------------------------------------------------------
# With a daemon
# ---------------------------------------------------------------------------

start_daemon() {
	local i
	timeout -k 2 170 "$AB" daemon --bus "$BUS" --data-dir "$DATA" --verbose 2>"$TMP/daemon.err" &
	DAEMON_PID=$!
	for ((i = 0; i < 50; i++)); do
		# "no stream named" means a daemon answered.
		if timeout 5 "$AB" stream info --bus "$BUS" probe 2>&1 | grep -q 'no stream named'; then
			return 0
		fi
		sleep 0.1
	done
	fail "daemon did not answer within 5 s: $(cat "$TMP/daemon.err")"
	return 1
}

test_streams() {
	bad 1 "already served by another daemon" "$AB" daemon --bus "$BUS"
	ok "${ABB[@]}" stream ls; lines 1; has '^NAME'
	ok "${ABB[@]}" stream ls --json; [ "$OUT" = "[]" ] || fail "empty ls --json printed '$OUT'"
	ok "${ABB[@]}" stream add s1; has "created stream 's1'"
	bad 1 "a stream named 's1' already exists" "${ABB[@]}" stream add s1
	ok "${ABB[@]}" stream add small --ring-size 64K --max-record 16KiB; has 'ring 64KiB, max record 16KiB'
	ok "$AB" stream add sized --ring-size=1M --bus "$BUS"
	run "${ABB[@]}" stream add odd --ring-size 100K
	[[ $RC -ne 0 && $RC -lt 124 ]] || fail "ring size 100K (no power of two) exited $RC"
	run "${ABB[@]}" stream add 'bad/name'
	[[ $RC -ne 0 && $RC -lt 124 ]] || fail "stream name 'bad/name' exited $RC"
	ok "${ABB[@]}" stream ls; has '^NAME .* LOG$'; has '^s1 '; has '^small '; has '^sized '
	ok "$AB" stream --bus "$BUS" ls; has '^s1 '
	ok env AGENTBUS_BUS="$BUS" "$AB" stream ls; has '^s1 '
	ok "${ABB[@]}" stream ls --json; has '"name":"s1"'; has '"ring_size":67108864'
	ok "${ABB[@]}" stream info small
	has '^name: +small$'; has '^ring_size: +65536 '; has '^max_record: +16384 '
	has '^first_seq: +1$'; has '^next_seq: +1$'; has '^gaps: +0$'; has '^subscriptions: +0$'
	ok "${ABB[@]}" stream info small --json; lines 1
	for field in name ring_size max_record first_seq next_seq ring_used gaps subscriptions sleepers; do
		has "\"$field\":"
	done
	bad 1 "stream info: no stream named 'nope'" "${ABB[@]}" stream info nope
	bad 1 "stream rm: no stream named 'nope'" "${ABB[@]}" stream rm nope
	bad 1 "pub: no stream named 'nope'" "${ABB[@]}" pub nope a.b x
	bad 1 "sub: no stream named 'nope'" "${ABB[@]}" sub nope --timeout 0
}

test_pub() {
	ok "${ABB[@]}" pub s1 tool.call.search hello --key k1 --header a=1; [ "$OUT" = 1 ] || fail "first seq '$OUT'"
	run bash -c "printf 'from stdin' | timeout 10 '$AB' pub --bus '$BUS' s1 x.y"
	[[ $RC -eq 0 && $OUT == 2 ]] || fail "pub from stdin: rc $RC, out '$OUT', err '$ERR'"
	ok "${ABB[@]}" pub s1 tool.result x --count 3; lines 3; [ "$OUT" = $'3\n4\n5' ] || fail "--count 3 printed '$OUT'"
	ok "${ABB[@]}" pub s1 a.b '' --header empty=; [ "$OUT" = 6 ] || fail "empty payload: '$OUT'"
	ok "${ABB[@]}" pub s1 a.b --header 'x=y=z' -- -dash; [ "$OUT" = 7 ] || fail "dash payload: '$OUT'"
	# Tricky JSON: quote, backslash, newline, a control byte and UTF-8.
	ok "${ABB[@]}" pub s1 json.t "$(printf 'q"b\\\\n\nc\001 é')" --key 'k"2'; [ "$OUT" = 8 ] || fail "json payload: '$OUT'"
	run bash -c "printf '\\377\\376' | timeout 10 '$AB' pub --bus '$BUS' s1 bin.data"
	[[ $RC -eq 0 && $OUT == 9 ]] || fail "binary pub: rc $RC out '$OUT' err '$ERR'"
	head -c 20000 /dev/zero >"$TMP/big"
	run bash -c "timeout 10 '$AB' pub --bus '$BUS' small big.one <'$TMP/big'"
	[ "$RC" -eq 1 ] || fail "oversized stdin exited $RC: $ERR"
	grep -q 'more than the max record' <<<"$ERR" || fail "oversized stdin: '$ERR'"
	bad 1 "" "${ABB[@]}" pub small big.two "$(head -c 17000 /dev/zero | tr '\0' a)"
}

test_sub_text() {
	ok "${ABB[@]}" sub s1 --from-start --count 9 --timeout 5; lines 9
	has '^#1 [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{9}Z tool\.call\.search key=k1 hdr=a:1 \(5 bytes\) hello$'
	has '^#2 .* x\.y \(10 bytes\) from stdin$'
	has '^#6 .* a\.b hdr=empty: \(0 bytes\)$'
	has '^#7 .* a\.b hdr=x:y=z \(5 bytes\) -dash$'
	has '^#9 .* bin\.data \(2 bytes\) binary fffe$'
	ok "${ABB[@]}" sub s1 --from-seq 3 --count 1 --timeout 5; lines 1; has '^#3 .* tool\.result \(1 bytes\) x$'
	ok "${ABB[@]}" sub s1 --from-start --subject 'tool.>' --timeout 0.3; lines 4
	ok "${ABB[@]}" sub s1 --from-start --subject '*.y' --timeout 0.3; lines 1; has '^#2 '
	ok "${ABB[@]}" sub s1 --new --timeout 0.2; lines 0
	ok "${ABB[@]}" sub s1 --timeout 0; lines 0
}

test_sub_json() {
	ok "${ABB[@]}" sub s1 --from-start --json --count 9 --timeout 5; lines 9
	has '^\{"seq":1,"time_ns":[0-9]+,"subject":"tool.call.search","key":"k1","headers":\{"a":"1"\},"data":"hello"\}$'
	has '^\{"seq":2,.*"key":null,"headers":\{\},"data":"from stdin"\}$'
	has '"seq":9,.*"data_base64":"//4="\}$'
	if command -v python3 >/dev/null; then
		python3 - "$TMP/out" <<-'EOF' || fail "JSON output does not parse as expected"
			import json, sys
			recs = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8")]
			assert [r["seq"] for r in recs] == list(range(1, 10)), recs
			assert recs[0]["headers"] == {"a": "1"}
			assert recs[7]["data"] == 'q"b\\\\n\nc\x01 \u00e9', repr(recs[7]["data"])
			assert recs[7]["key"] == 'k"2'
			assert "data" not in recs[8] and recs[8]["data_base64"] == "//4="
			assert recs[5]["data"] == "" and recs[5]["headers"] == {"empty": ""}
		EOF
	fi
}

# A live subscription gets a record published after it started.
test_sub_live() {
	local pid
	timeout -k 2 20 "$AB" sub s1 --bus "$BUS" --count 1 --timeout 10 >"$TMP/live" 2>&1 &
	pid=$!
	sleep 0.5
	ok "${ABB[@]}" pub s1 live.one now
	wait_gone "$pid" 100 || fail "live sub did not stop after its record"
	wait "$pid" || fail "live sub exited $?: $(cat "$TMP/live")"
	grep -qE '^#10 .* live\.one \(3 bytes\) now$' "$TMP/live" || fail "live sub printed: $(cat "$TMP/live")"
}

# SIGINT and SIGTERM stop an idle subscription cleanly (exit 0, detached).
test_sub_signals() {
	local pid sig rc
	for sig in INT TERM; do
		"$AB" sub s1 --bus "$BUS" --timeout 30 >"$TMP/sig" 2>&1 &
		pid=$!
		sleep 0.5
		kill -"$sig" "$pid"
		if ! wait_gone "$pid" 50; then
			fail "sub ignored SIG$sig"
			kill -KILL "$pid"
		fi
		wait "$pid"; rc=$?
		[ "$rc" -eq 0 ] || fail "sub exited $rc on SIG$sig: $(cat "$TMP/sig")"
	done
	ok "${ABB[@]}" stream info s1; has '^subscriptions: +0$'
}

# `sub | head -1` ends the subscriber quietly through EPIPE.
test_sub_pipe() {
	run bash -c "set -o pipefail; timeout 10 '$AB' sub s1 --bus '$BUS' --from-start --timeout 1 | head -n 1"
	[ "$RC" -eq 0 ] || fail "sub | head exited $RC: $ERR"
	[ -z "$ERR" ] || fail "sub | head wrote on stderr: $ERR"
}

test_stream_rm() {
	ok "${ABB[@]}" stream rm sized; [ -z "$OUT" ] || fail "stream rm printed '$OUT'"
	bad 1 "no stream named 'sized'" "${ABB[@]}" stream info sized
	ok "${ABB[@]}" stream ls; grep -q '^sized ' <<<"$OUT" && fail "removed stream still listed"
}

test_bench_dispatch() {
	run "$AB" bench --help
	[ "$RC" -lt 124 ] || fail "bench --help crashed"
	[ "$RC" -eq 0 ] || grep -q 'bench not built' <<<"$ERR" || fail "bench --help: rc $RC, $ERR"
}

# The burst mode's phases (lap, settle, burst) end, and every record arrives.
test_bench_burst() {
	run "$AB" bench throughput --burst --ring-size 1M --json
	grep -q 'bench not built' <<<"$ERR" && return
	[ "$RC" -eq 0 ] || fail "bench throughput --burst: rc $RC, $ERR"
	pycheck 'import json, sys; d = json.load(open(sys.argv[1])); assert d["ok"] and d["errors"] == 0 and d["published"] >= 3000 and d["delivered"] > 0, d' "$TMP/out"
}

# pycheck CODE ARGS...: run python3 CODE with ARGS (the last command's stdout
# is $TMP/out); a failed assertion is a failure. Skipped without python3.
pycheck() {
	local code=$1
	shift
	command -v python3 >/dev/null || return 0
	CHECKS=$((CHECKS + 1))
	timeout 20 python3 -c "$code" "$@" 2>"$TMP/py.err" ||
		fail "python check failed: $(cat "$TMP/py.err")"
}

# Stream settings of issue 3 and the durability of publishes.
test_durability() {
	ok "${ABB[@]}" stream add d1 --ring-size 64K --durability synced --fsync 50ms --overflow block \
		--segment-size 1M --max-age 7d --max-bytes 10M --max-records 1000 --retention-force
	has "created stream 'd1' .*durability synced"
	ok "${ABB[@]}" stream info d1 --json; lines 1
	pycheck '
import json, sys
i = json.load(open(sys.argv[1]))
assert i["durability"] == "synced" and i["fsync"] == "interval", i
assert i["fsync_interval_ms"] == 50 and i["overflow"] == "block", i
assert i["segment_size"] == 1 << 20 and i["max_age_ns"] == 7 * 86400 * 10**9, i
assert i["max_bytes"] == 10 << 20 and i["max_records"] == 1000, i
assert i["retention_force"] is True, i
assert i["first_seq"] == 1 and i["next_seq"] == 1 and i["last_seq"] == 0, i
assert i["spill_error"] is None and i["lost_first_seq"] == 0 and i["corrupt_records"] == 0, i
' "$TMP/out"
	ok "${ABB[@]}" stream info d1
	has '^durability: +synced$'; has '^fsync: +50ms$'; has '^overflow: +block$'
	has '^segment_size: +1048576 \(1MiB\)$'
	has '^retention: +max_age 7d, max_bytes 10MiB, max_records 1000, forced'
	ok "${ABB[@]}" stream add d2 --ring-size 64K --fsync 2s --max-age 500ms --overflow spill --durability memory
	ok "${ABB[@]}" stream info d2
	has '^fsync: +2000ms$'; has '^retention: +max_age 500ms$'; has '^durability: +memory$'
	ok "${ABB[@]}" stream add d3 --ring-size 64K --max-age 15m --max-age 2h --fsync batch
	ok "${ABB[@]}" stream info d3; has '^retention: +max_age 2h$'; has '^fsync: +batch$'
	ok "${ABB[@]}" stream info s1; has '^retention: +none'; has '^durability: +memory$'
	bad 2 "fsync interval must be 1-60000 ms" "${ABB[@]}" stream add d4 --fsync 61s
	bad 2 "segment size" "${ABB[@]}" stream add d4 --segment-size 64K

	# The stream's default (synced), then each level asked for explicitly.
	ok "${ABB[@]}" pub d1 dur.one a; [ "$OUT" = 1 ] || fail "synced default pub: '$OUT'"
	ok "${ABB[@]}" pub d1 dur.two b --durability synced; [ "$OUT" = 2 ] || fail "synced pub: '$OUT'"
	ok "${ABB[@]}" pub d1 dur.three c --durability written --count 2; lines 2
	ok "${ABB[@]}" pub d1 dur.four d --durability memory; [ "$OUT" = 5 ] || fail "memory pub: '$OUT'"
	ok "${ABB[@]}" pub d1 dur.five e --durability synced; [ "$OUT" = 6 ] || fail "synced pub: '$OUT'"
	ok "${ABB[@]}" stream info d1 --json
	pycheck '
import json, sys
i = json.load(open(sys.argv[1]))
assert i["next_seq"] == 7 and i["last_seq"] == 6, i
assert i["written_seq"] >= 7 and i["synced_seq"] >= 7, i
assert i["log_first_seq"] == 1 and i["log_last_seq"] == 6, i
assert isinstance(i["log_bytes"], int) and i["log_bytes"] >= 0, i
assert i["spill_error"] is None and i["lost_first_seq"] == 0 and i["lost_last_seq"] == 0, i
assert i["corrupt_records"] == 0, i
' "$TMP/out"
	ok "${ABB[@]}" stream info d1
	has '^written_seq: +7 \(all records below 7 are written\)$'
	has '^synced_seq: +7 \(all records below 7 are synced\)$'
	has '^log_first_seq: +1$'; has '^log_last_seq: +6$'; has '^last_seq: +6$'
	has '^spill_error: +none$'; has '^lost: +none$'; has '^corrupt_records: +0$'
	ok "${ABB[@]}" stream ls --json; has '"log_bytes":'; has '"written_seq":'

	# A stream that never syncs cannot give `synced`; nothing is published then.
	ok "${ABB[@]}" stream add nosync --ring-size 64K --fsync never --durability written
	bad 1 "never syncs its log" "${ABB[@]}" pub nosync a.b x --durability synced
	ok "${ABB[@]}" pub nosync a.b x --durability written; [ "$OUT" = 1 ] || fail "after refused synced pub: '$OUT'"
	ok "${ABB[@]}" stream info nosync --json
	pycheck 'import json, sys; i = json.load(open(sys.argv[1])); assert i["fsync"] == "never" and i["written_seq"] >= 2, i' "$TMP/out"
}

# Records of stream r: r.a 1..3 and r.b 4..5, all written to the log.
publish_replay_records() {
	local i
	ok "${ABB[@]}" stream add r --ring-size 64K
	for i in 1 2 3; do
		ok "${ABB[@]}" pub r r.a "payload-$i" --key "k$i" --header "h=$i"
	done
	ok "${ABB[@]}" pub r r.b payload-4
	ok "${ABB[@]}" pub r r.b payload-5 --durability written; [ "$OUT" = 5 ] || fail "r pub: '$OUT'"
}

# The time of record @1 of stream r, in nanoseconds (from replay --json).
record_time_ns() {
	timeout 20 "${ABB[@]}" replay r --from-seq "$1" --to-seq "$1" --json |
		sed -n 's/.*"time_ns":\([0-9]*\).*/\1/p'
}

test_replay() {
	local t3 t3_text
	publish_replay_records
	ok "${ABB[@]}" replay r; lines 5
	has '^#1 [0-9T:.Z-]+ r\.a key=k1 hdr=h:1 \(9 bytes\) payload-1$'
	has '^#5 .* r\.b \(9 bytes\) payload-5$'
	# The very same lines as a subscription from the start.
	cp "$TMP/out" "$TMP/replay.txt"
	ok "${ABB[@]}" sub r --from-start --count 5 --timeout 5
	[ "$OUT" = "$(<"$TMP/replay.txt")" ] || fail "replay and sub print differently: $OUT"
	ok "${ABB[@]}" replay r --from-start; lines 5
	ok "${ABB[@]}" replay r --from-seq 3; lines 3; has '^#3 '; has '^#5 '
	ok "${ABB[@]}" replay r --to-seq 2; lines 2; has '^#1 '; has '^#2 '
	ok "${ABB[@]}" replay r --from-seq 2 --to-seq 4; lines 3; has '^#2 '; has '^#4 '
	ok "${ABB[@]}" replay r --subject r.b; lines 2; has '^#4 '; has '^#5 '
	ok "${ABB[@]}" replay r --subject 'r.*' --to-seq 4; lines 4
	ok "${ABB[@]}" replay r --subject 'x.>'; lines 0
	ok "${ABB[@]}" replay r --from-seq 99; lines 0
	ok "${ABB[@]}" replay r --json; lines 5
	pycheck '
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
assert [r["seq"] for r in recs] == [1, 2, 3, 4, 5], recs
assert recs[0]["key"] == "k1" and recs[0]["headers"] == {"h": "1"}, recs[0]
assert recs[4]["data"] == "payload-5" and recs[4]["key"] is None, recs[4]
assert all(a["time_ns"] <= b["time_ns"] for a, b in zip(recs, recs[1:])), recs
' "$TMP/out"
	cp "$TMP/out" "$TMP/sub.json"
	ok "${ABB[@]}" sub r --from-start --json --count 5 --timeout 5
	[ "$OUT" = "$(<"$TMP/sub.json")" ] || fail "replay --json and sub --json differ"

	# --from-time: nanoseconds, RFC 3339, and a duration ago.
	t3=$(record_time_ns 3)
	[ -n "$t3" ] || fail "no time for record 3"
	ok "${ABB[@]}" replay r --from-time "$t3"; lines 3; has '^#3 '
	ok "${ABB[@]}" sub r --from-time "$t3" --timeout 0.3; lines 3; has '^#3 '
	t3_text=$(timeout 10 "${ABB[@]}" replay r --from-seq 3 --to-seq 3 | cut -d' ' -f2)
	ok "${ABB[@]}" replay r --from-time "$t3_text"; lines 3; has '^#3 '
	ok "${ABB[@]}" sub r --from-time "$t3_text" --count 1 --timeout 5; has '^#3 '
	ok "${ABB[@]}" replay r --from-time -1h; lines 5
	ok "${ABB[@]}" sub r --from-time -1d --timeout 0.3; lines 5
	ok "${ABB[@]}" replay r --from-time 2100-01-01T00:00:00Z; lines 0
	ok "${ABB[@]}" replay r --from-time 2000-01-01T00:00:00+01:00; lines 5
	ok "${ABB[@]}" sub r --from-time 2100-01-01T00:00:00.5Z --timeout 0.2; lines 0
	ok "${ABB[@]}" sub r --from-start --timeout 0.3; lines 5

	bad 1 "stream 'nope' has no log" "${ABB[@]}" replay nope
}

# --rate original keeps the gaps between records: three records 0.4 s
# apart take at least about 0.8 s (only a lower bound: the host is shared).
test_replay_rate() {
	local start end i
	ok "${ABB[@]}" stream add paced --ring-size 64K
	for i in 1 2 3; do
		ok "${ABB[@]}" pub paced p.x "$i" --durability written
		[ "$i" -eq 3 ] || sleep 0.4
	done
	start=$(date +%s%N)
	ok "${ABB[@]}" replay paced --rate original; lines 3
	end=$(date +%s%N)
	[ $(((end - start) / 1000000)) -ge 600 ] ||
		fail "replay --rate original took $(((end - start) / 1000000)) ms, want >= ~800"
	ok "${ABB[@]}" replay paced --rate max; lines 3
}

# --data-dir wins over the data directory of the running daemon: a copy of
# a log is read as it is, and a directory that is not there is an error.
test_replay_data_dir() {
	ok "${ABB[@]}" stream add dd --ring-size 64K
	ok "${ABB[@]}" pub dd d.x one --count 2 --durability written
	mkdir -p "$TMP/copy/$BUS" && cp -r "$DATA/$BUS/dd" "$TMP/copy/$BUS/" || fail "cannot copy the log of dd"
	ok "${ABB[@]}" pub dd d.x two --durability written
	ok "${ABB[@]}" replay dd; lines 3
	ok "${ABB[@]}" replay dd --data-dir "$TMP/copy"; lines 2; has '^#2 .* one$'
	bad 1 "stream 'dd' has no log" "${ABB[@]}" replay dd --data-dir "$TMP"
	bad 1 "cannot use --data-dir '$TMP/nonexistent': No such file" "${ABB[@]}" replay dd --data-dir "$TMP/nonexistent"
	bad 1 "cannot use --data-dir '$TMP/copy/$BUS/dd/stream.conf': not a directory" \
		"${ABB[@]}" replay dd --data-dir "$TMP/copy/$BUS/dd/stream.conf"
	rm -rf "$TMP/copy"
}

# full CMD...: with standard output on /dev/full, CMD must exit 1 with one
# line on stderr saying so (never 0: what it printed did not get out).
full() {
	CHECKS=$((CHECKS + 1))
	timeout -k 2 20 "$@" >/dev/full 2>"$TMP/err" </dev/null
	RC=$?
	ERR=$(<"$TMP/err")
	[ "$RC" -eq 1 ] || fail "'$* >/dev/full' exited $RC, want 1; stderr: $ERR"
	[ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q 'cannot write to standard output' "$TMP/err" ||
		fail "'$* >/dev/full' stderr: $ERR"
}

# closed CMD...: CMD writes into a pipe whose reader has gone: it must exit
# 0 (EPIPE ends the output), not die of SIGPIPE, and say nothing.
closed() {
	local cmd
	printf -v cmd '%q ' "$@"
	run bash -c "set -o pipefail; (sleep 0.3; exec $cmd) | true"
	[ "$RC" -eq 0 ] || fail "'$*' into a closed pipe exited $RC, want 0; stderr: $ERR"
	[ -z "$ERR" ] || fail "'$*' into a closed pipe wrote on stderr: $ERR"
}

# Output that cannot be written fails every command; a reader that went
# away ends it quietly. Sizes take a T suffix.
test_output() {
	if [ -w /dev/full ]; then
		full "$AB" --help
		full "$AB" --version
		full "$AB" stream add --help
		full "${ABB[@]}" stream ls
		full "${ABB[@]}" stream ls --json
		full "${ABB[@]}" stream info s1
		full "${ABB[@]}" stream info s1 --json
		full "${ABB[@]}" stream add full1 --ring-size 64K
		ok "${ABB[@]}" stream rm full1
		full "${ABB[@]}" pub s1 full.pub x
		full "${ABB[@]}" pub s1 full.pub x --count 5000
		full "${ABB[@]}" sub s1 --from-start --count 3 --timeout 5
		full "${ABB[@]}" replay r
		full "${ABB[@]}" verify --data-dir "$DATA"
		full "${ABB[@]}" verify r --data-dir "$DATA" --json
	fi
	closed "$AB" --help
	closed "${ABB[@]}" stream ls
	closed "${ABB[@]}" stream ls --json
	closed "${ABB[@]}" stream info s1
	closed "${ABB[@]}" stream add closed1 --ring-size 64K
	ok "${ABB[@]}" stream rm closed1
	closed "${ABB[@]}" replay r
	closed "${ABB[@]}" verify --data-dir "$DATA"
	closed "${ABB[@]}" sub s1 --from-start --count 3 --timeout 5
	ok "${ABB[@]}" stream add piped --ring-size 1M
	closed "${ABB[@]}" pub piped p.x x --count 3
	# More numbers than a pipe holds: a reader that leaves stops none of the publishes.
	run bash -c "set -o pipefail; timeout 20 '$AB' pub --bus '$BUS' piped p.y y --count 20000 | head -n 1"
	[[ $RC -eq 0 && $OUT == 4 && -z $ERR ]] || fail "pub --count 20000 | head -1: rc $RC, out '$OUT', err '$ERR'"
	ok "${ABB[@]}" stream info piped; has '^next_seq: +20004$'
	ok "${ABB[@]}" stream rm piped

	ok "${ABB[@]}" stream add tera --ring-size 64K --segment-size 1T
	ok "${ABB[@]}" stream info tera; has '^segment_size: +1099511627776 \(1TiB\)$'
	ok "${ABB[@]}" stream rm tera
	ok "${ABB[@]}" stream add tera --ring-size 64K --segment-size 1TiB
	ok "${ABB[@]}" stream rm tera
	bad 2 "segment size" "${ABB[@]}" stream add tera --segment-size 2T
	bad 2 "bad --segment-size '1Tb'" "${ABB[@]}" stream add tera --segment-size 1Tb
}

# After the daemon stopped: replay and verify read the files themselves.
test_after_stop() {
	local seg
	ok "${ABB[@]}" replay r --data-dir "$DATA"; lines 5; has '^#1 '; has '^#5 '
	ok env AGENTBUS_DATA="$DATA" "${ABB[@]}" replay r --from-seq 4; lines 2
	ok env AGENTBUS_DATA="$DATA" AGENTBUS_BUS="$BUS" "$AB" replay r --subject r.a --json; lines 3
	ok "${ABB[@]}" replay d1 --data-dir "$DATA" --to-seq 3; lines 3
	ok "${ABB[@]}" verify --data-dir "$DATA"; has 'no problems'
	ok "${ABB[@]}" verify r --data-dir "$DATA"; lines 1; has "^verified the log of stream 'r': no problems$"
	ok env AGENTBUS_DATA="$DATA" "${ABB[@]}" verify r --json
	pycheck 'import json, sys; v = json.load(open(sys.argv[1])); assert v == {"problems": [], "count": 0}, v' "$TMP/out"
	bad 1 "nope" "${ABB[@]}" verify nope --data-dir "$DATA"
	bad 1 "stream 'nope' has no log" "${ABB[@]}" replay nope --data-dir "$DATA"

	# One byte in the middle of a segment: the payload of record 3.
	seg=$(ls "$DATA/$BUS/r/"*.log | head -n 1)
	[ -f "$seg" ] || { fail "no log segment for stream r under $DATA/$BUS/r"; return; }
	pycheck '
import sys
path = sys.argv[1]
data = bytearray(open(path, "rb").read())
at = data.find(b"payload-3")
assert at > 0, "payload-3 not in the segment"
data[at + 4] ^= 0x20
open(path, "wb").write(data)
' "$seg"
	command -v python3 >/dev/null || return 0
	run "${ABB[@]}" verify r --data-dir "$DATA"
	[ "$RC" -eq 1 ] || fail "verify of a damaged log exited $RC, want 1: $ERR"
	has "^stream r: segment $seg offset [0-9]+ seq 3: .+"
	has "1 problem$"
	run "${ABB[@]}" verify --data-dir "$DATA" --json
	[ "$RC" -eq 1 ] || fail "verify --json of a damaged log exited $RC, want 1: $ERR"
	pycheck '
import json, sys
v = json.load(open(sys.argv[1]))
assert v["count"] == 1 and len(v["problems"]) == 1, v
p = v["problems"][0]
assert p["stream"] == "r" and p["seq"] == 3 and p["offset"] > 4096, p
' "$TMP/out"
	run "${ABB[@]}" replay r --data-dir "$DATA"
	[ "$RC" -eq 1 ] || fail "replay over a corrupt record exited $RC, want 1"
	lines 4; has '^#2 '; has '^#4 '
	grep -q '^#3 ' <<<"$OUT" && fail "replay printed the corrupt record 3"
	[ "$(wc -l <"$TMP/err")" -eq 1 ] || fail "replay wrote $(wc -l <"$TMP/err") error lines, want 1: $ERR"
	grep -qE '^agentbus: replay: .*seq 3 is corrupt' <<<"$ERR" || fail "replay error does not name seq 3: $ERR"
	run "${ABB[@]}" replay r --data-dir "$DATA" --from-seq 4
	[ "$RC" -eq 0 ] || fail "replay after the corrupt record exited $RC: $ERR"
	lines 2
}

# A daemon started again on the damaged log: a subscription from the start
# reports the corrupt record, reads on past it, and exits 1.
test_restart_after_damage() {
	command -v python3 >/dev/null || return 0
	ok "${ABB[@]}" stream info r --json
	pycheck '
import json, sys
i = json.load(open(sys.argv[1]))
assert i["next_seq"] == 6 and i["log_first_seq"] == 1, i
for f in ("corrupt_records", "lost_first_seq", "lost_last_seq", "log_bytes"):
    assert isinstance(i[f], int), (f, i)
' "$TMP/out"
	ok "${ABB[@]}" stream info r; has '^corrupt_records: +[0-9]+$'
	run "${ABB[@]}" sub r --from-start --timeout 0.5
	[ "$RC" -eq 1 ] || fail "sub over a corrupt record exited $RC, want 1: $ERR"
	lines 4; has '^#2 '; has '^#4 '; has '^#5 '
	grep -qE '^agentbus: sub: .*seq 3 is corrupt' <<<"$ERR" || fail "sub error does not name seq 3: $ERR"
	ok "${ABB[@]}" sub r --from-seq 4 --timeout 0.3; lines 2
}

# A `stream add` that fails after its ring was made takes the ring back.
# The failure: a data directory so deep that the log directory of stream f
# (<data>/<bus>/f, 4074 bytes) and its settings file still fit in PATH_MAX,
# but the first log segment's path (24 bytes more) does not, so the daemon
# makes the ring, saves the settings, then cannot open the log.
test_failed_add() {
	local bus=$BUS-long data i
	data=$TMP/long
	while [ $((${#data} + 200)) -lt $((4074 - ${#bus} - 3)) ]; do
		data=$data/$(printf '%0200d' 0)
	done
	data=$data/$(printf '%0*d' $((4074 - ${#bus} - 3 - ${#data} - 1)) 0)
	mkdir -p "$data" || { fail "cannot make a data directory of ${#data} bytes"; return; }
	timeout -k 2 60 "$AB" daemon --bus "$bus" --data-dir "$data" 2>"$TMP/long.err" &
	LONG_PID=$!
	for ((i = 0; i < 50; i++)); do
		timeout 5 "$AB" stream info --bus "$bus" probe 2>&1 | grep -q 'no stream named' && break
		sleep 0.1
	done
	bad 1 "cannot open its log" "$AB" stream add --bus "$bus" f --ring-size 64K
	[ -e "$SHM_ROOT/$bus/streams/f" ] && fail "failed stream add left its ring in $SHM_ROOT/$bus/streams"
	[ -e "$data/$bus/f" ] && fail "failed stream add left its log directory"
	ok "$AB" stream ls --bus "$bus"; lines 1
	bad 1 "no stream named 'f'" "$AB" pub --bus "$bus" f a.b x
	bad 1 "no stream named 'f'" "$AB" stream rm --bus "$bus" f
	# Not "already exists": the same failure again.
	bad 1 "cannot open its log" "$AB" stream add --bus "$bus" f --ring-size 64K
	kill -TERM "$LONG_PID"
	wait_gone "$LONG_PID" 50 || fail "daemon of $bus ignored SIGTERM"
	wait "$LONG_PID" 2>/dev/null
	LONG_PID=
	rm -rf "${SHM_ROOT:?}/$bus" "$TMP/long"
}

stop_daemon() {
	kill -TERM "$DAEMON_PID"
	wait_gone "$DAEMON_PID" 50 || fail "daemon ignored SIGTERM"
	wait "$DAEMON_PID"
	local rc=$?
	[ "$rc" -eq 0 ] || fail "daemon exited $rc on SIGTERM: $(cat "$TMP/daemon.err")"
	DAEMON_PID=
	bad 1 "no daemon serves bus" "${ABB[@]}" stream ls
}

# ---------------------------------------------------------------------------

[ -x "$AB" ] || { echo "no executable at $AB" >&2; exit 1; }
test_help
test_usage_errors
test_durability_usage_errors
test_no_daemon
if start_daemon; then
	test_streams
	test_pub
	test_sub_text
	test_sub_json
	test_sub_live
	test_sub_signals
	test_sub_pipe
	test_stream_rm
	test_bench_dispatch
	test_bench_burst
	test_durability
	test_replay
	test_replay_rate
	test_replay_data_dir
	test_output
	test_failed_add
	stop_daemon
	test_after_stop
	if start_daemon; then
		test_restart_after_damage
		stop_daemon
	fi
fi

if [ "$FAILURES" -ne 0 ]; then
	echo "cli test: $FAILURES of $CHECKS checks failed" >&2
	exit 1
fi
echo "cli test: all $CHECKS checks passed"
