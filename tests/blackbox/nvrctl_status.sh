#!/usr/bin/env bash
# nvrctl_status.sh - `nvrctl status` against a running nvrd: three
# cameras of nvr-camsim, camera 3 dropped one second after each PLAY.
# Once camera 3 is a repeat failure (3 failures), the table must show the
# health verdict and its reason, camera 3 first and marked REPEAT FAILURE
# with the count the API gives, the healthy cameras only with --all, both
# volumes with the state and byte counts of /health; credentials from
# files are accepted (authentication may be off: then they are ignored)
# and never printed; a wrong URL or a missing password file fails with 1
# or 2 and a message, never a table.
set -euo pipefail
# shellcheck source=tests/blackbox/lib.bash
. "$(dirname "$0")/lib.bash"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$TEST_DIR"
SIM_PORT=18791
HTTP_PORT=18792
command -v curl >/dev/null || { echo "skip: curl is not installed"; exit 77; }
command -v ffmpeg >/dev/null || { echo "skip: ffmpeg missing"; exit 77; }
# shellcheck source=tests/blackbox/http_lib.bash
. "$BLACKBOX_DIR/http_lib.bash"
URL=http://127.0.0.1:$HTTP_PORT

fixdir=$BIN/../fixtures
mkdir -p "$fixdir" 2>/dev/null && [[ -w $fixdir ]] || fixdir=$TEST_DIR/fixtures
mapfile -t fx < <("$ROOT/scripts/make-fixtures.sh" "$fixdir" 4 400 25 320x240)
"$BIN/nvr-camsim" --cameras 3 --fixture "${fx[0]}" --listen "127.0.0.1:$SIM_PORT" \
	--fault drop:1@3 >camsim.out 2>camsim.log &
sim=$!
trap 'kill $sim 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q '^ready' camsim.out && break; sleep 0.1; done
grep -q '^ready' camsim.out || fail "nvr-camsim did not start: $(cat camsim.log)"
{
	echo "id,name,main_url,enabled"
	for k in 1 2 3; do echo "$k,Gate $k,rtsp://127.0.0.1:$SIM_PORT/cam/$k,true"; done
} >cams.csv
expect_exit 0 import.log "$BIN/nvrctl" cameras import cams.csv --data data
make_api_user
printf '%s\n' "$API_PASS" >api_pw.txt
LOGIN=(--user "$API_USER" --password-file api_pw.txt)
"$BIN/nvrd" --data data --simulate 0 --http-port "$HTTP_PORT" --volume-size 128M 2>nvrd.log &
pid=$!
trap 'kill $sim 2>/dev/null || true; kill -KILL $pid 2>/dev/null || true' EXIT

for _ in $(seq 200); do
	if curl -s "${CURL_AUTH[@]}" -o rf.json "$API/repeat-failures" 2>/dev/null && [[ -s rf.json ]] &&
	   [[ $(json rf.json 'j["total"]') == 1 ]]; then
		break
	fi
	kill -0 $pid 2>/dev/null || { cat nvrd.log >&2; fail "nvrd exited"; }
	sleep 0.2
done
[[ $(json rf.json 'j["total"]') == 1 ]] || fail "camera 3 never became a repeat failure"

# Health and camera 3 just before and after the table bound what it shows.
get c3a.json /cameras/3
expect_exit 0 status.txt "$BIN/nvrctl" status --url "$URL" "${LOGIN[@]}"
get c3b.json /cameras/3
get health.json /health
cat status.txt
expect_grep "^nvrd at $URL: degraded$" status.txt "no degraded verdict"
expect_grep '^  repeat_failures +1 cameras failed 3 or more times' status.txt "no repeat_failures reason"
first=$(awk '/^ +ID +NAME/ { getline; print; exit }' status.txt)
read -r id name1 name2 state _ _ _ _ fails mark1 mark2 <<<"$first"
[[ $id == 3 && "$name1 $name2" == "Gate 3" && "$mark1 $mark2" == "REPEAT FAILURE" ]] ||
	fail "camera 3 is not first and marked: '$first'"
lo=$(json c3a.json 'j["live"]["failures_24h"]') hi=$(json c3b.json 'j["live"]["failures_24h"]')
[[ $fails -ge 3 && $fails -ge $lo && $fails -le $hi ]] ||
	fail "camera 3's failures: table $fails, API $lo..$hi"
[[ $state == streaming || $state == backoff || $state == connecting || $state == negotiating ]] ||
	fail "camera 3's state '$state'"
grep -Eq '^ +[12]  Gate [12] ' status.txt && fail "healthy cameras listed without --all"
expect_grep '^  \(1 cameras in trouble shown, 2 fine; --all lists every camera\)$' status.txt \
	"no count of the cameras left out"
expect_grep '^CAMERAS: 3 recorded, ' status.txt "no camera totals"

# Volumes: path, state and bytes as /health says (bytes only grow).
for i in 0 1; do
	path=$(json health.json "j['volumes'][$i]['path']")
	bytes=$(json health.json "j['volumes'][$i]['bytes_written']")
	line=$(grep -F "${path:0:32}" status.txt) || fail "volume $path not listed"
	read -r _ vstate _ vbytes verr _ <<<"$line"
	[[ $vstate == active && $verr == 0 && $vbytes -gt 0 && $vbytes -le $bytes ]] ||
		fail "volume line '$line' against /health bytes $bytes"
done
# Retention classes: the ones /retention lists, by name.
get retention.json "/retention?limit=1"
for name in $(json retention.json '" ".join(c["name"] for c in j["classes"])'); do
	expect_grep "^  $name: .*promised_days=" status.txt "class $name not in the table"
done
[[ $(json retention.json 'len(j["classes"]) > 0') == False ]] ||
	expect_grep '^RETENTION CLASSES$' status.txt "no retention section"

# --all: every camera, 1 and 2 streaming with no failure.
expect_exit 0 all.txt "$BIN/nvrctl" status --url "$URL" --all "${LOGIN[@]}"
for k in 1 2; do
	line=$(grep -E "^ +$k  Gate $k " all.txt) || fail "--all: camera $k missing"
	read -r _ _ _ st _ _ _ _ f <<<"$line"
	[[ $st == streaming && $f == 0 ]] || fail "--all: camera $k: '$line'"
done

# Credentials from files: accepted, never printed; a wrong one refused.
"$BIN/nvrctl" tokens create --user "$API_USER" --label status --data data >tok.txt 2>tok.err ||
	fail "nvrctl tokens create: $(cat tok.err)"
expect_exit 0 basic.txt "$BIN/nvrctl" status --url "$URL" "${LOGIN[@]}"
expect_exit 0 bearer.txt "$BIN/nvrctl" status --url "$URL" --token-file tok.txt
expect_grep '^nvrd at ' basic.txt "no table with Basic credentials"
expect_grep '^nvrd at ' bearer.txt "no table with a token"
grep -q -F -e "$API_PASS" -e "$(cat tok.txt)" basic.txt bearer.txt && fail "a secret was printed"
printf 'wrong-password\n' >bad_pw.txt
"$BIN/nvrctl" status --url "$URL" --user "$API_USER" --password-file bad_pw.txt >refused.txt 2>&1 &&
	fail "a wrong password was accepted"
grep -q '^nvrd at' refused.txt && fail "a table with a wrong password"

# Failures: no table, a message, the right exit status.
expect_exit 2 nopw.txt "$BIN/nvrctl" status --url "$URL" --user admin --password-file missing.txt
expect_grep 'missing.txt' nopw.txt "no message about the password file"
expect_exit 2 half.txt "$BIN/nvrctl" status --url "$URL" --user admin
expect_exit 1 down.txt "$BIN/nvrctl" status --url http://127.0.0.1:9
grep -q '^nvrd at' down.txt && fail "a table without a daemon"
expect_grep 'GET http://127.0.0.1:9/api/v1/health' down.txt "no message naming the URL"

stop_nvrd                       # clears the EXIT trap: the simulator goes too
kill $sim 2>/dev/null || true
wait $sim 2>/dev/null || true
echo "ok"
