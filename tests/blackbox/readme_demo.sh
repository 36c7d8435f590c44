#!/usr/bin/env bash
# readme_demo.sh - the README's first command, as a newcomer runs it: the
# nvrd invocation is taken from README.md itself (so the test follows the
# README), run from a fresh directory with the embedded default: the
# simulator's 200 cameras around Wuhai must stream and record, the demo
# login printed on the terminal must open the API and the web page, and
# Ctrl-C (SIGINT) must stop it cleanly. Uses the default ports (8080, 8554):
# skipped when something else holds them.
set -euo pipefail
# shellcheck source=tests/blackbox/lib.bash
. "$(dirname "$0")/lib.bash"
ROOT=$(cd "$BLACKBOX_DIR/../.." && pwd)
cd "$TEST_DIR"
command -v curl >/dev/null || { echo "skip: curl is not installed"; exit 77; }
for port in 8080 8554; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		echo "skip: port $port is in use"
		exit 77
	fi
done
PY=/usr/bin/python3

# The first command of the quick start: "... && build/bin/nvrd ARGS".
cmd=$(grep -m1 -o 'build/bin/nvrd[^`]*' "$ROOT/README.md")
[[ -n $cmd ]] || fail "no nvrd command in README.md"
read -r -a argv <<<"${cmd#build/bin/nvrd}"
"$BIN/nvrd" "${argv[@]}" 2>nvrd.log &
pid=$!
trap 'kill -KILL $pid 2>/dev/null || true' EXIT

login=""
for _ in $(seq 300); do
	login=$(grep -m1 -o 'demo login: [^ ]* / [^ ]*' nvrd.log || true)
	[[ -n $login ]] && break
	kill -0 $pid 2>/dev/null || { tail -n 20 nvrd.log >&2; fail "nvrd exited"; }
	sleep 0.1
done
[[ -n $login ]] || fail "no demo login printed"
user=$(awk '{print $3}' <<<"$login")
pass=$(awk '{print $5}' <<<"$login")
[[ -f nvr-data/demo-login ]] || fail "the demo login is not kept in nvr-data/demo-login"
API=http://127.0.0.1:8080/api/v1
json() { $PY -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }
streaming=0
for _ in $(seq 600); do
	if curl -s -u "$user:$pass" -o health.json "$API/health" 2>/dev/null &&
	   streaming=$(json health.json 'j.get("streaming", 0)') && [[ $streaming -ge 200 ]]; then
		break
	fi
	kill -0 $pid 2>/dev/null || { tail -n 20 nvrd.log >&2; fail "nvrd exited"; }
	sleep 0.1
done
[[ $streaming -ge 200 ]] || fail "only $streaming of 200 demo cameras streaming"
curl -s -u "$user:$pass" -o cams.json "$API/cameras?limit=1000" || fail "GET /cameras"
[[ $(json cams.json 'j["total"]') == 200 ]] || fail "not 200 cameras"
[[ $(json cams.json 'sorted({c["district"] for c in j["cameras"]})') == "['Haibowan', 'Hainan', 'Wuda']" ]] ||
	fail "districts: $(json cams.json 'sorted({c["district"] for c in j["cameras"]})')"
[[ $(json cams.json 'all(39.2 < c["latitude"] < 39.9 and 106.5 < c["longitude"] < 107.1 for c in j["cameras"])') == True ]] ||
	fail "cameras not around Wuhai"
[[ $(json cams.json 'sorted({t for c in j["cameras"] for t in c["tags"]})') == \
	"['bank', 'checkpoint', 'residential', 'school', 'street', 'village']" ]] || fail "tags"
curl -s -o /dev/null -w '%{http_code}' "$API/cameras" | grep -q 401 || fail "the API answers without a login"
curl -s -o page.html -w '%{http_code}' http://127.0.0.1:8080/ | grep -q 200 || fail "no web page"
grep -qi '<html' page.html || fail "the web page is not HTML"
sleep 3
now=$($PY -c 'import time; print(int(time.time() * 1000))')
curl -s -u "$user:$pass" -o ranges.json "$API/cameras/1/ranges?from=$((now - 60000))&to=$now"
[[ $(json ranges.json 'len(j["ranges"]) >= 1') == True ]] || fail "camera 1 records nothing"
kill -INT $pid
rc=0
wait $pid || rc=$?
trap - EXIT
[[ $rc -eq 0 ]] || { tail -n 20 nvrd.log >&2; fail "nvrd exited $rc after Ctrl-C"; }
expect_grep 'event=stopped reason=signal signal=SIGINT' nvrd.log "no clean stop"
echo "ok: README's command ($cmd): 200 cameras streaming and recording, demo login, web page, clean stop"
