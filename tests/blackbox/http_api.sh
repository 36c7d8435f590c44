#!/usr/bin/env bash
# http_api.sh - the HTTP API of nvrd (web/): health, the camera listing and
# its filters (checked against the unfiltered listing, recomputed here in
# Python), one camera's live status, 404 and 400 answers naming what was
# wrong, recorded ranges of the last minute, registry edits seen without a
# restart, no credentials in any answer; then SIGTERM and exit status 0.
set -euo pipefail
# shellcheck source=tests/blackbox/lib.bash
. "$(dirname "$0")/lib.bash"
cd "$TEST_DIR"

SIM_PORT=18641
HTTP_PORT=18642
command -v curl >/dev/null || { echo "skip: curl is not installed"; exit 77; }
# shellcheck source=tests/blackbox/http_lib.bash
. "$BLACKBOX_DIR/http_lib.bash"
start_nvrd_api 6
expect_grep "event=http_started url=http://127.0.0.1:$HTTP_PORT/" nvrd.log "no http_started line"

get health.json /health
[[ $(json health.json 'j["status"]') == ready ]] || fail "health status: $(cat health.json)"
[[ $(json health.json 'j["reasons"] == [] and j["backoff"] == 0 and j["repeat_failures"] == 0') == True ]] ||
	fail "health: reasons or counts of a healthy recorder: $(cat health.json)"
[[ $(json health.json 'j["cameras"]') == 6 ]] || fail "health: cameras != 6"
[[ $(json health.json 'j["streaming"]') == 6 ]] || fail "health: cameras not streaming"
[[ $(json health.json 'len(j["volumes"])') == 2 ]] || fail "health: volumes"
[[ $(json health.json 'all(v["state"] == "active" for v in j["volumes"])') == True ]] ||
	fail "health: a volume is not active"
grep -q 'application/json' < <(curl -sI "$API/health") || fail "no JSON content type"

get all.json /cameras
[[ $(json all.json 'j["total"]') == 6 ]] || fail "cameras: total != 6"
[[ $(json all.json 'sorted(c["id"] for c in j["cameras"])') == "[1, 2, 3, 4, 5, 6]" ]] ||
	fail "cameras: wrong ids"
grep -qiE 'password|username|rtsp://' all.json && fail "cameras listing shows URLs or credentials"

# bbox around the Wuda district's cameras (2 and 5: id % 3 == 2).
get bbox.json '/cameras?bbox=106.6,39.4,106.8,39.6'
want=$(json all.json 'sorted(c["id"] for c in j["cameras"] if 106.6 <= c["longitude"] <= 106.8 and 39.4 <= c["latitude"] <= 39.6)')
got=$(json bbox.json 'sorted(c["id"] for c in j["cameras"])')
[[ $want == "[2, 5]" && $got == "$want" ]] || fail "bbox: got $got, expected $want (and [2, 5])"
[[ $(json bbox.json 'j["total"]') == 2 ]] || fail "bbox: total"

# near the Haibowan centre: ids 6 (a crossing ~2.1 km out) and 3 (a
# checkpoint ~3.5 km out), sorted by distance with distance_m.
LAT=39.684 LON=106.825 RADIUS=5000
get near.json "/cameras?near=$LAT,$LON&radius=$RADIUS"
want=$($PY - all.json <<PYEOF
import json, math, sys
def hav(a, b, c, d):
    p = math.radians
    h = math.sin(p(c - a) / 2) ** 2 + math.cos(p(a)) * math.cos(p(c)) * math.sin(p(d - b) / 2) ** 2
    return 2 * 6371008.8 * math.asin(math.sqrt(h))
cams = json.load(open(sys.argv[1]))["cameras"]
hits = sorted((hav($LAT, $LON, c["latitude"], c["longitude"]), c["id"]) for c in cams)
print([i for d, i in hits if d <= $RADIUS])
PYEOF
)
got=$(json near.json '[c["id"] for c in j["cameras"]]')
[[ $got == "$want" && $want == "[6, 3]" ]] || fail "near: got $got, expected $want (and [6, 3])"
[[ $(json near.json 'all(0 <= c["distance_m"] <= 5000 for c in j["cameras"])') == True ]] ||
	fail "near: distance_m missing or out of range"
expect_param "/cameras?near=$LAT,$LON" 400 radius "near without radius"

# tags: 1 has school+street, 2 bank+street, 4 school+street... (tag_sets[id % 6])
get tag.json '/cameras?tag=street'
want=$(json all.json 'sorted(c["id"] for c in j["cameras"] if "street" in c["tags"])')
[[ $(json tag.json 'sorted(c["id"] for c in j["cameras"])') == "$want" && $want == "[1, 2, 6]" ]] ||
	fail "tag=street: expected $want"
get tag2.json '/cameras?tag=street&tag=school'
[[ $(json tag2.json '[c["id"] for c in j["cameras"]]') == "[1]" ]] || fail "tag=street&tag=school"
get q.json '/cameras?q=WUDA&limit=1&offset=1'
[[ $(json q.json 'j["total"]') == 2 && $(json q.json '[c["id"] for c in j["cameras"]]') == "[5]" ]] ||
	fail "q=WUDA with limit/offset"
get st.json '/cameras?status=streaming'
[[ $(json st.json 'j["total"]') == 6 ]] || fail "status=streaming"
get st2.json '/cameras?status=backoff'
[[ $(json st2.json 'j["total"]') == 0 ]] || fail "status=backoff"
expect_param '/cameras?limit=5000' 400 limit "limit=5000 not refused"
expect_param '/cameras?live=maybe' 400 live "live=maybe not refused"

# rates cover whole seconds: a camera that has just come up reports fps 0
for _ in $(seq 50); do
	get one.json /cameras/1
	[[ $(json one.json 'j["live"] is not None and j["live"]["fps"] > 0') == True ]] && break
	sleep 0.1
done
[[ $(json one.json 'j["status"]') == streaming ]] || fail "camera 1 not streaming"
[[ $(json one.json 'j["live"]["frames"] > 0 and j["live"]["fps"] > 0') == True ]] ||
	fail "camera 1: no live counters"
get missing.json /cameras/999 404
[[ $(json missing.json 'j["error"]["code"]') == 404 ]] || fail "404 body"
get nope.json /nothing 404

now=$($PY -c 'import time; print(int(time.time() * 1000))')
# The first chunks reach the index within a flush interval or two of the
# first key frames: wait for them (at most 10 s) rather than guess.
for _ in $(seq 50); do
	get ranges.json "/cameras/1/ranges?from=$((now - 60000))&to=$((now + 1000))"
	[[ $(json ranges.json 'len(j["ranges"]) >= 1') == True ]] && break
	sleep 0.2
done
[[ $(json ranges.json 'len(j["ranges"]) >= 1') == True ]] || fail "no recorded range in the last minute"
[[ $(json ranges.json 'all(r["start_ms"] < r["end_ms"] and r["start"].endswith("Z") for r in j["ranges"])') == True ]] ||
	fail "ranges malformed"
get ranges2.json "/cameras/1/ranges?from=$($PY -c "import datetime,time; print(datetime.datetime.fromtimestamp($now/1000-60, datetime.timezone.utc).isoformat().replace('+00:00','Z'))")&to=$((now + 1000))"
[[ $(json ranges2.json 'len(j["ranges"]) >= 1') == True ]] || fail "no range with an RFC 3339 from"
expect_param "/cameras/1/ranges?from=garbage&to=$now" 400 from "from=garbage not named"
expect_param "/cameras/1/ranges?from=$now&to=$now" 400 to "to <= from not refused"
get bad.json "/cameras/1/ranges?from=$((now - 8 * 86400000))&to=$now" 400
expect_param "/cameras/1/ranges?to=$now" 400 from "missing from not named"
get bad.json "/cameras/999/ranges?from=$((now - 60000))&to=$now" 404

# /metrics: the Prometheus text format, read by the reference parser.
curl -s "${CURL_AUTH[@]}" -o metrics.txt -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT/metrics" >code.txt || fail "curl /metrics"
[[ $(cat code.txt) == 200 ]] || fail "/metrics answered $(cat code.txt)"
get health2.json /health
$PY - metrics.txt health2.json <<'PYEOF' || fail "/metrics does not match the API"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
fams = {f.name: f for f in text_string_to_metric_families(open(sys.argv[1]).read())}
health = json.load(open(sys.argv[2]))
def samples(name):
    return fams[name].samples
frames = {s.labels["camera"]: s.value for s in samples("nvr_camera_frames")}
assert len(frames) == 6 and all(v > 0 for v in frames.values()), frames
# /metrics was read before /health: every camera had recorded at most that many.
assert sum(frames.values()) <= health["frames"], (sum(frames.values()), health["frames"])
up = [s.value for s in samples("nvr_camera_streaming")]
assert up == [1.0] * 6, up
states = {s.labels["state"] for s in samples("nvr_camera_state")}
assert states == {"streaming"}, states
vols = [s for s in samples("nvr_volume_state")]
assert len(vols) == len(health["volumes"]) and all(s.labels["state"] == "active" for s in vols)
written = sum(s.value for s in samples("nvr_volume_bytes_written"))
assert written <= sum(v["bytes_written"] for v in health["volumes"])
ok = [s.value for s in samples("nvr_http_requests") if s.labels["code"] == "200"]
assert ok and ok[0] >= 5, ok
assert any(s.labels["code"] == "404" for s in samples("nvr_http_requests"))
PYEOF

# A camera with credentials added while nvrd runs: listed, secrets not.
cat >cam7.csv <<'CSV'
id,name,main_url,username,password,latitude,longitude,tags,site,district,enabled
7,Gate seven,rtsp://admin:Secr3t@127.0.0.1:9/x,admin,Secr3t,39.5,106.7,gate,depot,Wuda,false
CSV
expect_exit 0 import.out "$BIN/nvrctl" cameras import cam7.csv --data data
get all7.json /cameras
[[ $(json all7.json 'j["total"]') == 7 ]] || fail "registry edit not seen"
get seven.json /cameras/7
[[ $(json seven.json 'j["name"]') == "Gate seven" ]] || fail "camera 7"
grep -qE 'Secr3t|admin|rtsp://' all7.json seven.json && fail "credentials in an answer"

stop_nvrd
expect_grep 'event=stopped reason=signal' nvrd.log "no stop line"
grep -q Secr3t nvrd.log && fail "the log holds a password"
echo "ok: health, filters, status, ranges, errors and registry refresh over HTTP"
