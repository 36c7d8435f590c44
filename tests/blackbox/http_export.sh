#!/usr/bin/env bash
# http_export.sh - evidence exports through nvrd's HTTP API while it records
# two simulated cameras (1: H.264, 2: H.265, 640x360 at 25 fps), as an
# investigator.
#
# An export of both cameras' recorded range is created (202), polled to
# done, and each camera's MP4 downloaded: its sha256sum equals the
# manifest's, ffprobe reads it with the right codec and size, and its frame
# count and duration are those of /ranges within one GOP (2 s, 50 frames);
# the manifest names the cameras, the case, the investigator and the audit
# entry, which the audit trail holds. A viewer is refused (403); bad bodies
# answer 400 naming the field, an unknown camera 404 naming it. A queued
# export is cancelled and leaves no file. Then nvrd restarts with a quota
# that the first export nearly fills: that export is still done and
# downloads with the same hash, a second one is refused (507) before it
# starts and creates nothing; deleting the first frees its quota and the
# same request is accepted. Each nvrd must exit 0 on SIGTERM.
set -euo pipefail
# shellcheck source=tests/blackbox/lib.bash
. "$(dirname "$0")/lib.bash"
cd "$TEST_DIR"

SIM_PORT=18671
HTTP_PORT=18672
need_tools curl ffprobe sha256sum
# shellcheck source=tests/blackbox/http_lib.bash
. "$BLACKBOX_DIR/http_lib.bash"

# call METHOD PATH OUT STATUS [BODY [USER:PASSWORD]]: one request as the
# investigator (or USER), fails unless the HTTP status is STATUS.
call() {
	local method=$1 path=$2 out=$3 want=$4 body=${5:-} cred=${6:-$INV} code
	local args=(-s -X "$method" -u "$cred" -D "$out.headers" -o "$out" -w '%{http_code}')
	[[ -n $body ]] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
	code=$(curl "${args[@]}" "$API$path") || fail "curl $method $path failed"
	[[ $code == "$want" ]] || { head -c 400 "$out" >&2; fail "$method $path: status $code, expected $want"; }
}

# refused BODY STATUS PARAM WHAT: POST /exports answers STATUS naming PARAM.
refused() {
	call POST /exports err.json "$2" "$1"
	[[ $(json err.json 'j["error"].get("parameter")') == "$3" ]] ||
		{ cat err.json >&2; fail "$4: parameter $3 not named"; }
}

# wait_status ID STATUS: polls the export until it reads STATUS (30 s).
wait_status() {
	local i s
	for ((i = 0; i < 300; i++)); do
		call GET "/exports/$1" st.json 200
		s=$(json st.json 'j["status"]')
		[[ $s == "$2" ]] && return 0
		[[ $s == queued || $s == running ]] || { cat st.json >&2; fail "export $1 is $s, not $2"; }
		sleep 0.1
	done
	fail "export $1 did not become $2"
}

# start_nvrd EXTRA...: nvrd on ./data with two simulated cameras and the API.
start_nvrd() {
	"$BIN/nvrd" --data data --simulate 2 --sim-port "$SIM_PORT" --http-port "$HTTP_PORT" \
		--volume-size 256M "$@" 2>>nvrd.log &
	pid=$!
	trap 'kill -KILL $pid 2>/dev/null || true' EXIT
	local i
	for ((i = 0; i < 100; i++)); do
		if curl -s -u "$ADMIN" -o health.json "$API/health" 2>/dev/null &&
		   [[ $(json health.json 'j.get("streaming")') == 2 ]]; then
			return 0
		fi
		kill -0 $pid 2>/dev/null || { cat nvrd.log >&2; fail "nvrd exited"; }
		sleep 0.2
	done
	cat nvrd.log >&2
	fail "the cameras are not streaming"
}

# users made with nvrctl before nvrd starts: an admin (http_lib.bash), an
# investigator who exports and a viewer who may not
make_api_user
ADMIN="$API_USER:$API_PASS"
INV="ivan:investigator-pw-1"
printf 'investigator-pw-1\n' |
	expect_exit 0 ivan.out "$BIN/nvrctl" users add ivan --role investigator --data data
printf 'viewer-pw-12\n' | expect_exit 0 vera.out "$BIN/nvrctl" users add vera --role viewer --data data
start_nvrd
sleep 8

# ---- an export of both cameras' recorded range ---------------------------
now=$(date +%s%3N)
call GET "/cameras/1/ranges?from=$((now - 60000))&to=$((now + 1000))" r1.json 200
call GET "/cameras/2/ranges?from=$((now - 60000))&to=$((now + 1000))" r2.json 200
# from 1.5 s into camera 1's footage (an export starts at the key frame
# before), to the end of what both have recorded
from=$(($(json r1.json 'j["ranges"][0]["start_ms"]') + 1500))
to=$(json r1.json 'j["ranges"][-1]["end_ms"]')
to2=$(json r2.json 'j["ranges"][-1]["end_ms"]')
((to2 < to)) && to=$to2
((to - from >= 4000)) || fail "only $((to - from)) ms recorded"
body="{\"cameras\":[1,2],\"from\":$from,\"to\":$to,\"case\":\"CASE-2026-001\",\"reason\":\"hit and run\"}"
call POST /exports new.json 202 "$body"
[[ $(json new.json 'j["status"]') == queued ]] || fail "a new export is not queued"
id=$(json new.json 'j["id"]')
wait_status "$id" done
cp st.json done.json
[[ $(json done.json 'j["progress"]') == 1.0 ]] || fail "done export: progress is not 1"
(($(json done.json 'j["bytes"]') > 0)) || fail "done export: no bytes"
[[ $(json done.json 'j["elapsed_ms"] >= 0') == True ]] || fail "done export: no elapsed_ms"
echo "export $id: $(json done.json 'j["frames"]') frames, $(json done.json 'j["bytes"]') bytes" \
	"in $(json done.json 'j["elapsed_ms"]') ms"

call GET "/exports/$id/manifest" manifest.json 200
[[ $(json manifest.json 'j["case"]') == CASE-2026-001 ]] || fail "manifest: case"
[[ $(json manifest.json 'j["created_by"]') == ivan ]] || fail "manifest: created_by is not ivan"
[[ $(json manifest.json 'j["requested"]["start_ms"], j["requested"]["end_ms"]') == "($from, $to)" ]] ||
	fail "manifest: requested range"
audit_id=$(json manifest.json 'j["audit_id"]')
[[ $audit_id == "$(json new.json 'j["audit_id"]')" ]] || fail "manifest: audit_id differs from the answer's"
call GET "/audit?limit=1000" audit.json 200 "" "$ADMIN"
[[ $(json audit.json "[(e['action'], e['user'], e['detail']['export_id'], e['detail']['case']) for e in j['entries'] if e['id'] == $audit_id]") == \
	"[('export', 'ivan', $id, 'CASE-2026-001')]" ]] || { cat audit.json >&2; fail "audit entry $audit_id"; }

# check CAM CODEC: downloads the camera's file and checks it against the
# manifest, ffprobe and /ranges.
check() {
	local cam=$1 codec=$2 i=$(($1 - 1)) len sum frames want dur actual
	[[ $(json manifest.json "j['cameras'][$i]['id'], j['cameras'][$i]['name'] != '', j['cameras'][$i]['file']") == \
		"($cam, True, 'camera-$cam.mp4')" ]] || fail "manifest: camera $cam entry"
	[[ $(json manifest.json "type(j['cameras'][$i]['latitude']).__name__") == float ]] ||
		fail "manifest: camera $cam latitude"
	call GET "/exports/$id/download?camera=$cam" "cam$cam.mp4" 200
	grep -qi "^content-disposition: attachment; filename=\"export-$id-camera-$cam.mp4\"" \
		"cam$cam.mp4.headers" || fail "camera $cam: content disposition"
	grep -qi '^content-type: video/mp4' "cam$cam.mp4.headers" || fail "camera $cam: content type"
	len=$(sed -n 's/^[Cc]ontent-[Ll]ength: \([0-9]*\).*/\1/p' "cam$cam.mp4.headers")
	[[ $len == "$(stat -c %s "cam$cam.mp4")" ]] || fail "camera $cam: Content-Length $len"
	[[ $len == "$(json manifest.json "j['cameras'][$i]['bytes']")" ]] || fail "camera $cam: bytes"
	sum=$(sha256sum "cam$cam.mp4" | cut -d' ' -f1)
	[[ $sum == "$(json manifest.json "j['cameras'][$i]['sha256']")" ]] ||
		fail "camera $cam: sha256sum $sum is not the manifest's"
	ffprobe -v error -count_frames -select_streams v:0 -of json \
		-show_entries stream=codec_name,width,height,nb_read_frames:format=duration \
		"cam$cam.mp4" >"probe$cam.json" || fail "camera $cam: ffprobe failed"
	[[ $(json "probe$cam.json" 'j["streams"][0]["codec_name"], j["streams"][0]["width"], j["streams"][0]["height"]') == \
		"('$codec', 640, 360)" ]] || { cat "probe$cam.json" >&2; fail "camera $cam: codec or size"; }
	frames=$(json "probe$cam.json" 'j["streams"][0]["nb_read_frames"]')
	[[ $frames == "$(json manifest.json "j['cameras'][$i]['frames']")" ]] ||
		fail "camera $cam: ffprobe counts $frames frames, the manifest another number"
	# against the index: the window's footage from /ranges, within one GOP
	call GET "/cameras/$cam/ranges?from=$from&to=$to" "w$cam.json" 200
	want=$(json "w$cam.json" 'sum(r["end_ms"] - r["start_ms"] for r in j["ranges"]) * 25 // 1000')
	((frames >= want - 50 && frames <= want + 50)) ||
		fail "camera $cam: $frames frames, /ranges says $want (one GOP is 50)"
	dur=$(json "probe$cam.json" 'int(float(j["format"]["duration"]) * 1000)')
	actual=$(json manifest.json "j['cameras'][$i]['actual']['end_ms'] - j['cameras'][$i]['actual']['start_ms']")
	((dur >= actual - 2000 && dur <= actual + 2000)) ||
		fail "camera $cam: duration $dur ms, manifest's actual range $actual ms"
	want=$(json "w$cam.json" 'sum(r["end_ms"] - r["start_ms"] for r in j["ranges"])')
	((dur >= want - 2000 && dur <= want + 2000)) ||
		fail "camera $cam: duration $dur ms, /ranges $want ms"
	echo "camera $cam: $codec, $frames frames, $dur ms, sha256 $sum"
}
check 1 h264
check 2 hevc

# ---- who may, and bad input --------------------------------------------------
call POST /exports forbidden.json 403 "$body" "vera:viewer-pw-12"
call GET /exports forbidden.json 403 "" "vera:viewer-pw-12"
refused "{\"cameras\":[],\"from\":$from,\"to\":$to,\"case\":\"C\"}" 400 cameras "no cameras"
refused "{\"cameras\":[1,1],\"from\":$from,\"to\":$to,\"case\":\"C\"}" 400 cameras "a camera twice"
refused "{\"cameras\":[$(seq -s, 1 17)],\"from\":$from,\"to\":$to,\"case\":\"C\"}" 400 cameras "17 cameras"
refused "{\"cameras\":[1],\"from\":$to,\"to\":$from,\"case\":\"C\"}" 400 to "from after to"
refused "{\"cameras\":[1],\"from\":$from,\"to\":$from,\"case\":\"C\"}" 400 to "from equal to to"
refused "{\"cameras\":[1],\"from\":$((to - 90000000)),\"to\":$to,\"case\":\"C\"}" 400 to "a 25 h window"
refused "{\"cameras\":[1],\"from\":\"yesterday\",\"to\":$to,\"case\":\"C\"}" 400 from "a bad from"
refused "{\"cameras\":[1],\"from\":$from,\"to\":$to}" 400 case "no case"
refused "{\"cameras\":[1],\"from\":$from,\"to\":$to,\"case\":\"$(printf 'x%.0s' {1..128})\"}" 400 case \
	"a 128-byte case"
refused "not json" 400 body "a body that is not JSON"
refused "{\"cameras\":[1,999],\"from\":$from,\"to\":$to,\"case\":\"C\"}" 404 cameras "camera 999"
grep -q 'camera 999' err.json || fail "the unknown camera is not named"
call GET /exports/99999 err.json 404
call GET "/exports/$id/download?camera=7" err.json 404
call GET "/exports/$id/download" err.json 400
[[ $(json err.json 'j["error"]["parameter"]') == camera ]] || fail "download without camera: not named"
call GET /exports list.json 200
[[ $(json list.json 'len(j["exports"])') == 1 ]] || fail "refused requests created exports"

# ---- cancel: two exports queue behind a third; the last one is cancelled ----
# One connection, one request after the other (each export takes ~100 ms):
# the third is still queued when its DELETE arrives.
cid=$(($(json list.json 'max(e["id"] for e in j["exports"])') + 3))
jh=(-s -w '%{http_code}\n' -u "$INV" -H 'Content-Type: application/json' -X POST
    --data-binary "$body")
curl "${jh[@]}" -o a.json "$API/exports" --next "${jh[@]}" -o b.json "$API/exports" \
	--next "${jh[@]}" -o c.json "$API/exports" --next -s -w '%{http_code}\n' -u "$INV" \
	-X DELETE -o del.json "$API/exports/$cid" >codes.txt || fail "curl: queue and cancel"
[[ $(tr '\n' ' ' <codes.txt) == "202 202 202 200 " ]] || { cat codes.txt >&2; fail "queue and cancel: statuses"; }
[[ $(json c.json 'j["id"]') == "$cid" ]] || fail "the third export is not $cid"
[[ $(json del.json 'j["was"], j["status"]') == "('queued', 'cancelled')" ]] ||
	{ cat del.json >&2; fail "cancel of a queued export"; }
wait_status "$(json b.json 'j["id"]')" done
call GET "/exports/$cid" st.json 200
[[ $(json st.json 'j["status"]') == cancelled ]] || fail "the cancelled export reads $(json st.json 'j["status"]')"
[[ ! -e data/exports/$cid ]] || fail "the cancelled export left files"
for x in a b; do
	xid=$(json $x.json 'j["id"]')
	call DELETE "/exports/$xid" del.json 200
	[[ $(json del.json 'j["status"]') == deleted ]] || fail "delete of done export $xid"
	[[ ! -e data/exports/$xid ]] || fail "deleted export $xid left files"
done
call GET "/exports/$id" st.json 200
[[ $(json st.json 'j["status"]') == done ]] || fail "the first export changed"
stop_nvrd

# ---- quota: nvrd again, the first export nearly fills it ----------------------
used=$(find data/exports/"$id" -type f -printf '%s\n' | awk '{s += $1} END {print s}')
est=$(json done.json 'j["estimated_bytes"]')
quota=$((est + used / 2))
start_nvrd --exports-quota "$quota"
call GET "/exports/$id" st.json 200
[[ $(json st.json 'j["status"]') == done ]] || fail "after a restart the export is not done"
call GET /exports list.json 200
[[ $(json list.json 'j["used"], j["quota"]') == "($used, $quota)" ]] ||
	{ cat list.json >&2; fail "used/quota after restart"; }
before=$(ls data/exports)
call POST /exports full.json 507 "$body"
grep -q 'quota_bytes' full.json || fail "507 answer without the figures"
[[ $(ls data/exports) == "$before" ]] || fail "a refused export created files"
call GET "/exports/$id/download?camera=1" again.mp4 200
[[ $(sha256sum again.mp4 | cut -d' ' -f1) == "$(json manifest.json 'j["cameras"][0]["sha256"]')" ]] ||
	fail "the first export's file changed"
call DELETE "/exports/$id" del.json 200
call GET /exports list.json 200
[[ $(json list.json 'j["used"]') == 0 ]] || fail "deleting the export did not free its quota"
call POST /exports fits.json 202 "$body"
wait_status "$(json fits.json 'j["id"]')" done
kill -0 $pid 2>/dev/null || fail "nvrd exited"
stop_nvrd
echo "ok"
