#!/usr/bin/env bash
# nvrd_restart.sh - nvrd started a second time on the same data directory
# finds its volumes (no reformat), recovers the segments left open, records
# more footage, and nvr-fsck still finds index and volumes in agreement.
set -euo pipefail
# shellcheck source=tests/blackbox/lib.bash
. "$(dirname "$0")/lib.bash"
cd "$TEST_DIR"

run_nvrd() {
	expect_exit 0 "$1" "$BIN/nvrd" --data data --seconds 4 --simulate 10 --sim-port 18612 --volume-size 64M
	local status
	status=$(last_status "$1")
	[[ $(kv frames_written "$status") -gt 0 ]] || fail "no frames written: $status"
	[[ $(kv dropped_frames "$status") -eq 0 ]] || fail "frames dropped: $status"
}

mapfile -t args < <(fsck_args data 2)

run_nvrd run1.log
expect_grep 'event=volume_formatted' run1.log "first run did not format its volumes"
expect_exit 0 fsck1 "$BIN/nvr-fsck" "${args[@]}"
chunks1=$(fsck_chunks fsck1)

uuids1=$(grep -o 'uuid=[^ ]*' run1.log | sort -u)
run_nvrd run2.log
expect_grep 'event=volume_found' run2.log "second run did not find its volumes"
grep -q 'event=volume_formatted' run2.log && fail "second run formatted a volume again"
[[ $(grep -o 'uuid=[^ ]*' run2.log | sort -u) == "$uuids1" ]] || fail "volume UUIDs changed"

expect_exit 0 fsck2 "$BIN/nvr-fsck" "${args[@]}"
expect_grep 'differences=0' fsck2 "fsck after the second run found differences"
chunks2=$(fsck_chunks fsck2)
[[ $chunks2 -gt $chunks1 ]] || fail "second run added no chunks ($chunks1 -> $chunks2)"
echo "ok: chunks on disk $chunks1 -> $chunks2, fsck clean"
