#!/usr/bin/env bash
# http_playback.sh - GET /api/v1/cameras/{id}/video.mp4 of nvrd while it
# records two simulated cameras (1: H.264, 2: H.265, both 640x360 at
# 25 fps): the recorded range of each camera comes back as an MP4 that
# ffprobe reads with the right codec and size and about as many frames as
# the range lasts, and that ffmpeg decodes without an error; the answer has
# a Content-Length, HEAD announces the same, and Range requests (RFC 9110)
# return exactly the bytes of the same slice of the whole answer (206 with
# Content-Range), 416 past the end, the whole answer for several ranges;
# a client that disconnects early has its request freed; a bad `from`
# answers 400 naming it, an unknown camera and a window without footage
# 404; the cameras still stream afterwards; then SIGTERM and exit status 0.
set -euo pipefail
# shellcheck source=tests/blackbox/lib.bash
. "$(dirname "$0")/lib.bash"
cd "$TEST_DIR"

SIM_PORT=18651
HTTP_PORT=18652
need_tools curl ffprobe ffmpeg
# shellcheck source=tests/blackbox/http_lib.bash
. "$BLACKBOX_DIR/http_lib.bash"


start_nvrd_api 2
sleep 6

# play CAM CODEC: fetches the camera's recorded range as MP4 and checks it.
play() {
	local cam=$1 codec=$2 now from to
	now=$(date +%s%3N)
	fetch "ranges$cam.json" "/cameras/$cam/ranges?from=$((now - 60000))&to=$((now + 1000))" 200
	[[ $(json "ranges$cam.json" 'len(j["ranges"])') -ge 1 ]] || fail "camera $cam: no range"
	from=$(json "ranges$cam.json" 'j["ranges"][0]["start_ms"]')
	to=$(json "ranges$cam.json" 'j["ranges"][-1]["end_ms"]')
	((to - from >= 3000)) || fail "camera $cam: range of only $((to - from)) ms"
	fetch "out$cam.mp4" "/cameras/$cam/video.mp4?from=$from&to=$to" 200
	grep -qi '^content-type: video/mp4' "out$cam.mp4.headers" || fail "camera $cam: content type"
	grep -qi "^content-disposition: inline; filename=\"camera-$cam-$from.mp4\"" \
		"out$cam.mp4.headers" || fail "camera $cam: content disposition"
	ffprobe -v error -count_frames -select_streams v:0 -of json \
		-show_entries stream=codec_name,width,height,nb_read_frames "out$cam.mp4" \
		>"probe$cam.json" || fail "camera $cam: ffprobe failed"
	[[ $(json "probe$cam.json" 'j["streams"][0]["codec_name"]') == "$codec" ]] ||
		{ cat "probe$cam.json" >&2; fail "camera $cam: codec is not $codec"; }
	[[ $(json "probe$cam.json" '(j["streams"][0]["width"], j["streams"][0]["height"])') == \
		"(640, 360)" ]] || { cat "probe$cam.json" >&2; fail "camera $cam: size is not 640x360"; }
	local frames want
	frames=$(json "probe$cam.json" 'j["streams"][0]["nb_read_frames"]')
	want=$(((to - from) * 25 / 1000))
	echo "camera $cam: $codec range $((to - from)) ms, $frames frames (expected about $want)"
	((frames >= want - 50 && frames <= want + 50)) ||
		fail "camera $cam: $frames frames, expected $want +- 50"
	ffmpeg -nostdin -v error -i "out$cam.mp4" -f null - 2>"decode$cam.log" ||
		fail "camera $cam: ffmpeg could not decode"
	[[ ! -s "decode$cam.log" ]] || { cat "decode$cam.log" >&2; fail "camera $cam: decode errors"; }
}
play 1 h264
play 2 hevc

# header FILE NAME: the value of header NAME in a curl -D dump.
header() {
	grep -i "^$2:" "$1" | head -n 1 | sed 's/^[^:]*: *//' | tr -d '\r'
}

# Byte ranges of camera 1's MP4: the window lies in the past, so the answer
# is the same at every request; each slice is compared with the whole.
from=$(json ranges1.json 'j["ranges"][0]["start_ms"]')
to=$(json ranges1.json 'j["ranges"][-1]["end_ms"]')
url="/cameras/1/video.mp4?from=$from&to=$to"
size=$(stat -c %s out1.mp4)
[[ $(header out1.mp4.headers content-length) == "$size" ]] ||
	fail "Content-Length $(header out1.mp4.headers content-length), body $size bytes"
[[ $(header out1.mp4.headers accept-ranges) == bytes ]] || fail "no Accept-Ranges: bytes"
curl -s "${CURL_AUTH[@]}" -I "$API$url" >head.headers || fail "HEAD failed"
grep -q '^HTTP/1.1 200' head.headers || fail "HEAD: $(head -n 1 head.headers)"
[[ $(header head.headers content-length) == "$size" ]] ||
	fail "HEAD Content-Length $(header head.headers content-length), GET body $size"
# range SPEC FIRST LAST: Range: bytes=SPEC answers 206 with bytes FIRST..LAST.
range() {
	local code
	code=$(curl -s "${CURL_AUTH[@]}" -D r.headers -o r.bin -w '%{http_code}' \
		-H "Range: bytes=$1" "$API$url")
	[[ $code == 206 ]] || fail "Range $1: status $code"
	[[ $(header r.headers content-range) == "bytes $2-$3/$size" ]] ||
		fail "Range $1: Content-Range $(header r.headers content-range), want bytes $2-$3/$size"
	[[ $(header r.headers content-length) == $(($3 - $2 + 1)) ]] || fail "Range $1: length"
	dd if=out1.mp4 of=want.bin iflag=skip_bytes,count_bytes skip="$2" count=$(($3 - $2 + 1)) \
		status=none
	cmp -s r.bin want.bin || fail "Range $1: bytes differ from the whole answer's"
}
range 0-99 0 99
range 1000-4999 1000 4999
range "$((size / 2))-" $((size / 2)) $((size - 1))
range -500 $((size - 500)) $((size - 1))
range "$((size - 10))-$((size + 1000))" $((size - 10)) $((size - 1))
range 0- 0 $((size - 1))
echo "camera 1: $size bytes, 6 ranges compared with the whole answer"
code=$(curl -s "${CURL_AUTH[@]}" -D r.headers -o r.bin -w '%{http_code}' \
	-H "Range: bytes=$size-" "$API$url")
[[ $code == 416 ]] || fail "Range past the end: status $code, expected 416"
[[ $(header r.headers content-range) == "bytes */$size" ]] || fail "416 without Content-Range"
code=$(curl -s "${CURL_AUTH[@]}" -o r.bin -w '%{http_code}' -H "Range: bytes=0-9, 20-29" "$API$url")
[[ $code == 200 ]] && cmp -s r.bin out1.mp4 || fail "two ranges: status $code, not the whole body"
code=$(curl -s "${CURL_AUTH[@]}" -o r.bin -w '%{http_code}' -H "Range: pages=1-2" "$API$url")
[[ $code == 200 ]] && cmp -s r.bin out1.mp4 || fail "unknown unit: status $code, not the whole body"

# A client that goes away mid-stream: the request is freed, nvrd records on.
from=$(json ranges1.json 'j["ranges"][0]["start_ms"]')
to=$(json ranges1.json 'j["ranges"][-1]["end_ms"]')
# A small receive window keeps most of the answer on the server's side.
$PY - "$HTTP_PORT" "/api/v1/cameras/1/video.mp4?from=$from&to=$to" "$AUTH_HEADER" <<'PYEOF' ||
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("127.0.0.1", int(sys.argv[1])))
s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n\r\n" % (sys.argv[2], sys.argv[3])).encode())
got = s.recv(2000)
assert got.startswith(b"HTTP/1.1 200"), got[:100]
time.sleep(0.5)
s.close()
PYEOF
	fail "slow client: no 200 answer"
# Whether or not the server had handed everything to the socket by then,
# every playback started must have been freed (pb_free logs playback_ended).
for ((i = 0; i < 50; i++)); do
	started=$(grep -c 'event=playback_started' nvrd.log || true)
	ended=$(grep -c 'event=playback_ended' nvrd.log || true)
	((started == 11 && ended == 11)) && break
	sleep 0.1
done
((started == 11 && ended == 11)) ||
	fail "after a client went away: $started playbacks started, $ended ended"
kill -0 $pid 2>/dev/null || fail "nvrd exited after a client went away"

now=$(date +%s%3N)
expect_param "/cameras/1/video.mp4?from=yesterday&to=$now" 400 from "bad from: parameter not named"
expect_param "/cameras/1/video.mp4?to=$now" 400 from "missing from: not named"
expect_param "/cameras/1/video.mp4?from=$now&to=$((now - 1000))" 400 to "to before from: not named"
expect_param "/cameras/1/video.mp4?from=$((now - 8 * 86400000))&to=$now" 400 to "8-day window accepted"
expect_param "/cameras/999/video.mp4?from=$((now - 60000))&to=$now" 404 id "camera 999: not named"
fetch empty.json "/cameras/1/video.mp4?from=$((now - 7200000))&to=$((now - 3600000))" 404
grep -q 'no footage' empty.json || fail "window without footage: no 'no footage' message"

# Nothing else was lost: both cameras still stream and record.
fetch health.json /health 200
[[ $(json health.json 'j["streaming"]') == 2 ]] || fail "cameras stopped streaming"
frames1=$(json health.json 'j["frames"]')
sleep 1
fetch health.json /health 200
(($(json health.json 'j["frames"]') > frames1)) || fail "recording stopped"
expect_grep 'event=playback_ended camera=1 frames=[0-9]+ bytes=[0-9]+ complete=true' nvrd.log \
	"playback of camera 1 did not end complete"

stop_nvrd
echo "ok"
