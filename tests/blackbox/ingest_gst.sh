#!/usr/bin/env bash
# ingest_gst.sh - nvrd records real RTSP servers (GStreamer's gst-rtsp-server)
# and what it stored is exactly what they served.
#
# Two servers (tests/helpers/gst_rtsp_server.py), one open and one asking
# for Digest authentication, each serve a 5 s H.264 and a 5 s H.265 fixture
# (scripts/make-fixtures.sh) once, in real time, from PLAY. Eight cameras
# cover {H.264, H.265} x {TCP interleaved, UDP} x {no auth, Digest}; a
# ninth has a wrong password. nvrctl imports them, nvrd records them, then
# for each camera `nvrctl frames --out --list` is compared with the source
# access unit by access unit (tests/helpers/annexb_au.py: same count, same
# bytes, key flags, increasing times within the run, 25 fps spacing) and
# ffprobe -count_frames must find the right codec, size and frame count in
# the dump. The wrong-password camera must fail with "credentials refused"
# and record nothing, while the others lose nothing; no password may appear
# in the daemon's log.
#
# Skips (77) when python3-gi with GstRtspServer or ffmpeg is missing.
set -euo pipefail
# shellcheck source=tests/blackbox/lib.bash
. "$(dirname "$0")/lib.bash"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HELPERS=$ROOT/tests/helpers
PY=/usr/bin/python3
SECONDS_FX=5
FPS=25
SIZE=320x240
USER_OK=viewer
PASS_OK='s3cret-Pa55'
PASS_BAD='wrong-Pa55'

command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || { echo "ffmpeg/ffprobe missing"; exit 77; }
"$PY" -c 'import gi; gi.require_version("GstRtspServer", "1.0"); from gi.repository import GstRtspServer' \
	2>/dev/null || { echo "python3-gi with GstRtspServer missing"; exit 77; }

cd "$TEST_DIR"
fixdir=${FIXTURE_DIR:-$BIN/../fixtures}
mkdir -p "$fixdir" 2>/dev/null && [[ -w $fixdir ]] || fixdir=$TEST_DIR/fixtures
mapfile -t fx < <("$ROOT/scripts/make-fixtures.sh" "$fixdir" "$SECONDS_FX" 1000 "$FPS" "$SIZE")
declare -A SRC=([h264]=${fx[0]} [h265]=${fx[1]})

pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT

# start_server NAME [--user U --password P]: sets PORT_<NAME>.
start_server() {
	local name=$1 try port
	shift
	for try in 1 2 3 4 5; do
		port=$((20000 + RANDOM % 20000))
		"$PY" "$HELPERS/gst_rtsp_server.py" --port "$port" --h264 "${SRC[h264]}" \
			--h265 "${SRC[h265]}" --fps "$FPS" "$@" >"server-$name.out" 2>&1 &
		local pid=$!
		local i
		for i in $(seq 100); do
			grep -q '^ready' "server-$name.out" && break
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if grep -q '^ready' "server-$name.out"; then
			pids+=("$pid")
			printf -v "PORT_$name" '%s' "$port"
			return 0
		fi
		kill "$pid" 2>/dev/null || true
	done
	cat "server-$name.out" >&2
	fail "GStreamer RTSP server $name did not start"
}

start_server open
start_server auth --user "$USER_OK" --password "$PASS_OK"

# id codec transport auth
cams=(
	"1 h264 tcp digest"
	"2 h265 tcp none"
	"3 h264 udp none"
	"4 h265 udp digest"
	"5 h264 tcp none"
	"6 h265 tcp digest"
	"7 h264 udp digest"
	"8 h265 udp none"
)
{
	echo "id,name,main_url,username,password,transport"
	for c in "${cams[@]}"; do
		read -r id codec tr auth <<<"$c"
		if [[ $auth == digest ]]; then
			echo "$id,cam$id,rtsp://127.0.0.1:$PORT_auth/$codec,$USER_OK,$PASS_OK,$tr"
		else
			echo "$id,cam$id,rtsp://127.0.0.1:$PORT_open/$codec,,,$tr"
		fi
	done
	echo "9,badpass,rtsp://127.0.0.1:$PORT_auth/h264,$USER_OK,$PASS_BAD,tcp"
} >cams.csv

expect_exit 0 import.log "$BIN/nvrctl" cameras import cams.csv --data data
t0=$(date +%s%6N)
expect_exit 0 nvrd.log "$BIN/nvrd" --data data --volumes 1 --volume-size 64M --seconds $((SECONDS_FX + 5)) \
	--simulate 0
t1=$(date +%s%6N)

grep -Fq -- "$PASS_OK" nvrd.log && fail "a password appears in the daemon's log"
grep -Fq -- "$PASS_BAD" nvrd.log && fail "a password appears in the daemon's log"
expect_grep 'event=session_failed camera=9 .*credentials refused' nvrd.log "wrong password not refused"
ups=$(grep -c 'event=session_up' nvrd.log || true)
[[ $ups -eq 8 ]] || { cat nvrd.log >&2; fail "$ups sessions came up, expected 8"; }
if grep -E 'event=session_failed camera=[1-8] ' nvrd.log >&2; then
	fail "a good camera failed"
fi

declare -A PROBE_NAME=([h264]=h264 [h265]=hevc)
results=()
for c in "${cams[@]}"; do
	read -r id codec tr auth <<<"$c"
	expect_exit 0 "frames-$id.log" "$BIN/nvrctl" frames --data data --camera "$id" \
		--out "rec-$id.$codec" --list "rec-$id.txt"
	if ! "$PY" "$HELPERS/annexb_au.py" compare --codec "$codec" --source "${SRC[$codec]}" \
		--rec "rec-$id.$codec" --list "rec-$id.txt" --t0 "$t0" --t1 "$t1" --fps "$FPS" \
		>"compare-$id.txt"; then
		cat "compare-$id.txt" >&2
		fail "camera $id ($codec/$tr/$auth): recording differs from the source"
	fi
	want=$("$PY" "$HELPERS/annexb_au.py" count --codec "$codec" "${SRC[$codec]}")
	probe=$(ffprobe -v error -count_frames -select_streams v:0 \
		-show_entries stream=codec_name,width,height,nb_read_frames -of csv=p=0 "rec-$id.$codec")
	[[ $probe == "${PROBE_NAME[$codec]},${SIZE%x*},${SIZE#*x},$want" ]] ||
		fail "camera $id ($codec/$tr/$auth): ffprobe says '$probe', expected ${PROBE_NAME[$codec]},${SIZE/x/,},$want"
	results+=("camera $id $codec/$tr/$auth: $(cat "compare-$id.txt")")
done

expect_exit 0 frames-9.log "$BIN/nvrctl" frames --data data --camera 9 --out rec-9 --list rec-9.txt
[[ ! -s rec-9.txt ]] || fail "the camera with the wrong password recorded frames"

printf '%s\n' "${results[@]}"
echo "ok: 8 cameras recorded exactly what the servers sent; wrong password refused"
