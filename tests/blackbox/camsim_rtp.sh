#!/usr/bin/env bash
# camsim_rtp.sh - what nvr-camsim puts on the wire, checked packet by packet
# by an independent client (camsim_client.py) against the fixture files:
# SDP parameter sets, RTP headers, sequence numbers, timestamps, markers,
# the depacketized frames byte for byte across the fixture's loop, pacing
# and RTCP sender reports, over TCP and UDP, for H.264 and H.265, with
# Digest authentication; then each fault (corrupt, reorder, refuse, stall,
# drop) and a client that stops reading (skips to a key frame, counted).
# The server's summary must agree with what the clients saw.
set -euo pipefail
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/camsim_lib.bash"
[[ -x $PY ]] || { echo "no $PY"; exit 77; }
command -v ffmpeg >/dev/null || { echo "ffmpeg not installed (fixtures)"; exit 77; }
cd "$TEST_DIR"

camsim_fixtures 4

# Bad options exit 2 and say what is wrong; a fixture that cannot be read
# exits 1 naming it. None of them prints the ready line.
for bad in "--cameras 0 --fixture $H264" "--cameras 2" "--cameras 8 --fixture $H264 --fault drop@1" \
           "--cameras 8 --fixture $H264 --fault corrupt:2@1" "--cameras 8 --fixture $H264 --fault drop:1@9" \
           "--cameras 8 --fixture $H264 --fault drop:1@3-2" "--cameras 8 --fixture $H264 --fault jam:1@1" \
           "--cameras 8 --fixture $H264 --user u" "--cameras 8 --fixture $H264 --listen 1.2.3:80" \
           "--cameras 8 --fixture $H264 --packet-size 20"; do
	# shellcheck disable=SC2086
	expect_exit 2 bad.txt "$BIN/nvr-camsim" $bad --seconds 1
	expect_grep 'nvr-camsim: |usage:' bad.txt "no message for: $bad"
	! grep -q '^ready' bad.txt || fail "ready printed for: $bad"
done
expect_exit 1 missing.txt "$BIN/nvr-camsim" --cameras 1 --fixture "$TEST_DIR/none.264" --seconds 1
expect_grep 'event=fixture_error path=.*none.264' missing.txt "missing fixture not named"
# Cameras: 1 H.264, 2 H.265 (clean); 3 corrupt, 4 reorder, 5 refuse,
# 6 stall, 7 drop, 8 clean (the slow reader). Small packets make FU-A/FU
# fragments of most NAL units.
camsim_start s --cameras 8 --fixture "$H264" --fixture "$H265" --listen 127.0.0.1:0 \
	--user u --password p --packet-size 600 \
	--fault corrupt:0.1@3 --fault reorder:0.3@4 --fault refuse@5 \
	--fault stall:2@6 --fault drop:2@7 --verbose
trap 'kill $PID_s 2>/dev/null || true' EXIT
url=rtsp://127.0.0.1:$PORT_s/cam

# client NAME CAMERA FIXTURE ARGS...: one checking client in the background.
pids=()
client() {
	local name=$1 cam=$2 fx=$3
	shift 3
	"$PY" "$CLIENT" "$url/$cam" --fixture "$fx" --user u --password p "$@" >"$name.txt" 2>&1 &
	pids+=($!)
}
client tcp264 1 "$H264" --transport tcp --seconds 5
client udp265 2 "$H265" --transport udp --seconds 5
client udp264 1 "$H264" --transport udp --seconds 3
client tcp265 2 "$H265" --transport tcp --seconds 3
client corrupt 3 "$H264" --corrupt --seconds 3
client reorder 4 "$H265" --reorder --transport udp --seconds 3
client refuse 5 "$H264" --expect-status 503
client badpass 1 "$H264" --password wrong --expect-status 401
client stall 6 "$H265" --stall 2 --seconds 7
client drop 7 "$H264" --seconds 5
client slow 8 "$H265" --pause 1:8 --rcvbuf 16384 --seconds 3
names=(tcp264 udp265 udp264 tcp265 corrupt reorder refuse badpass stall drop slow)
for i in "${!pids[@]}"; do
	wait "${pids[$i]}" || { cat "${names[$i]}.txt" >&2; fail "client ${names[$i]} failed"; }
done
camsim_stop s
trap - EXIT

get() {   # get NAME KEY: a value from a client's result line
	kv "$2" "$(grep '^status=' "$1.txt")"
}
for n in tcp264 udp265; do
	[[ $(get $n loops) -ge 1 ]] || fail "$n did not cross the fixture's loop"
	[[ $(get $n sender_reports) -ge 1 ]] || fail "$n saw no sender report"
done
[[ $(get refuse status) -eq 503 && $(get badpass status) -eq 401 ]] || fail "refuse/badpass status"
[[ $(get drop closed) -eq 1 && $(get drop frames) -ge 40 && $(get drop frames) -le 60 ]] ||
	fail "drop:2: closed=$(get drop closed) frames=$(get drop frames)"
[[ $(get slow jumps) -eq 1 && $(get slow skipped) -gt 0 ]] || fail "slow reader did not skip"

# The summary agrees with the clients: skipped frames are the slow reader's
# plus the stall's 2 s (50 frames); corrupted packets and swapped pairs are
# at least what the clients saw (they stop reading a moment before TEARDOWN).
stall_skipped=$(grep -o 'event=fault_stall_end .* frames_skipped=[0-9]*' s.err | sed 's/.*=//')
[[ $stall_skipped -ge 48 && $stall_skipped -le 52 ]] || fail "stall skipped $stall_skipped frames"
[[ $(summary_kv s frames_skipped) -eq $(($(get slow skipped) + stall_skipped)) ]] ||
	fail "summary frames_skipped=$(summary_kv s frames_skipped), clients saw $(get slow skipped) + $stall_skipped"
pc=$(summary_kv s packets_corrupted) pr=$(summary_kv s pairs_reordered)
[[ $pc -ge $(get corrupt flipped) && $pc -le $(($(get corrupt flipped) + 20)) ]] ||
	fail "summary packets_corrupted=$pc, client saw $(get corrupt flipped)"
[[ $pr -ge $(get reorder inversions) && $pr -le $(($(get reorder inversions) + 20)) ]] ||
	fail "summary pairs_reordered=$pr, client saw $(get reorder inversions)"
[[ $(summary_kv s sessions) -eq 9 ]] || fail "summary sessions=$(summary_kv s sessions), expected 9"
expect_grep 'event=fault_refuse camera=5' s.err "refuse not logged"
expect_grep 'event=client_behind camera=8 ' s.err "skip not logged"
# --verbose: one line per camera; camera 5 (refused) sent nothing.
[[ $(grep -c 'event=camsim_camera ' s.err) -eq 8 ]] || fail "per-camera lines missing"
expect_grep 'event=camsim_camera camera=5 frames_sent=0$' s.err "refused camera sent frames"
echo "ok: $(for n in "${names[@]}"; do printf '%s: %s\n' "$n" "$(grep '^status=' $n.txt)"; done)"
