#!/usr/bin/env bash
# config_sighup.sh - cameras added to the configuration file start recording
# on SIGHUP while the cameras already recording lose no frame; a file with
# an error on SIGHUP is logged with file and line and changes nothing; a
# setting that needs a restart keeps its running value; SIGTERM writes out
# every frame received.
#
# nvr-camsim serves four cameras; the file lists cameras 1 and 2. After a
# few seconds cameras 3 and 4 are added (and ingest.loops changed) and
# nvrd gets SIGHUP; later a broken file and another SIGHUP; then SIGTERM.
# From what storage holds afterwards (nvrctl frames):
#   - cameras 1 and 2: one session each, one range, no step between frames
#     above 41 ms, every frame the simulator sent them (less at most the
#     frame in flight at TEARDOWN);
#   - cameras 3 and 4: recorded from their start, the same checks;
#   - the final status line: frames handed to storage == frames written,
#     nothing dropped; nvr-fsck finds index and volumes in agreement.
set -euo pipefail
# shellcheck source=tests/blackbox/lib.bash
. "$(dirname "$0")/lib.bash"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PORT=18721

command -v ffmpeg >/dev/null || { echo "ffmpeg missing"; exit 77; }
cd "$TEST_DIR"
fixdir=$BIN/../fixtures
mkdir -p "$fixdir" 2>/dev/null && [[ -w $fixdir ]] || fixdir=$TEST_DIR/fixtures
mapfile -t fx < <("$ROOT/scripts/make-fixtures.sh" "$fixdir" 4 800 25 320x240)

"$BIN/nvr-camsim" --cameras 4 --fixture "${fx[0]}" --listen "127.0.0.1:$PORT" --verbose \
	>camsim.out 2>camsim.log &
sim=$!
pid=
trap 'kill -KILL $sim $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q '^ready' camsim.out && break; sleep 0.1; done
grep -q '^ready' camsim.out || fail "nvr-camsim did not start: $(cat camsim.log)"

camera() {
	printf '[camera %d]\nname = camera %d\nmain_url = rtsp://127.0.0.1:%d/cam/%d\ntags = street\n\n' \
		"$1" "$1" "$PORT" "$1"
}
header() {
	printf '[storage]\ndata_dir = %s/data\nvolumes = 2\nvolume_size = 256M\n\n' "$TEST_DIR"
	printf '[ingest]\nloops = %d\n\n[demo]\nsimulate = 0\n\n[http]\nport = 0\n\n' "$1"
}
{ header 1; camera 1; camera 2; } >nvr.conf
expect_exit 0 check.out "$BIN/nvrd" --check-config --config nvr.conf

# wait_sessions N: until N cameras had a session_up line.
wait_sessions() {
	local i
	for ((i = 0; i < 100; i++)); do
		[[ $(grep -c 'event=session_up' nvrd.log || true) -ge $1 ]] && return 0
		kill -0 $pid 2>/dev/null || { cat nvrd.log >&2; fail "nvrd exited"; }
		sleep 0.1
	done
	cat nvrd.log >&2
	fail "fewer than $1 sessions came up"
}

"$BIN/nvrd" --config nvr.conf 2>nvrd.log &
pid=$!
wait_sessions 2
sleep 3

{ header 2; camera 1; camera 2; camera 3; camera 4; } >nvr.conf
kill -HUP $pid
wait_sessions 4
expect_grep 'event=config_cameras listed=4 written=2 unchanged=2 removed=0' nvrd.log \
	"the reload did not merge exactly the two new cameras"
expect_grep 'event=config_needs_restart setting=ingest.loops running="1" file="2"' nvrd.log \
	"ingest.loops was not reported as needing a restart"
expect_grep 'event=config_reloaded .*needs_restart=1 cameras=4' nvrd.log "no reload line"
sleep 3

# A broken file: logged with file and line, nothing changes.
cp nvr.conf good.conf
{ cat good.conf; printf '[limits]\nmax_connections = 0\n'; } >nvr.conf
bad_line=$(wc -l <nvr.conf)
kill -HUP $pid
for _ in $(seq 50); do grep -q 'event=reload_failed' nvrd.log && break; sleep 0.1; done
expect_grep "event=config_error error=\"nvr.conf:$bad_line: limits.max_connections: out of range" \
	nvrd.log "the bad file's error does not name file and line"
expect_grep 'event=reload_failed' nvrd.log "no reload_failed line"
cp good.conf nvr.conf
sleep 2

kill -TERM $pid
rc=0
wait $pid || rc=$?
pid=
[[ $rc -eq 0 ]] || { tail -n 20 nvrd.log >&2; fail "nvrd exited $rc after SIGTERM"; }
kill -TERM $sim
wait $sim || true
trap - EXIT

status=$(last_status nvrd.log)
[[ $(kv phase "$status") == final ]] || fail "no final status line"
[[ $(kv frames "$status") -eq $(kv frames_written "$status") ]] ||
	fail "frames received and frames written differ: $status"
[[ $(kv dropped_frames "$status") -eq 0 && $(kv frames_lost "$status") -eq 0 ]] ||
	fail "frames lost or dropped: $status"

sent() { grep "event=camsim_camera camera=$1 " camsim.log | sed 's/.*frames_sent=//'; }
for k in 1 2 3 4; do
	expect_exit 0 "frames$k.log" "$BIN/nvrctl" frames --data data --camera $k \
		--list "cam$k.txt" --ranges "cam$k.ranges"
	ranges=$(wc -l <"cam$k.ranges") frames=$(wc -l <"cam$k.txt")
	sessions=$(grep -c "event=session_up camera=$k " nvrd.log || true)
	step=$(awk 'NR > 1 { d = $1 - p; if (d > m) m = d } { p = $1 } END { print m + 0 }' "cam$k.txt")
	s=$(sent $k)
	[[ $sessions -eq 1 ]] || fail "camera $k had $sessions sessions"
	[[ $ranges -eq 1 ]] || fail "camera $k has $ranges ranges: $(cat "cam$k.ranges")"
	[[ $step -le 41000 ]] || fail "camera $k has a hole of $step us between frames"
	[[ $frames -le $s && $((s - frames)) -le 2 ]] || fail "camera $k: $frames frames recorded, $s sent"
	echo "camera $k: $frames of $s frames, one range, largest step $step us"
done
first=$(wc -l <cam1.txt) added=$(wc -l <cam3.txt)
[[ $first -ge $((added + 50)) ]] || fail "cameras 3 and 4 were not added later ($first vs $added frames)"

mapfile -t args < <(fsck_args data 2)
expect_exit 0 fsck.out "$BIN/nvr-fsck" "${args[@]}"
expect_grep 'differences=0' fsck.out "fsck found differences"
echo "ok: cameras added on SIGHUP, no frame lost by the others, bad file refused, fsck clean"
