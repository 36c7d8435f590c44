#!/usr/bin/env bash
# ingest_faults.sh - nvrd records four nvr-camsim cameras, two of them
# faulty: camera 2's connection is dropped every 4 s, camera 3 has 2% of its
# RTP payloads corrupted. Checks, from what storage holds afterwards:
#   - camera 2 is reconnected (several sessions) and each drop shows as a
#     gap between recorded ranges;
#   - camera 3 never disconnects and loses at most one GOP per corrupted
#     packet;
#   - cameras 1 and 4 lose nothing: one range, every frame 40 ms after the
#     previous one, as many frames as the simulator sent them (less at most
#     the frame in flight at TEARDOWN: what waits in the socket when nvrd
#     stops is read and recorded).
set -euo pipefail
# shellcheck source=tests/blackbox/lib.bash
. "$(dirname "$0")/lib.bash"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PORT=18631
GOP=50

command -v ffmpeg >/dev/null || { echo "ffmpeg missing"; exit 77; }
cd "$TEST_DIR"
fixdir=$BIN/../fixtures
mkdir -p "$fixdir" 2>/dev/null && [[ -w $fixdir ]] || fixdir=$TEST_DIR/fixtures
mapfile -t fx < <("$ROOT/scripts/make-fixtures.sh" "$fixdir" 4 800 25 320x240)

"$BIN/nvr-camsim" --cameras 4 --fixture "${fx[0]}" --listen "127.0.0.1:$PORT" \
	--fault drop:4@2 --fault corrupt:0.02@3 --verbose >camsim.out 2>camsim.log &
sim=$!
trap 'kill $sim 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q '^ready' camsim.out && break; sleep 0.1; done
grep -q '^ready' camsim.out || fail "nvr-camsim did not start: $(cat camsim.log)"

{
	echo "id,name,main_url,enabled"
	for k in 1 2 3 4; do echo "$k,camera $k,rtsp://127.0.0.1:$PORT/cam/$k,true"; done
} >cams.csv
expect_exit 0 import.log "$BIN/nvrctl" cameras import cams.csv --data data
expect_exit 0 nvrd.log "$BIN/nvrd" --data data --simulate 0 --seconds 14 --volume-size 256M
kill -TERM $sim
wait $sim || true
trap - EXIT

for k in 1 2 3 4; do
	expect_exit 0 "frames$k.log" "$BIN/nvrctl" frames --data data --camera $k \
		--list "cam$k.txt" --ranges "cam$k.ranges"
done

sent() { grep "event=camsim_camera camera=$1 " camsim.log | sed 's/.*frames_sent=//'; }
sessions() { grep -c "event=session_up camera=$1 " nvrd.log || true; }
frames() { wc -l <"cam$1.txt"; }
ranges() { wc -l <"cam$1.ranges"; }
# Largest step between consecutive frame times, in microseconds.
max_step() { awk 'NR > 1 { d = $1 - p; if (d > m) m = d } { p = $1 } END { print m + 0 }' "cam$1.txt"; }

for k in 1 4; do
	[[ $(ranges $k) -eq 1 ]] || fail "healthy camera $k has $(ranges $k) ranges"
	[[ $(sessions $k) -eq 1 ]] || fail "healthy camera $k had $(sessions $k) sessions"
	step=$(max_step $k)
	[[ $step -le 41000 ]] || fail "healthy camera $k has a hole of $step us between frames"
	s=$(sent $k) f=$(frames $k)
	[[ $f -ge 300 && $f -le $s && $((s - f)) -le 1 ]] ||
		fail "healthy camera $k: $f frames recorded, $s sent"
	echo "camera $k: $f of $s frames, one range, largest step $step us"
done

[[ $(sessions 2) -ge 3 ]] || fail "dropped camera 2 reconnected only $(sessions 2) times"
[[ $(ranges 2) -ge 3 ]] || fail "camera 2's drops are not gaps in its ranges: $(cat cam2.ranges)"
awk 'NR > 1 && $1 <= pe { bad = 1 } { pe = $2 } END { exit bad }' cam2.ranges ||
	fail "camera 2's ranges overlap: $(cat cam2.ranges)"
echo "camera 2: $(sessions 2) sessions, $(ranges 2) ranges, $(frames 2) frames"

corrupted=$(grep -o 'packets_corrupted=[0-9]*' camsim.log | tail -n 1 | cut -d= -f2)
[[ $corrupted -gt 0 ]] || fail "the simulator corrupted no packet"
[[ $(sessions 3) -eq 1 ]] || fail "corrupted camera 3 was disconnected ($(sessions 3) sessions)"
s=$(sent 3) f=$(frames 3)
[[ $f -gt 0 && $((s - f)) -le $((corrupted * GOP + 2)) ]] ||
	fail "camera 3 lost $((s - f)) frames for $corrupted corrupted packets"
echo "camera 3: $f of $s frames with $corrupted corrupted packets (at most one GOP each)"

status=$(last_status nvrd.log)
[[ $(kv dropped_frames "$status") -eq 0 ]] || fail "storage dropped frames: $status"
echo "ok"
