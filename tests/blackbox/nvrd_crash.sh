#!/usr/bin/env bash
# nvrd_crash.sh - nvrd killed with SIGKILL while recording comes back on the
# same data directory: start-up recovery picks up what reached the disks,
# nothing recorded before the crash is lost from the index, and after a
# clean stop nvr-fsck finds index and volumes in agreement.
set -euo pipefail
# shellcheck source=tests/blackbox/lib.bash
. "$(dirname "$0")/lib.bash"
cd "$TEST_DIR"

mapfile -t args < <(fsck_args data 2)

"$BIN/nvrd" --data data --simulate 10 --sim-port 18611 --volume-size 64M 2>crash.log &
pid=$!
sleep 4
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true

# Before a restart the disks may hold chunks the index has not seen yet
# (at most a flush interval's worth); fsck may list them, not fail on them.
rc=0
"$BIN/nvr-fsck" "${args[@]}" >fsck1 2>&1 || rc=$?
[[ $rc -le 1 ]] || { cat fsck1 >&2; fail "fsck after the crash exited $rc"; }
grep -q 'in the index but not on the disks' fsck1 &&
	{ cat fsck1 >&2; fail "the index points at footage the disks do not hold"; }
chunks1=$(fsck_chunks fsck1)

expect_exit 0 run2.log "$BIN/nvrd" --data data --seconds 3 --simulate 10 --sim-port 18611 --volume-size 64M
status=$(last_status run2.log)
[[ $(kv frames_written "$status") -gt 0 ]] || fail "no frames after the crash: $status"

expect_exit 0 fsck2 "$BIN/nvr-fsck" "${args[@]}"
expect_grep 'differences=0' fsck2 "fsck after recovery found differences"
chunks2=$(fsck_chunks fsck2)
[[ $chunks2 -gt $chunks1 ]] || fail "chunks lost or none added ($chunks1 -> $chunks2)"
echo "ok: crash, recovery, chunks $chunks1 -> $chunks2, fsck clean"
