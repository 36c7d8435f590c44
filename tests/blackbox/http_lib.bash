# http_lib.bash - what the HTTP black-box tests share: starting nvrd with the
# camera simulator and the API, waiting until its cameras stream, and
# fetching and reading JSON answers. Source after lib.bash, with SIM_PORT and
# HTTP_PORT set; defines API, PY and pid (nvrd's, killed on exit).
#
# The API needs credentials: start_nvrd_api first creates an admin user
# (API_USER, a random API_PASS) with nvrctl. Requests then carry
# AUTH_HEADER, "Authorization: Basic ..." by default; set HTTP_AUTH=bearer
# before start_nvrd_api to use an API token made with nvrctl instead.
# CURL_AUTH holds the curl arguments that send AUTH_HEADER.
# shellcheck shell=bash

API=http://127.0.0.1:$HTTP_PORT/api/v1
PY=/usr/bin/python3
API_USER=tester
API_PASS=$($PY -c 'import secrets; print(secrets.token_urlsafe(18))')
HTTP_AUTH=${HTTP_AUTH:-basic}
AUTH_HEADER="Authorization: Basic $(printf '%s:%s' "$API_USER" "$API_PASS" | base64 -w0)"
CURL_AUTH=(-H "$AUTH_HEADER")

# make_api_user: the admin user the requests authenticate as (and, with
# HTTP_AUTH=bearer, a token of theirs), before nvrd starts; once per test,
# so that nvrd can be started again on the same data directory.
make_api_user() {
	[[ -z ${API_USER_MADE:-} ]] || return 0
	API_USER_MADE=1
	mkdir -p data
	printf '%s\n' "$API_PASS" |
		expect_exit 0 useradd.out "$BIN/nvrctl" users add "$API_USER" --role admin --data data
	if [[ $HTTP_AUTH == bearer ]]; then
		"$BIN/nvrctl" tokens create --user "$API_USER" --label tests --data data \
			>token.txt 2>token.err || { cat token.err >&2; fail "nvrctl tokens create"; }
		AUTH_HEADER="Authorization: Bearer $(cat token.txt)"
		CURL_AUTH=(-H "$AUTH_HEADER")
	fi
}

# start_nvrd_api N: nvrd on a fresh data directory recording N simulated
# cameras, log in nvrd.log; returns once the API answers and all N stream.
start_nvrd_api() {
	local n=$1 i
	make_api_user
	"$BIN/nvrd" --data data --simulate "$n" --sim-port "$SIM_PORT" --http-port "$HTTP_PORT" \
		--volume-size 256M 2>nvrd.log &
	pid=$!
	trap 'kill -KILL $pid 2>/dev/null || true' EXIT
	for ((i = 0; i < 100; i++)); do
		if curl -s "${CURL_AUTH[@]}" -o health.json "$API/health" 2>/dev/null &&
		   [[ $(json health.json 'j["streaming"]') == "$n" ]]; then
			return 0
		fi
		kill -0 $pid 2>/dev/null || { cat nvrd.log >&2; fail "nvrd exited"; }
		sleep 0.2
	done
	cat nvrd.log >&2
	fail "the $n cameras are not streaming"
}

# fetch OUT PATH STATUS: GETs API/PATH into OUT (its headers into
# OUT.headers), fails unless the HTTP status is STATUS.
fetch() {
	local code
	code=$(curl -s "${CURL_AUTH[@]}" -D "$1.headers" -o "$1" -w '%{http_code}' "$API$2") ||
		fail "curl $2 failed"
	[[ $code == "$3" ]] || { head -c 300 "$1" >&2; fail "GET $2: status $code, expected $3"; }
}

# get NAME PATH [STATUS]: fetch, and the body must be JSON.
get() {
	fetch "$1" "$2" "${3:-200}"
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
