# http_lib.bash - what the HTTP black-box tests share: starting nvrd with the
# camera simulator and the API, waiting until its cameras stream, and
# fetching and reading JSON answers. Source after lib.bash, with SIM_PORT and
# HTTP_PORT set; defines API, PY and pid (nvrd's, killed on exit).
# shellcheck shell=bash

API=http://127.0.0.1:$HTTP_PORT/api/v1
PY=/usr/bin/python3

# start_nvrd_api N: nvrd on a fresh data directory recording N simulated
# cameras, log in nvrd.log; returns once the API answers and all N stream.
start_nvrd_api() {
	local n=$1 i
	"$BIN/nvrd" --data data --simulate "$n" --sim-port "$SIM_PORT" --http-port "$HTTP_PORT" \
		--volume-size 256M 2>nvrd.log &
	pid=$!
	trap 'kill -KILL $pid 2>/dev/null || true' EXIT
	for ((i = 0; i < 100; i++)); do
		if curl -s -o health.json "$API/health" 2>/dev/null &&
		   [[ $(json health.json 'j["streaming"]') == "$n" ]]; then
			return 0
		fi
		kill -0 $pid 2>/dev/null || { cat nvrd.log >&2; fail "nvrd exited"; }
		sleep 0.2
	done
	cat nvrd.log >&2
	fail "the $n cameras are not streaming"
}

# get NAME PATH [STATUS]: GETs API/PATH into NAME, fails unless the HTTP
# status is STATUS (200) and the body is JSON.
get() {
	local code
	code=$(curl -s -o "$1" -w '%{http_code}' "$API$2") || fail "curl $2 failed"
	[[ $code == "${3:-200}" ]] || { cat "$1" >&2; fail "GET $2: status $code, expected ${3:-200}"; }
	$PY -c 'import json,sys; json.load(open(sys.argv[1]))' "$1" || fail "GET $2: not JSON"
}

# json FILE EXPR: prints the Python expression EXPR over the JSON in FILE (j).
json() {
	$PY -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

# expect_param PATH STATUS PARAM WHAT: GET PATH answers STATUS with a JSON
# error naming the parameter PARAM; WHAT says what was wrong, for the message.
expect_param() {
	get err.json "$1" "$2"
	[[ $(json err.json 'j["error"]["parameter"]') == "$3" ]] || fail "$4: parameter $3 not named"
}

# stop_nvrd: SIGTERM, then nvrd must exit 0.
stop_nvrd() {
	local rc=0
	kill -TERM $pid
	wait $pid || rc=$?
	trap - EXIT
	[[ $rc -eq 0 ]] || { tail -n 20 nvrd.log >&2; fail "nvrd exited $rc after SIGTERM"; }
}
