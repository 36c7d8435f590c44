#!/usr/bin/env bash
# run-tests.sh - runs every test of the project and prints one summary line.
#
# Unit tests are the Criterion binaries in $BUILD/tests/ (BUILD defaults to
# "build"); each prints a "Synthesis:" line whose Passing and Failing counts
# go into the totals, and its tests are listed one per line. Black-box tests
# are tests/blackbox/*.sh, run with BIN=$BUILD/bin and a fresh temporary
# directory in TEST_DIR; exit 0 is a pass, 77 a skip, anything else a
# failure. The output of anything that failed is shown. The last line is
# exactly "N passed, N failed" (", N skipped" appended when some were
# skipped), and the exit status is 1 if anything failed.
#
# TEST_TIMEOUT (seconds, default 600) bounds each binary and each script.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
BUILD=${BUILD:-build}
TEST_TIMEOUT=${TEST_TIMEOUT:-600}
BIN=$(cd "$BUILD/bin" 2>/dev/null && pwd) || { echo "no $BUILD/bin: run make first" >&2; exit 2; }
LOGDIR=$(mktemp -d "${TMPDIR:-/tmp}/nvr-tests.XXXXXX") || exit 2
trap 'rm -rf "$LOGDIR"' EXIT

passed=0 failed=0 skipped=0

show_log() {
	sed 's/^/    | /' "$1"
}

# One Criterion binary: its own per-test lines, totals from "Synthesis:".
run_unit() {
	local bin=$1 name log rc=0 synth
	name=$(basename "$bin")
	log=$LOGDIR/$name.log
	timeout --kill-after=10 "$TEST_TIMEOUT" "$bin" --verbose >"$log" 2>&1 || rc=$?
	grep -E '^\[(PASS|FAIL|SKIP)\]' "$log" | sed "s/^/  $name /"
	synth=$(grep -E 'Synthesis: Tested: [0-9]+ \| Passing: [0-9]+ \| Failing: [0-9]+' "$log" | tail -n 1)
	if [[ -z $synth ]]; then
		echo "FAIL unit $name: exited $rc without a Synthesis line"
		show_log "$log"
		failed=$((failed + 1))
		return
	fi
	local pass fail skip
	pass=$(sed -E 's/.*Passing: ([0-9]+).*/\1/' <<<"$synth")
	fail=$(sed -E 's/.*Failing: ([0-9]+).*/\1/' <<<"$synth")
	skip=$(grep -c '^\[SKIP\]' "$log")
	passed=$((passed + pass)) failed=$((failed + fail)) skipped=$((skipped + skip))
	if [[ $fail -gt 0 || $rc -ne 0 ]]; then
		echo "FAIL unit $name: $pass passed, $fail failed (exit $rc)"
		show_log "$log"
		[[ $fail -eq 0 ]] && failed=$((failed + 1))   # exit status alone
	elif [[ $skip -gt 0 ]]; then
		echo "PASS unit $name: $pass passed, $skip skipped"
	else
		echo "PASS unit $name: $pass passed"
	fi
}

# One black-box script in its own fresh directory (kept when it fails).
run_blackbox() {
	local script=$1 name dir log rc=0
	name=$(basename "$script" .sh)
	dir=$(mktemp -d "${TMPDIR:-/tmp}/nvr-bb-$name.XXXXXX") || { failed=$((failed + 1)); return; }
	log=$LOGDIR/$name.log
	BIN=$BIN TEST_DIR=$dir timeout --kill-after=10 "$TEST_TIMEOUT" bash "$script" >"$log" 2>&1 || rc=$?
	case $rc in
	0)  echo "PASS blackbox $name"
	    passed=$((passed + 1))
	    rm -rf "$dir" ;;
	77) echo "SKIP blackbox $name: $(tail -n 1 "$log")"
	    skipped=$((skipped + 1))
	    rm -rf "$dir" ;;
	*)  echo "FAIL blackbox $name (exit $rc; files kept in $dir)"
	    show_log "$log"
	    failed=$((failed + 1)) ;;
	esac
}

for bin in "$BUILD"/tests/*; do
	[[ -f $bin && -x $bin ]] && run_unit "$bin"
done
for script in tests/blackbox/*.sh; do
	[[ -f $script ]] && run_blackbox "$script"
done

summary="$passed passed, $failed failed"
[[ $skipped -gt 0 ]] && summary+=", $skipped skipped"
echo "$summary"
[[ $failed -eq 0 ]]
