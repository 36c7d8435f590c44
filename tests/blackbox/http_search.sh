#!/usr/bin/env bash
# http_search.sh - GET /api/v1/search of nvrd (web/api_search.c): cameras
# near a place that have footage in a window. Eight simulated cameras
# record for about six seconds and a ninth, disabled one sits next to camera
# 1 without footage. A search near camera 1 must answer exactly the cameras
# of /cameras?near= that /ranges says have footage, in distance order, with
# ranges inside the window and covered_ms matching those ranges; bbox answers
# in id order; a window an hour ago answers none; missing from, no place,
# a bad near and a window over 7 days are 400 naming the parameter; and the
# daemon still serves /cameras afterwards and exits 0 on SIGTERM.
set -euo pipefail
# shellcheck source=tests/blackbox/lib.bash
. "$(dirname "$0")/lib.bash"
cd "$TEST_DIR"

SIM_PORT=18661
HTTP_PORT=18662
HTTP_AUTH=bearer        # this test authenticates with an API token
command -v curl >/dev/null || { echo "skip: curl is not installed"; exit 77; }
# shellcheck source=tests/blackbox/http_lib.bash
. "$BLACKBOX_DIR/http_lib.bash"
start_nvrd_api 8

get one.json /cameras/1
LAT=$(json one.json 'j["latitude"]')
LON=$(json one.json 'j["longitude"]')

# Camera 9: disabled, 55 m north of camera 1, so near it but never recorded.
cat >cam9.csv <<CSV
id,name,main_url,latitude,longitude,tags,site,district,enabled
9,Dark corner,rtsp://127.0.0.1:9/x,$($PY -c "print($LAT + 0.0005)"),$LON,street,depot,Hainan,false
CSV
expect_exit 0 import.out "$BIN/nvrctl" cameras import cam9.csv --data data
sleep 6

# A radius half way between the second and the third nearest camera (1 and
# 9 are the two nearest): some cameras of the district in, the rest out.
get all.json /cameras
[[ $(json all.json 'j["total"]') == 9 ]] || fail "registry: expected 9 cameras"
RADIUS=$($PY - all.json "$LAT" "$LON" <<'PYEOF'
import json, math, sys
def hav(a, b, c, d):
    p = math.radians
    h = math.sin(p(c - a) / 2) ** 2 + math.cos(p(a)) * math.cos(p(c)) * math.sin(p(d - b) / 2) ** 2
    return 2 * 6371008.8 * math.asin(math.sqrt(h))
lat, lon = float(sys.argv[2]), float(sys.argv[3])
d = sorted(hav(lat, lon, c["latitude"], c["longitude"]) for c in json.load(open(sys.argv[1]))["cameras"])
print(round((d[2] + d[3]) / 2))
PYEOF
)
get near.json "/cameras?near=$LAT,$LON&radius=$RADIUS"
near_ids=$(json near.json '[c["id"] for c in j["cameras"]]')
[[ $(json near.json 'len(j["cameras"]) == 3 and 9 in [c["id"] for c in j["cameras"]]') == True ]] ||
	fail "near set $near_ids: expected three cameras with 9 among them"

now=$($PY -c 'import time; print(int(time.time() * 1000))')
FROM=$((now - 60000)) TO=$((now + 1000))
# The expected answer: the near set, in its order, keeping cameras with a range.
want=()
for id in $($PY -c "print(' '.join(map(str, $near_ids)))"); do
	get "ranges$id.json" "/cameras/$id/ranges?from=$FROM&to=$TO"
	[[ $(json "ranges$id.json" 'len(j["ranges"])') -gt 0 ]] && want+=("$id")
done
want_list="[$(IFS=,; echo "${want[*]}" | sed 's/,/, /g')]"
[[ ${#want[@]} == 2 && " ${want[*]} " != *" 9 "* ]] ||
	fail "expected cameras with footage: two, not 9 (got $want_list)"

get search.json "/search?near=$LAT,$LON&radius=$RADIUS&from=$FROM&to=$TO"
got=$(json search.json '[c["id"] for c in j["cameras"]]')
[[ $got == "$want_list" ]] || fail "search: got $got, expected $want_list"
[[ $(json search.json 'j["total"]') == 2 ]] || fail "search: total"
[[ $(json search.json "j['from_ms'] == $FROM and j['to_ms'] == $TO and j['from'].endswith('Z')") == True ]] ||
	fail "search: window not echoed"
$PY - search.json "$FROM" "$TO" "$RADIUS" <<'PYEOF' || fail "search: cameras malformed"
import json, sys
j = json.load(open(sys.argv[1]))
t0, t1, radius = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
d = [c["distance_m"] for c in j["cameras"]]
assert d == sorted(d) and all(0 <= x <= radius for x in d), d
for c in j["cameras"]:
    assert c["ranges"], c["id"]
    for r in c["ranges"]:
        assert t0 <= r["start_ms"] < r["end_ms"] <= t1, (c["id"], r)
    covered = sum(r["end_ms"] - r["start_ms"] for r in c["ranges"])
    assert c["covered_ms"] > 0 and abs(c["covered_ms"] - covered) <= len(c["ranges"]), (c["id"], covered)
    assert c["district"] and isinstance(c["tags"], list) and "latitude" in c and "longitude" in c
PYEOF
grep -qiE 'rtsp://|password|username' search.json && fail "search shows URLs or credentials"

# The same place as a bbox: the same cameras, in id order, without distance_m.
BBOX=$($PY -c "print('%f,%f,%f,%f' % ($LON - 0.01, $LAT - 0.01, $LON + 0.01, $LAT + 0.01))")
get bbox_all.json "/cameras?bbox=$BBOX"
get bbox.json "/search?bbox=$BBOX&from=$FROM&to=$TO"
want_bbox=$(json bbox_all.json '[c["id"] for c in j["cameras"] if c["id"] != 9]')
[[ $(json bbox.json '[c["id"] for c in j["cameras"]]') == "$want_bbox" ]] ||
	fail "bbox search: expected $want_bbox"
[[ $(json bbox.json 'all("distance_m" not in c for c in j["cameras"])') == True ]] ||
	fail "bbox search: distance_m present"

# Filters and paging on top of the place.
get tag.json "/search?near=$LAT,$LON&radius=$RADIUS&from=$FROM&to=$TO&tag=nosuchtag"
[[ $(json tag.json 'j["total"]') == 0 ]] || fail "tag filter ignored"
get page.json "/search?near=$LAT,$LON&radius=$RADIUS&from=$FROM&to=$TO&limit=1&offset=1"
[[ $(json page.json 'j["total"]') == 2 && $(json page.json '[c["id"] for c in j["cameras"]]') == "[${want[1]}]" ]] ||
	fail "limit/offset"

# An hour ago: nothing recorded.
get old.json "/search?near=$LAT,$LON&radius=$RADIUS&from=$((now - 3600000))&to=$((now - 3540000))"
[[ $(json old.json 'j["total"]') == 0 && $(json old.json 'len(j["cameras"])') == 0 ]] ||
	fail "a window an hour ago found footage"

# Errors name the parameter.
expect_param "/search?near=$LAT,$LON&radius=$RADIUS&to=$TO" 400 from "missing from not named"
expect_param "/search?from=$FROM&to=$TO" 400 near "no place not named near"
expect_param "/search?near=95,$LON&radius=100&from=$FROM&to=$TO" 400 near "bad near not named"
expect_param "/search?near=$LAT,$LON&radius=$RADIUS&from=$((now - 8 * 86400000))&to=$now" 400 to "window over 7 days not refused"
expect_param "/search?near=$LAT,$LON&radius=$RADIUS&from=$FROM&to=$TO&limit=1001" 400 limit "limit over 1000 not refused"

# Nothing else was lost: the daemon still answers and records.
get after.json "/search?near=$LAT,$LON&radius=$RADIUS&from=$FROM&to=$TO"
[[ $(json after.json '[c["id"] for c in j["cameras"]]') == "$want_list" ]] || fail "search after errors"
get health.json /health
[[ $(json health.json 'j["streaming"]') == 8 ]] || fail "cameras stopped streaming"

stop_nvrd
echo "ok: search near and in a bbox, filters, paging, empty window and 400 answers"
