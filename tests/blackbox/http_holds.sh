#!/usr/bin/env bash
# http_holds.sh - legal holds, purges on request and the retention forecast
# over the HTTP API, with the real nvrd recording two simulated cameras in
# two retention classes (a configuration file; camera 2 moved to class
# "key" with nvrctl while nvrd runs).
#
# A hold on camera 1 whose window starts before recording began answers
# its bytes and `gone`, the stretch before the first footage; it is
# listed and read back; a purge under it is refused (409 naming it) and
# /ranges shows the footage intact; once released the purge erases the
# window (/ranges shows the gap) and camera 2 is untouched. Roles (viewer
# and operator may not hold, only admins purge), bad requests that change
# nothing, the audit entries of each step, /retention against itself and
# against `nvrctl retention` after nvrd stopped, and the /metrics gauges
# (parsed with python3-prometheus-client).
set -euo pipefail
# shellcheck source=tests/blackbox/lib.bash
. "$(dirname "$0")/lib.bash"
cd "$TEST_DIR"

SIM_PORT=18960
HTTP_PORT=18961
command -v curl >/dev/null || { echo "skip: curl is not installed"; exit 77; }
/usr/bin/python3 -c 'import prometheus_client' 2>/dev/null ||
	{ echo "skip: python3-prometheus-client is not installed"; exit 77; }
# shellcheck source=tests/blackbox/http_lib.bash
. "$BLACKBOX_DIR/http_lib.bash"

cp "$BLACKBOX_DIR/../config/good/retention_classes.conf" classes.conf

for r in viewer investigator operator; do
	mkdir -p data
	printf '%s\n' "pw-of-$r-123" |
		expect_exit 0 "add-$r.out" "$BIN/nvrctl" users add "u_$r" --role "$r" --data data
done
make_api_user
"$BIN/nvrd" --config classes.conf --data data --simulate 2 --sim-port "$SIM_PORT" \
	--http-port "$HTTP_PORT" --volume-size 256M 2>nvrd.log &
pid=$!
trap 'kill -KILL $pid 2>/dev/null || true' EXIT
for ((i = 0; i < 100; i++)); do
	curl -s "${CURL_AUTH[@]}" -o health.json "$API/health" 2>/dev/null &&
		[[ $(json health.json 'j["streaming"]') == 2 ]] && break
	kill -0 $pid 2>/dev/null || { cat nvrd.log >&2; fail "nvrd exited"; }
	sleep 0.2
done
[[ $(json health.json 'j["streaming"]') == 2 ]] || { cat nvrd.log >&2; fail "cameras not streaming"; }
expect_grep 'event=retention_loaded' nvrd.log "the engine did not load the classes"

# Camera 2 into class "key", through the registry (nvrd follows it).
expect_exit 0 export.out "$BIN/nvrctl" cameras export --format csv --data data cams.csv
$PY - <<'EOF'
import csv
rows = list(csv.DictReader(open("cams.csv")))
row = next(r for r in rows if r["id"] == "2")
row["retention_class"] = "key"
w = csv.DictWriter(open("cam2.csv", "w", newline=""), fieldnames=list(row))
w.writeheader()
w.writerow(row)
EOF
expect_exit 0 import.out "$BIN/nvrctl" cameras import cam2.csv --data data
for ((i = 0; i < 50; i++)); do
	get ret.json "/retention"
	[[ $(json ret.json '[c["class"] for c in j["cameras"] if c["id"] == 2]') == "['key']" ]] && break
	sleep 0.2
done
[[ $(json ret.json '[c["class"] for c in j["cameras"] if c["id"] == 2]') == "['key']" ]] ||
	fail "camera 2 did not move to class key"
sleep 10

# as ROLE METHOD PATH [BODY]: the HTTP status as u_ROLE (admin: the test's
# own admin), the answer in last.json.
as() {
	local role=$1 method=$2 path=$3 body=${4:-} auth
	if [[ $role == admin ]]; then auth=("${CURL_AUTH[@]}"); else auth=(-u "u_$role:pw-of-$role-123"); fi
	curl -s -o last.json -w '%{http_code}' "${auth[@]}" -X "$method" \
		${body:+-H 'Content-Type: application/json' -d "$body"} "$API$path"
}
# expect STATUS ROLE METHOD PATH [BODY]
expect() {
	local want=$1 got
	shift
	got=$(as "$@")
	[[ $got == "$want" ]] || { cat last.json >&2; echo >&2; fail "$2 $3 as $1: $got, expected $want"; }
}

# Ranges are compared over a window that ended 6 s ago: footage is indexed
# within a chunk (4 s) and a flush (1 s), so that window no longer grows.
now=$(date +%s%3N)
WIN="from=$((now - 120000))&to=$((now - 6000))"
get r1.json "/cameras/1/ranges?$WIN"
get r2.json "/cameras/2/ranges?$WIN"
rec1=$(json r1.json 'j["ranges"][0]["start_ms"]')
mid=$(((rec1 + now - 6000) / 2))
from=$((rec1 - 30000))

# ---- a hold whose window starts 30 s before the first footage ----------------
HOLD='{"cameras":[1],"from":'$from',"to":'$now',"case":"CASE-42","reason":"hit and run"}'
expect 403 viewer POST /holds "$HOLD"
expect 403 operator POST /holds "$HOLD"
get holds0.json /holds
[[ $(json holds0.json 'j["total"]') == 0 ]] || fail "a refused create made a hold"
# bad requests change nothing either
expect 400 investigator POST /holds '{"cameras":[1],"from":'$from',"to":'$now'}'
[[ $(json last.json 'j["error"]["parameter"]') == case ]] || fail "missing case not named"
expect 400 investigator POST /holds '{"cameras":[],"from":'$from',"to":'$now',"case":"X"}'
[[ $(json last.json 'j["error"]["parameter"]') == cameras ]] || fail "empty cameras not named"
expect 400 investigator POST /holds '{"cameras":[1],"from":'$now',"to":'$from',"case":"X"}'
[[ $(json last.json 'j["error"]["parameter"]') == to ]] || fail "to before from not named"
expect 400 investigator POST /holds '{"cameras":[1],"from":"yesterday","to":'$now',"case":"X"}'
[[ $(json last.json 'j["error"]["parameter"]') == from ]] || fail "bad from not named"
expect 400 investigator POST /holds '{"cameras":[1],"from":'$from',"to":'$now',"case":"X","expires":'$from'}'
[[ $(json last.json 'j["error"]["parameter"]') == expires ]] || fail "past expiry not named"
expect 404 investigator POST /holds '{"cameras":[1,99],"from":'$from',"to":'$now',"case":"X"}'
[[ $(json last.json 'j["error"]["parameter"]') == cameras ]] || fail "unknown camera not named"
get holds0.json /holds
[[ $(json holds0.json 'j["total"]') == 0 ]] || fail "a bad request made a hold"

expect 201 investigator POST /holds "$HOLD"
cp last.json hold.json
hid=$(json hold.json 'j["id"]')
$PY - "$from" "$now" "$rec1" <<'EOF' || fail "the hold's answer is wrong: $(cat hold.json)"
import json, sys
frm, to, rec = map(int, sys.argv[1:])
h = json.load(open("hold.json"))
assert h["cameras"] == [1] and h["case"] == "CASE-42" and h["reason"] == "hit and run", h
assert h["from_ms"] == frm and h["to_ms"] == to and h["expires"] is None, h
assert h["bytes"] > 0, h
assert h["audit_id"] > 0, h
# Nothing was recorded before rec: that stretch is gone, exactly.
g = h["gone"]
assert h["gone_count"] == len(g) >= 1, h
assert g[0]["camera"] == 1 and g[0]["start_ms"] == frm, g
assert abs(g[0]["end_ms"] - rec) <= 1, (g[0], rec)
assert all(x["start_ms"] >= rec for x in g[1:]), g
EOF
echo "hold $hid: $(json hold.json 'j["bytes"]') bytes, gone $(json hold.json 'j["gone"][0]')"

expect 403 viewer GET /holds
expect 200 operator GET /holds
cp last.json holds.json
$PY - "$hid" <<'EOF' || fail "GET /holds: $(cat holds.json)"
import json, sys
hid = int(sys.argv[1])
l = json.load(open("holds.json"))
h = json.load(open("hold.json"))
assert l["total"] == 1 and [x["id"] for x in l["holds"]] == [hid], l
x = l["holds"][0]
for k in ("case", "reason", "cameras", "from_ms", "to_ms", "created_ms"):
    assert x[k] == h[k], k
assert x["bytes"] >= h["bytes"] > 0, (x, h)
assert l["held_bytes"] == x["bytes"] and l["capacity_bytes"] > l["held_bytes"], l
assert abs(l["held_share"] - l["held_bytes"] / l["capacity_bytes"]) < 1e-6, l
EOF
expect 200 investigator GET "/holds/$hid"
[[ $(json last.json 'j["id"], j["case"]') == "($hid, 'CASE-42')" ]] || fail "GET /holds/$hid"
expect 404 operator GET /holds/999
expect 400 operator GET /holds/abc

# ---- a purge under the hold is refused and erases nothing ------------------------
PURGE='{"from":'$rec1',"to":'$mid',"reason":"privacy request PR-7"}'
expect 403 investigator POST /cameras/1/purge "$PURGE"
expect 403 operator POST /cameras/1/purge "$PURGE"
expect 400 admin POST /cameras/1/purge '{"from":'$rec1',"to":'$mid'}'
[[ $(json last.json 'j["error"]["parameter"]') == reason ]] || fail "missing reason not named"
expect 404 admin POST /cameras/99/purge "$PURGE"
expect 409 admin POST /cameras/1/purge "$PURGE"
[[ $(json last.json '[h["id"] for h in j["error"]["holds"]]') == "[$hid]" ]] ||
	fail "the 409 does not name hold $hid: $(cat last.json)"
get r1b.json "/cameras/1/ranges?$WIN"
get r2b.json "/cameras/2/ranges?$WIN"
cmp -s r1.json r1b.json || fail "a refused purge changed camera 1's ranges"
cmp -s r2.json r2b.json || fail "a refused purge changed camera 2's ranges"

# ---- metrics while held ---------------------------------------------------------
curl -s "${CURL_AUTH[@]}" -o metrics.txt "http://127.0.0.1:$HTTP_PORT/metrics" || fail "GET /metrics"
get retention.json /retention
$PY - metrics.txt <<'EOF' || fail "/metrics retention gauges"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
fams = {f.name: f for f in text_string_to_metric_families(open(sys.argv[1]).read())}
def by_class(name):
    return {s.labels["class"]: s.value for s in fams[name].samples}
r = json.load(open("retention.json"))
assert by_class("nvr_retention_class_promised_days") == {"default": 0.0, "key": 90.0}
assert by_class("nvr_retention_class_max_days") == {"default": 30.0, "key": 365.0}
assert by_class("nvr_retention_class_alarm") == {"default": 0.0, "key": 0.0}
kept = by_class("nvr_retention_class_retained_days")
assert set(kept) == {"default", "key"} and all(0 < v < 1 for v in kept.values()), kept
assert set(by_class("nvr_retention_class_forecast_days")) <= {"default", "key"}
assert fams["nvr_holds"].samples[0].value == 1
assert fams["nvr_held_bytes"].samples[0].value == r["held_bytes"] > 0
assert fams["nvr_retention_capacity_bytes"].samples[0].value == r["capacity_bytes"]
assert fams["nvr_retention_alarms"].samples[0].value == 0
cams = {s.labels["camera"]: s.value for s in fams["nvr_camera_retained_days"].samples}
assert set(cams) == {"1", "2"} and all(0 < v < 1 for v in cams.values()), cams
EOF

# ---- release, then the purge erases the window ----------------------------------
expect 403 operator DELETE "/holds/$hid"
expect 403 viewer DELETE "/holds/$hid"
expect 200 investigator DELETE "/holds/$hid"
[[ $(json last.json 'j["status"]') == released ]] || fail "release answer"
expect 404 investigator DELETE "/holds/$hid"
expect 200 admin POST /cameras/1/purge "$PURGE"
cp last.json purge.json
$PY - "$rec1" "$mid" <<'EOF' || fail "purge answer: $(cat purge.json)"
import json, sys
t0, t1 = map(int, sys.argv[1:])
p = json.load(open("purge.json"))
assert p["camera"] == 1 and p["from_ms"] == t0 and p["to_ms"] == t1, p
assert p["chunks"] > 0 and p["frames"] > 0 and p["bytes"] > 0, p
e = p["erased"]
assert e["start_ms"] <= t0 + 1 and e["end_ms"] >= t1 - 1, e   # whole chunks
assert p["audit_id"] > 0, p
EOF
erased_end=$(json purge.json 'j["erased"]["end_ms"]')
get r1c.json "/cameras/1/ranges?$WIN"
get r2c.json "/cameras/2/ranges?$WIN"
$PY - "$rec1" "$mid" "$erased_end" <<'EOF' || fail "camera 1 after the purge: $(cat r1c.json)"
import json, sys
t0, t1, end = map(int, sys.argv[1:])
r = json.load(open("r1c.json"))["ranges"]
# nothing of [t0, t1) is left, and the footage after the erased chunks is
assert all(x["end_ms"] <= t0 or x["start_ms"] >= t1 for x in r), r
assert r and r[0]["start_ms"] >= end - 1, (r, end)
EOF
cmp -s r2.json r2c.json || fail "the purge of camera 1 changed camera 2's ranges"
echo "purged camera 1: $(json purge.json 'j["chunks"]') chunks, camera 2 untouched"

# ---- the audit trail --------------------------------------------------------------
expect 200 operator GET "/audit?limit=1000"
cp last.json audit.json
$PY - "$hid" <<'EOF' || fail "audit entries: $(cat audit.json)"
import json, sys
hid = int(sys.argv[1])
e = json.load(open("audit.json"))["entries"]
hold = json.load(open("hold.json"))
purge = json.load(open("purge.json"))
def one(action, **want):
    m = [x for x in e if x["action"] == action and all(x["detail"].get(k) == v for k, v in want.items())]
    assert len(m) == 1, (action, want, [x for x in e if x["action"] == action])
    return m[0]
h = one("hold", hold_id=hid)
assert h["user"] == "u_investigator" and h["id"] == hold["audit_id"], h
assert h["detail"]["case"] == "CASE-42" and h["detail"]["cameras"] == [1], h
assert h["detail"]["from_ms"] == hold["from_ms"] and h["detail"]["to_ms"] == hold["to_ms"], h
r = one("hold_release", hold_id=hid)
assert r["user"] == "u_investigator" and r["detail"]["case"] == "CASE-42", r
ref = one("purge", result="refused")
assert ref["detail"]["holds"] == [hid] and ref["detail"]["camera"] == 1, ref
assert ref["detail"]["reason"] == "privacy request PR-7", ref
done = one("purge", result="done")
assert done["id"] == purge["audit_id"] and done["detail"]["chunks"] == purge["chunks"], done
assert done["detail"]["bytes"] == purge["bytes"] and done["user"] == ref["user"] == "tester", done
assert ref["id"] < r["id"] < done["id"], (ref, r, done)
# refused requests (roles, bad bodies) left no entry
assert len([x for x in e if x["action"] in ("hold", "hold_release", "purge")]) == 4
EOF

# ---- /retention ---------------------------------------------------------------------
expect 403 viewer GET /retention
expect 200 investigator GET /retention
get ret.json /retention
$PY <<'EOF' || fail "/retention: $(cat ret.json)"
import json
r = json.load(open("ret.json"))
cls = {c["name"]: c for c in r["classes"]}
assert set(cls) == {"default", "key"}, cls
k, d = cls["key"], cls["default"]
assert (k["promised_days"], k["max_days"], k["share_pct"]) == (90, 365, 50), k
assert (d["promised_days"], d["max_days"]) == (0, 30), d
assert not k["alarm"] and k["alarm_since"] is None and not d["alarm"], cls
# a share is counted from the first retention sweep on; then the class is within it
assert k["share"] is None or 0 <= k["share"]["bytes"] <= k["share"]["limit_bytes"], k
assert d["share"] is None, d
cams = {c["id"]: c for c in r["cameras"]}
assert r["total"] == len(cams) == 2 and r["offset"] == 0 and r["limit"] == 100, r
assert cams[1]["class"] == "default" and cams[2]["class"] == "key", cams
for c in cams.values():
    cl = cls[c["class"]]
    # a class's oldest footage is its cameras' oldest
    assert cl["retained_days"] >= c["retained_days"] - 1e-4, (cl, c)
    assert c["forecast_days"] == cl["forecast_days"], (cl, c)
    assert 0 < c["retained_days"] < 1 and c["bytes"] is None, c
for n, cl in cls.items():
    assert cl["cameras"] == sum(1 for c in cams.values() if c["class"] == n), cl
assert r["holds"] == 0 and r["held_bytes"] == 0 and r["alarms"] == 0, r
assert r["purged_chunks"] >= json.load(open("purge.json"))["chunks"], r
assert r["capacity_bytes"] > 0, r
EOF
get retk.json "/retention?class=key&bytes=1"
[[ $(json retk.json '[c["name"] for c in j["classes"]], [c["id"] for c in j["cameras"]], j["total"]') == \
	"(['key'], [2], 1)" ]] || fail "class=key: $(cat retk.json)"
[[ $(json retk.json 'j["cameras"][0]["bytes"] > 0') == True ]] || fail "bytes=1 counted nothing"
get retp.json "/retention?limit=1&offset=1"
[[ $(json retp.json '[c["id"] for c in j["cameras"]], j["total"]') == "([2], 2)" ]] || fail "paging"
get err.json "/retention?class=nope" 404
[[ $(json err.json 'j["error"]["parameter"]') == class ]] || fail "unknown class not named"
get err.json "/retention?bytes=1&limit=500" 400
[[ $(json err.json 'j["error"]["parameter"]') == limit ]] || fail "bytes=1 with a big limit"

# ---- nvrctl retention on the stopped appliance says the same ---------------------
stop_nvrd
expect_exit 0 table "$BIN/nvrctl" retention --data data
$PY - table <<'EOF' || fail "nvrctl retention disagrees with /retention: $(cat table)"
import json, sys
r = json.load(open("ret.json"))
lines = open(sys.argv[1]).read().split("\n")
cls_rows = {}
cam_rows = {}
section = None
for l in lines:
    f = l.split("\t")
    if f[0] == "class": section = "class"; continue
    if f[0] == "camera": section = "camera"; continue
    if section == "class" and len(f) == 8: cls_rows[f[0]] = f
    if section == "camera" and len(f) == 5: cam_rows[int(f[0])] = f
for c in r["classes"]:
    row = cls_rows[c["name"]]
    assert float(row[1]) == c["promised_days"] and float(row[2]) == c["max_days"], (row, c)
    assert int(row[3]) == c["cameras"], (row, c)
    # nvrd stopped after the API answered: a little more time has passed
    assert c["retained_days"] - 0.01 <= float(row[4]) <= c["retained_days"] + 0.01, (row, c)
    assert (row[7] == "ok") == (not c["alarm"]), (row, c)
for c in r["cameras"]:
    assert cam_rows[c["id"]][1] == c["class"], (cam_rows, c)
EOF
echo "ok: hold $hid (gone before the first footage), purge refused under it then done, roles, audit, /retention, /metrics, nvrctl retention"
