#!/usr/bin/env bash
# camsim_ffprobe.sh - nvr-camsim as ffmpeg sees it: 4 cameras (H.264 and
# H.265 fixtures of 4 s) on two loopback listeners, one server open and one
# with --user/--password. ffprobe over TCP and UDP reports the right codec
# and size for both codecs, with and without credentials; ffmpeg reads and
# decodes ~75 frames in 3 s (past the fixture's loop with -t 5) without an
# error; a wrong or missing password is refused with 401; a drop:2 camera
# ends ffmpeg's stream after ~2 s; the summary counts the sessions.
# Skips (77) without ffprobe/ffmpeg.
set -euo pipefail
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/camsim_lib.bash"
command -v ffprobe >/dev/null && command -v ffmpeg >/dev/null || { echo "ffprobe/ffmpeg not installed"; exit 77; }
cd "$TEST_DIR"

camsim_fixtures 4
camsim_start open --cameras 5 --fixture "$H264" --fixture "$H265" \
	--listen 127.0.0.1:0 --listen 127.0.0.2:0 --fault drop:2@5
camsim_start auth --cameras 4 --fixture "$H264" --fixture "$H265" \
	--listen 127.0.0.1:0 --user admin --password 'pa ss:w@rd'
trap 'kill $PID_open $PID_auth 2>/dev/null || true' EXIT
expect_grep '^ready cameras=5 listeners=2$' open.out "ready line"
port2=$(sed -n 's/.*event=listening addr=127.0.0.2:\([0-9]*\) .*/\1/p' open.err)
[[ -n $port2 ]] || fail "second listener not logged"

# probe URL TRANSPORT CODEC OUT: ffprobe's codec,width,height must match.
probe() {
	local url=$1 transport=$2 codec=$3 out=$4
	expect_exit 0 "$out" timeout 20 ffprobe -v error -rtsp_transport "$transport" \
		-show_entries stream=codec_name,width,height -of csv=p=0 "$url"
	[[ $(tail -n 1 "$out") == "$codec,640,360" ]] ||
		{ cat "$out" >&2; fail "ffprobe $transport $url: '$(tail -n 1 "$out")', expected $codec,640,360"; }
}

# The probes run side by side (each takes ~1.3 s of probing).
n=0
pids=()
for t in tcp udp; do
	for spec in "127.0.0.1:$PORT_open/cam/1 h264" "127.0.0.2:$port2/cam/2 hevc" \
	            "127.0.0.1:$PORT_open/cam/4 hevc" \
	            "admin:pa%20ss%3Aw%40rd@127.0.0.1:$PORT_auth/cam/3 h264" \
	            "admin:pa%20ss%3Aw%40rd@127.0.0.1:$PORT_auth/cam/2 hevc"; do
		n=$((n + 1))
		probe "rtsp://${spec% *}" $t "${spec#* }" p$n &
		pids+=($!)
	done
done
for pid in "${pids[@]}"; do
	wait "$pid" || fail "a probe failed (see above)"
done

# Unknown camera: 404.
expect_exit 1 nf timeout 20 ffprobe -v error -rtsp_transport tcp "rtsp://127.0.0.1:$PORT_open/cam/6"
expect_grep '404' nf "camera 6 of 5 not refused with 404"

# Wrong and missing passwords: 401, and nothing was streamed to them.
expect_exit 1 bad timeout 20 ffprobe -v error -rtsp_transport tcp "rtsp://admin:wrong@127.0.0.1:$PORT_auth/cam/1"
expect_grep '401' bad "wrong password not refused with 401"
expect_exit 1 none timeout 20 ffprobe -v error -rtsp_transport udp "rtsp://127.0.0.1:$PORT_auth/cam/2"
expect_grep '401' none "missing password not refused with 401"
expect_grep 'event=auth_failed .*method=DESCRIBE' auth.err "failed Digest answer not logged"
! grep -q 'wrong\|pa ss' auth.err || fail "a password appears in the log"

# frames URL TRANSPORT SECONDS OUT [ffmpeg options]: packets ffmpeg copied
# in SECONDS of stream time (framecrc prints one line per packet).
frames() {
	local url=$1 transport=$2 secs=$3 out=$4
	shift 4
	expect_exit 0 "$out.err" timeout 30 ffmpeg -nostdin -v error -rtsp_transport "$transport" \
		-i "$url" -t "$secs" "$@" -f framecrc "$out"
	[[ ! -s $out.err ]] || { cat "$out.err" >&2; fail "ffmpeg reported errors reading $url"; }
	grep -vc '^#' "$out"
}

in_range() {   # in_range VALUE LOW HIGH WHAT
	[[ $1 -ge $2 && $1 -le $3 ]] || fail "$4: $1, expected $2..$3"
}

# Copy and decode, both codecs, both transports, with and without auth,
# side by side; -t 5 goes past the 4 s fixture's loop.
frames "rtsp://127.0.0.1:$PORT_open/cam/1" tcp 3 f1 -c copy >n1 & pids=($!)
frames "rtsp://127.0.0.2:$port2/cam/2" udp 3 f2 -c copy >n2 & pids+=($!)
frames "rtsp://admin:pa%20ss%3Aw%40rd@127.0.0.1:$PORT_auth/cam/1" udp 5 f3 -c rawvideo >n3 & pids+=($!)
frames "rtsp://admin:pa%20ss%3Aw%40rd@127.0.0.1:$PORT_auth/cam/4" tcp 5 f4 -c rawvideo >n4 & pids+=($!)
for pid in "${pids[@]}"; do
	wait "$pid" || fail "an ffmpeg read failed (see above)"
done
c1=$(<n1) c2=$(<n2) c3=$(<n3) c4=$(<n4)
in_range "$c1" 70 80 "H.264 TCP frames in 3 s"
in_range "$c2" 70 80 "H.265 UDP frames in 3 s"
in_range "$c3" 120 130 "H.264 UDP decoded frames in 5 s"
in_range "$c4" 120 130 "H.265 TCP decoded frames in 5 s"

# drop:2 closes camera 5's session 2 s after PLAY: ffmpeg's stream ends
# early, with about 50 frames.
start=$(date +%s%N)
c5=$(frames "rtsp://127.0.0.1:$PORT_open/cam/5" tcp 10 f5 -c copy || true)
ms=$((($(date +%s%N) - start) / 1000000))
[[ $ms -lt 6000 ]] || fail "drop:2 stream lasted $ms ms"
in_range "$c5" 40 60 "frames before drop:2"
expect_grep 'event=session_close camera=5 .*reason=fault_drop' open.err "drop not logged"

camsim_stop open
camsim_stop auth
trap - EXIT
# ffprobe opens one session per probe; ffmpeg one per read.
open_sessions=$(grep -c 'event=session_open' open.err)
[[ $(summary_kv open sessions) -eq $open_sessions && $open_sessions -ge 9 ]] ||
	fail "open server: summary sessions=$(summary_kv open sessions), log has $open_sessions"
[[ $(summary_kv auth sessions) -eq $(grep -c 'event=session_open' auth.err) ]] ||
	fail "auth server: summary sessions differ from the log"
[[ $(summary_kv open frames_sent) -ge $((c1 + c2 + c5)) ]] || fail "open server sent fewer frames than ffmpeg read"
echo "ok: ffprobe x$n, frames tcp=$c1 udp=$c2 decoded=$c3/$c4 drop=$c5 (${ms} ms)"
