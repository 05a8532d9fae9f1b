#!/bin/sh
# test_nosyscall.sh PROGRAM - show that publishing makes no system call while
# no reader sleeps (issue 2, point 4), nor does reading committed records
# (DESIGN.md invariant 6), and that the count can fail: with a sleeping
# reader the same publish loop must make futex calls.
#
# PROGRAM is nosyscall_publish (see its source). It runs under strace -f;
# the system calls of the publishing thread between its begin and end
# markers are counted. Exits 0 pass, 1 fail, 77 skip (no strace, or ptrace
# not allowed here).
set -u

prog=${1:?usage: test_nosyscall.sh PATH/TO/nosyscall_publish}
records=${AGENTBUS_NOSYSCALL_RECORDS:-100000}

if ! command -v strace >/dev/null 2>&1; then
	echo "SKIP: strace is not installed"
	exit 77
fi
if ! strace -o /dev/null true >/dev/null 2>&1; then
	echo "SKIP: strace cannot trace here (ptrace not permitted?)"
	exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/agentbus-nosyscall.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM

# LeakSanitizer stops the world with ptrace, which fails under strace.
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
export ASAN_OPTIONS

# syscalls_in_loop TRACE: print the calls the marking thread made between the
# markers, one per line (name only). A call strace splits in two
# ("<unfinished ...>" and "<... resumed>") is printed once; signals ("---")
# and exits ("+++") are not calls.
syscalls_in_loop() {
	awk '
	/write\(-1, "agentbus-nosyscall-begin"/ { tid = $1; inside = 1; next }
	inside && $1 == tid && /write\(-1, "agentbus-nosyscall-end"/ { found_end = 1; exit }
	inside && $1 == tid {
		if ($2 ~ /^(---|\+\+\+|<\.\.\.)/) next
		name = $2; sub(/\(.*/, "", name); print name
	}
	END { if (!found_end) print "MISSING-END-MARKER" }
	' "$1"
}

run() { # run MODE N: trace one run; fails the test if the program fails
	if ! strace -f -qq -o "$tmp/$1.trace" "$prog" "$1" "$2" >"$tmp/$1.out" 2>&1; then
		echo "FAIL: $prog $1 $2 failed:"
		cat "$tmp/$1.out"
		exit 1
	fi
}

# 1. Spinning reader: not one system call in the publish loop.
run spin "$records"
syscalls_in_loop "$tmp/spin.trace" >"$tmp/spin.calls"
if grep -q MISSING-END-MARKER "$tmp/spin.calls"; then
	echo "FAIL: markers not found in the trace of the spin run"
	exit 1
fi
n=$(wc -l <"$tmp/spin.calls")
echo "spin reader: $records publishes made $n system calls"
if [ "$n" -ne 0 ]; then
	echo "FAIL: the publish loop made system calls with only a spinning reader:"
	sort "$tmp/spin.calls" | uniq -c | sort -rn
	exit 1
fi

# 2. Reading records already committed: no system call either.
run read "$records"
syscalls_in_loop "$tmp/read.trace" >"$tmp/read.calls"
if grep -q MISSING-END-MARKER "$tmp/read.calls"; then
	echo "FAIL: markers not found in the trace of the read run"
	exit 1
fi
n=$(wc -l <"$tmp/read.calls")
echo "reading $records committed records made $n system calls"
if [ "$n" -ne 0 ]; then
	echo "FAIL: reading committed records made system calls:"
	sort "$tmp/read.calls" | uniq -c | sort -rn
	exit 1
fi

# 3. Sleeping reader: the loop must wake it through futex, so a counter
# that always said zero would be caught here.
run sleep 200
syscalls_in_loop "$tmp/sleep.trace" >"$tmp/sleep.calls"
if grep -q MISSING-END-MARKER "$tmp/sleep.calls"; then
	echo "FAIL: markers not found in the trace of the sleep run"
	exit 1
fi
futex=$(grep -c '^futex$' "$tmp/sleep.calls")
total=$(wc -l <"$tmp/sleep.calls")
echo "sleep reader: 200 publishes made $total system calls, $futex of them futex"
if [ "$futex" -eq 0 ]; then
	echo "FAIL: no futex call woke the sleeping reader"
	sort "$tmp/sleep.calls" | uniq -c | sort -rn
	exit 1
fi
exit 0
