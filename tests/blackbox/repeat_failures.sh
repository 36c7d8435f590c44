#!/usr/bin/env bash
# repeat_failures.sh - a flapping camera among healthy ones. nvr-camsim
# serves four cameras; camera 2's connection is dropped one second after
# each PLAY. Once nvrd has seen camera 2 fail six times or more:
#   - GET /api/v1/repeat-failures lists camera 2 alone, with its count,
#     last failure and last error; /cameras?status=repeat_failure agrees;
#   - /metrics has nvr_camera_failures_24h 0 for cameras 1, 3, 4 and the
#     count of /cameras/2 for camera 2 (reference parser);
#   - /health says degraded (HTTP 200) with the reason repeat_failures (and
#     cameras_backoff exactly when camera 2 waits to retry), every volume active, the healthy cameras streaming with no
#     reconnect;
#   - the log holds at most NVR_LOG_LIMIT_BURST (5) session_failed lines
#     for camera 2, and after SIGTERM its session_removed line says how
#     many were held back: lines + held back = its failures.
set -euo pipefail
# shellcheck source=tests/blackbox/lib.bash
. "$(dirname "$0")/lib.bash"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$TEST_DIR"
SIM_PORT=18761
HTTP_PORT=18762
BURST=5
command -v curl >/dev/null || { echo "skip: curl is not installed"; exit 77; }
command -v ffmpeg >/dev/null || { echo "skip: ffmpeg missing"; exit 77; }
# shellcheck source=tests/blackbox/http_lib.bash
. "$BLACKBOX_DIR/http_lib.bash"

fixdir=$BIN/../fixtures
mkdir -p "$fixdir" 2>/dev/null && [[ -w $fixdir ]] || fixdir=$TEST_DIR/fixtures
mapfile -t fx < <("$ROOT/scripts/make-fixtures.sh" "$fixdir" 4 400 25 320x240)
"$BIN/nvr-camsim" --cameras 4 --fixture "${fx[0]}" --listen "127.0.0.1:$SIM_PORT" \
	--fault drop:1@2 >camsim.out 2>camsim.log &
sim=$!
trap 'kill $sim 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q '^ready' camsim.out && break; sleep 0.1; done
grep -q '^ready' camsim.out || fail "nvr-camsim did not start: $(cat camsim.log)"
{
	echo "id,name,main_url,enabled"
	for k in 1 2 3 4; do echo "$k,camera $k,rtsp://127.0.0.1:$SIM_PORT/cam/$k,true"; done
} >cams.csv
expect_exit 0 import.log "$BIN/nvrctl" cameras import cams.csv --data data

make_api_user
"$BIN/nvrd" --data data --simulate 0 --http-port "$HTTP_PORT" --volume-size 128M 2>nvrd.log &
pid=$!
trap 'kill $sim 2>/dev/null || true; kill -KILL $pid 2>/dev/null || true' EXIT

# Backoff doubles after each failure in a row (up to 16 s before the 6th).
fails=0
for _ in $(seq 300); do
	if curl -s "${CURL_AUTH[@]}" -o cam2.json "$API/cameras/2" 2>/dev/null && [[ -s cam2.json ]]; then
		fails=$(json cam2.json 'j["live"]["failures_24h"] if j.get("live") else 0')
		[[ $fails -ge 6 ]] && break
	fi
	kill -0 $pid 2>/dev/null || { cat nvrd.log >&2; fail "nvrd exited"; }
	sleep 0.2
done
[[ $fails -ge 6 ]] || fail "camera 2 failed only $fails times"
echo "camera 2 failed $fails times"

get rf.json /repeat-failures
[[ $(json rf.json 'j["total"]') == 1 ]] || fail "repeat failures: $(cat rf.json)"
[[ $(json rf.json 'j["threshold"] == 3 and j["window_s"] == 86400') == True ]] ||
	fail "repeat failures: threshold or window"
c=$(json rf.json 'json.dumps(j["cameras"][0])')
echo "$c" >rf0.json
[[ $(json rf0.json 'j["id"]') == 2 ]] || fail "the repeat failure is not camera 2: $c"
[[ $(json rf0.json 'j["failures_24h"] >= 6 and j["reconnects"] >= 5') == True ]] ||
	fail "camera 2's count: $c"
[[ $(json rf0.json 'j["last_error"]') == "connection closed by the camera" ]] ||
	fail "camera 2's last error: $c"
now=$($PY -c 'import time; print(int(time.time() * 1000))')
[[ $(json rf0.json "$now - 60000 < j['last_failure_ms'] <= $now and j['last_failure'].endswith('Z')") == True ]] ||
	fail "camera 2's last failure time: $c"
get st.json '/cameras?status=repeat_failure'
[[ $(json st.json '[c["id"] for c in j["cameras"]]') == "[2]" ]] || fail "status=repeat_failure"

get health.json /health
[[ $(json health.json 'j["status"]') == degraded ]] || fail "health: $(cat health.json)"
# Camera 2 may be waiting to retry: one of four cameras is above the 10% share.
[[ $(json health.json 'sorted(r["code"] for r in j["reasons"]) in (["repeat_failures"], ["cameras_backoff", "repeat_failures"])') == True ]] ||
	fail "health reasons: $(cat health.json)"
[[ $(json health.json '("cameras_backoff" in [r["code"] for r in j["reasons"]]) == (j["backoff"] == 1)') == True ]] ||
	fail "health: cameras_backoff reason without a camera in backoff: $(cat health.json)"
[[ $(json health.json 'j["repeat_failures"] == 1 and j["cameras"] == 4') == True ]] ||
	fail "health counts: $(cat health.json)"
[[ $(json health.json 'all(v["state"] == "active" for v in j["volumes"]) and len(j["volumes"]) == 2') == True ]] ||
	fail "health volumes: $(cat health.json)"
for k in 1 3 4; do
	get "cam$k.json" "/cameras/$k"
	[[ $(json "cam$k.json" 'j["status"] == "streaming" and j["live"]["failures_24h"] == 0 and j["live"]["reconnects"] == 0 and not j["live"]["repeat_failure"]') == True ]] ||
		fail "healthy camera $k: $(cat "cam$k.json")"
done

curl -s "${CURL_AUTH[@]}" -o metrics.txt "http://127.0.0.1:$HTTP_PORT/metrics" || fail "curl /metrics"
get cam2b.json /cameras/2
$PY - metrics.txt cam2.json cam2b.json <<'PYEOF' || fail "/metrics failures do not match the API"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
fams = {f.name: f for f in text_string_to_metric_families(open(sys.argv[1]).read())}
fails = {s.labels["camera"]: s.value for s in fams["nvr_camera_failures_24h"].samples}
assert set(fails) == {"1", "2", "3", "4"}, fails
assert fails["1"] == fails["3"] == fails["4"] == 0, fails
lo = json.load(open(sys.argv[2]))["live"]["failures_24h"]
hi = json.load(open(sys.argv[3]))["live"]["failures_24h"]
assert lo <= fails["2"] <= hi and fails["2"] >= 6, (lo, fails["2"], hi)
assert fams["nvr_cameras_repeat_failures"].samples[0].value == 1
PYEOF

# Failures of camera 2 up to now; a few more may come before it is stopped.
get cam2c.json /cameras/2
before=$(json cam2c.json 'j["live"]["failures_24h"]')
stop_nvrd
kill $sim 2>/dev/null || true
lines=$(grep -c 'event=session_failed camera=2 ' nvrd.log || true)
removed=$(grep 'event=session_removed camera=2 ' nvrd.log | tail -n 1)
held=$(kv log_suppressed "$removed")
[[ -n $held ]] || fail "no session_removed line with log_suppressed for camera 2"
echo "camera 2: $lines failure lines printed, $held held back, $before failures counted"
[[ $lines -ge 1 && $lines -le $BURST ]] || fail "camera 2 logged $lines failure lines (burst $BURST)"
[[ $held -ge 1 ]] || fail "nothing was held back"
total=$((lines + held))
[[ $total -ge $before && $total -le $((before + 2)) ]] ||
	fail "lines + held back = $total, but $before failures were counted"
for k in 1 3 4; do
	grep -q "event=session_failed camera=$k " nvrd.log && fail "healthy camera $k failed"
	r=$(grep "event=session_removed camera=$k " nvrd.log | tail -n 1)
	[[ $(kv log_suppressed "$r") == 0 ]] || fail "camera $k: $r"
done
echo "ok"
