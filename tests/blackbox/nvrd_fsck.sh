#!/usr/bin/env bash
# nvrd_fsck.sh - nvrd records 20 simulated RTSP cameras for 6 s without losing a
# frame, nvr-fsck finds its index and volumes in agreement, and after one
# byte of recorded data is flipped on disk nvr-fsck reports the damaged
# record and exits 1.
set -euo pipefail
# shellcheck source=tests/blackbox/lib.bash
. "$(dirname "$0")/lib.bash"
cd "$TEST_DIR"

expect_exit 0 nvrd.log "$BIN/nvrd" --data data --seconds 6 --simulate 20 --sim-port 18613 --volume-size 256M
expect_grep 'event=camsim_started' nvrd.log "the camera simulator did not start"
status=$(last_status nvrd.log)
[[ -n $status ]] || fail "nvrd printed no status line"
frames=$(kv frames_written "$status")
dropped=$(kv dropped_frames "$status")
[[ $frames -gt 0 ]] || fail "no frames written: $status"
[[ $dropped -eq 0 ]] || fail "frames dropped: $status"
[[ $(kv frames_lost "$status") -eq 0 ]] || fail "frames lost in ingest: $status"

mapfile -t args < <(fsck_args data 2)
expect_exit 0 fsck1 "$BIN/nvr-fsck" "${args[@]}"
expect_grep 'differences=0' fsck1 "fsck of a clean stop found differences"

# Flip one byte in the middle of the first chunk of a segment that holds
# data (format.h: records start at 4096; payload_len is at byte 44 of the
# 64-byte record header).
seg=""
for f in data/vol*/seg-*; do
	if [[ $(dd if="$f" bs=1 skip=4096 count=4 2>/dev/null) == NVRC ]]; then
		seg=$f
		break
	fi
done
[[ -n $seg ]] || fail "no segment file holds a chunk"
payload=$(od -An -tu4 -j $((4096 + 44)) -N4 "$seg" | tr -d ' ')
off=$((4096 + 64 + payload / 2))
byte=$(od -An -tu1 -j "$off" -N1 "$seg" | tr -d ' ')
printf '%b' "\\$(printf '%03o' $((byte ^ 0xff)))" |
	dd of="$seg" bs=1 seek="$off" count=1 conv=notrunc 2>/dev/null

expect_exit 1 fsck2 "$BIN/nvr-fsck" "${args[@]}"
expect_grep 'damaged record' fsck2 "the flipped byte was not reported"
expect_grep 'bad_records=[1-9]' fsck2 "the summary does not count the damaged record"
echo "ok: $frames frames, 0 dropped, fsck clean, then damage found in $seg at $off"
