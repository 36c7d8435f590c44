#!/usr/bin/env bash
# http_auth.sh - users, roles and the audit trail of the HTTP API with the
# real nvrd: one user per role (made with nvrctl) gets exactly the
# endpoints of the role table (200/201, else 403), nobody without
# credentials (401 with WWW-Authenticate) but /health; Basic and bearer
# tokens both work; a wrong password is refused and audited as login_failed
# with the name tried and never the password; searches and playback are
# audited; `nvrctl audit verify` passes. Then, nvrd stopped, one entry is
# edited behind its back: `nvrctl audit verify` exits 1 naming that entry,
# every entry is still listed, and GET /audit/verify (nvrd restarted with
# --auth off, which is logged and audited) names it too.
set -euo pipefail
# shellcheck source=tests/blackbox/lib.bash
. "$(dirname "$0")/lib.bash"
cd "$TEST_DIR"

SIM_PORT=18781
HTTP_PORT=18782
command -v curl >/dev/null || { echo "skip: curl is not installed"; exit 77; }
TAMPER=$BIN/../helpers/audit_tamper
[[ -x $TAMPER ]] || fail "no $TAMPER: run make"
# shellcheck source=tests/blackbox/http_lib.bash
. "$BLACKBOX_DIR/http_lib.bash"

ROLES=(viewer investigator operator admin)
mkdir -p data
for r in "${ROLES[@]}"; do
	printf '%s\n' "pw-of-$r-123" |
		expect_exit 0 "add-$r.out" "$BIN/nvrctl" users add "u_$r" --role "$r" --data data
done
start_nvrd_api 2
[[ ! -e data/demo-login ]] || fail "a demo admin was made although users exist"
sleep 3

# status ROLE METHOD PATH [BODY]: the HTTP status of the request as u_ROLE.
status() {
	local role=$1 method=$2 path=$3 body=${4:-}
	curl -s -o "last-$role.json" -w '%{http_code}' -u "u_$role:pw-of-$role-123" \
		-X "$method" ${body:+-d "$body"} "$API$path"
}

now=$(date +%s%3N)
WIN="from=$((now - 60000))&to=$((now + 1000))"
get ranges.json "/cameras/1/ranges?$WIN"
from=$(json ranges.json 'j["ranges"][0]["start_ms"]')
PLAY="/cameras/1/video.mp4?from=$from&to=$((from + 2000))"
SEARCH="/search?near=39.684,106.825&radius=50000&$WIN"

# The role table: METHOD PATH, the roles allowed, the status they get.
# Anyone else gets 403. (web/README.md, "Roles")
TABLE=(
	"GET /me|viewer investigator operator admin|200"
	"GET /cameras|viewer investigator operator admin|200"
	"GET /cameras/1|viewer investigator operator admin|200"
	"GET /cameras/1/ranges?$WIN|viewer investigator operator admin|200"
	"GET $PLAY|viewer investigator operator admin|200"
	"GET $SEARCH|investigator admin|200"
	"GET /audit|operator admin|200"
	"POST /holds|investigator admin|201"
	"GET /holds|investigator operator admin|200"
	"GET /holds/1|investigator operator admin|200"
	"POST /cameras/2/purge|admin|200"
	"GET /retention|investigator operator admin|200"
	"GET /audit/verify|operator admin|200"
	"GET /tokens|viewer investigator operator admin|200"
	"POST /tokens|viewer investigator operator admin|201"
	"GET /users|admin|200"
	"POST /users|admin|201"
	"DELETE /users/u_spare|admin|200"
)
printf '%s\n' pw-of-spare-123 |
	expect_exit 0 add-spare.out "$BIN/nvrctl" users add u_spare --role viewer --data data
for row in "${TABLE[@]}"; do
	IFS='|' read -r req allowed ok <<<"$row"
	method=${req%% *} path=${req#* }
	body=
	[[ $method == POST && $path == /users ]] && body='{"name":"u_new","role":"viewer","password":"pw-of-new-123"}'
	[[ $method == POST && $path == /tokens ]] && body='{"label":"matrix"}'
	# a hold on camera 2 over the last minute; a purge of a window long past
	[[ $method == POST && $path == /holds ]] && body="{\"cameras\":[2],\"from\":$((now - 60000)),\"to\":$now,\"case\":\"ROLES-1\"}"
	[[ $path == */purge ]] && body='{"from":1000000,"to":2000000,"reason":"role table"}'
	for r in "${ROLES[@]}"; do
		want=403
		[[ " $allowed " == *" $r "* ]] && want=$ok
		got=$(status "$r" "$method" "$path" "$body")
		[[ $got == "$want" ]] || { cat "last-$r.json" >&2; fail "$r: $method $path: $got, expected $want"; }
	done
	# and nobody without credentials
	code=$(curl -s -D noauth.h -o noauth.json -w '%{http_code}' -X "$method" "$API$path")
	[[ $code == 401 ]] || fail "no credentials: $method $path: $code, expected 401"
	grep -qi '^WWW-Authenticate: Basic realm="nvr"' noauth.h || fail "401 without WWW-Authenticate"
done
echo "role table: ${#TABLE[@]} endpoints x ${#ROLES[@]} roles as expected, 401 without credentials"

# /health answers anyone; details only to operators and admins.
code=$(curl -s -o h.json -w '%{http_code}' "$API/health")
[[ $code == 200 && $(json h.json 'sorted(j)') == "['status']" ]] || fail "anonymous /health: $code"
for r in "${ROLES[@]}"; do
	[[ $(status "$r" GET /health) == 200 ]] || fail "$r: /health"
	want=False
	[[ $r == operator || $r == admin ]] && want=True
	[[ $(json "last-$r.json" '"volumes" in j') == "$want" ]] || fail "$r: /health details: expected $want"
done
for r in "${ROLES[@]}"; do
	status "$r" GET /me >/dev/null
	[[ $(json "last-$r.json" 'j["user"], j["role"]') == "('u_$r', '$r')" ]] || fail "$r: /me"
done

# Bearer: a token made over the API works, as its user's role; a revoked one not.
[[ $(status viewer POST /tokens '{"label":"t"}') == 201 ]] || fail "viewer: POST /tokens"
tok=$(json last-viewer.json 'j["token"]')
tid=$(json last-viewer.json 'j["id"]')
code=$(curl -s -o me.json -w '%{http_code}' -H "Authorization: Bearer $tok" "$API/me")
[[ $code == 200 && $(json me.json 'j["role"]') == viewer ]] || fail "bearer token: $code"
code=$(curl -s -o s.json -w '%{http_code}' -H "Authorization: Bearer $tok" "$API$SEARCH")
[[ $code == 403 ]] || fail "viewer token on /search: $code"
[[ $(status investigator DELETE "/tokens/$tid") == 404 ]] || fail "another user revoked a token"
[[ $(status viewer DELETE "/tokens/$tid") == 200 ]] || fail "viewer: revoke own token"
code=$(curl -s -o me.json -w '%{http_code}' -H "Authorization: Bearer $tok" "$API/me")
[[ $code == 401 ]] || fail "revoked token: $code"
code=$(curl -s -o me.json -w '%{http_code}' -H "Authorization: Bearer nvr_0000" "$API/me")
[[ $code == 401 ]] || fail "made-up token: $code"
# The user made by the admin over the API logs in.
code=$(curl -s -o me.json -w '%{http_code}' -u u_new:pw-of-new-123 "$API/me")
[[ $code == 200 && $(json me.json 'j["role"]') == viewer ]] || fail "u_new: $code"
code=$(curl -s -o me.json -w '%{http_code}' -u u_spare:pw-of-spare-123 "$API/me")
[[ $code == 401 ]] || fail "deleted user still logs in: $code"

# Wrong passwords: refused and audited with the name tried, never the password.
code=$(curl -s -o wrong.json -w '%{http_code}' -u u_admin:Guess-Me-42 "$API/me")
[[ $code == 401 ]] || fail "wrong password: $code"
code=$(curl -s -o wrong.json -w '%{http_code}' -u mallory:Guess-Me-43 "$API/cameras")
[[ $code == 401 ]] || fail "unknown user: $code"
big=$(head -c 70000 /dev/zero | tr '\0' a)
code=$(curl -s -o big.json -w '%{http_code}' -u u_admin:pw-of-admin-123 -d "$big" "$API/tokens")
[[ $code == 413 ]] || fail "70 kB body: $code, expected 413"
[[ $(status admin PUT /cameras) == 405 ]] || fail "PUT: expected 405"

get audit.json '/audit?limit=1000'
[[ $(json audit.json 'j["more"]') == False ]] || fail "audit listing incomplete"
fails=$(json audit.json '[e["detail"]["user_tried"] for e in j["entries"] if e["action"] == "login_failed"]')
[[ $fails == *"'u_admin'"* && $fails == *"'mallory'"* ]] || fail "login failures not audited: $fails"
grep -q 'Guess-Me' audit.json && fail "a password is in the audit trail"
grep -q 'Guess-Me\|pw-of-' nvrd.log && fail "a password is in the log"
[[ $(json audit.json '[e["user"] for e in j["entries"] if e["action"] == "search"]') == \
	"['u_investigator', 'u_admin']" ]] || fail "searches not audited per user"
[[ $(json audit.json 'sorted(e["user"] for e in j["entries"] if e["action"] == "playback")') == \
	"['u_admin', 'u_investigator', 'u_operator', 'u_viewer']" ]] || fail "playbacks not audited"
[[ $(json audit.json '[e["detail"]["camera"] for e in j["entries"] if e["action"] == "playback"]') == \
	"[1, 1, 1, 1]" ]] || fail "playback detail"
[[ $(json audit.json '[e["detail"]["name"] for e in j["entries"] if e["action"] == "user_created"]') == \
	"['u_viewer', 'u_investigator', 'u_operator', 'u_admin', 'tester', 'u_spare', 'u_new']" ]] ||
	fail "user creations not audited"
[[ $(json audit.json 'all(e["remote"] == "127.0.0.1" for e in j["entries"] if e["action"] == "search")') == True ]] ||
	fail "remote address missing"
# Paging by id gives the same entries.
get p1.json '/audit?limit=5'
get p2.json "/audit?limit=1000&after=$(json p1.json 'j["next_after"]')"
paged=$(json p1.json '[e["id"] for e in j["entries"]]')$(json p2.json '[e["id"] for e in j["entries"]]')
whole=$(json audit.json '[e["id"] for e in j["entries"][:5]]')$(json audit.json '[e["id"] for e in j["entries"][5:]]')
[[ $paged == "$whole" ]] || fail "paging by after: $paged, expected $whole"

expect_exit 0 verify.out "$BIN/nvrctl" audit verify --data data
expect_grep '^audit: ok, [0-9]+ entries' verify.out "verify while running"
get v.json /audit/verify
[[ $(json v.json 'j["ok"]') == True ]] || fail "GET /audit/verify: not ok"
stop_nvrd

# Edit the first failed login behind the recorder's back.
expect_exit 0 list.out "$BIN/nvrctl" audit list --data data
total=$(wc -l <list.out)
id=$(json audit.json '[e["id"] for e in j["entries"] if e["action"] == "login_failed" and e["detail"]["user_tried"] == "mallory"][0]')
expect_exit 0 tamper.out "$TAMPER" data/audit "$id" '"mallory"' '"someone"'
expect_exit 1 verify2.out "$BIN/nvrctl" audit verify --data data
expect_grep "^audit: BROKEN at entry $id: altered" verify2.out "the edited entry not named"
expect_grep "^audit: $((id - 1)) entries before it verify" verify2.out "entries before it"
expect_exit 0 list2.out "$BIN/nvrctl" audit list --data data
[[ $(wc -l <list2.out) == "$total" ]] || fail "entries lost after the edit"
grep -q '"user_tried":"someone"' list2.out || fail "the edit did not land"

# Restarted without authentication: said loudly, audited, and the API
# names the same entry.
"$BIN/nvrd" --data data --simulate 0 --http-port "$HTTP_PORT" --auth off 2>nvrd2.log &
pid=$!
trap 'kill -KILL $pid 2>/dev/null || true' EXIT
for ((i = 0; i < 100; i++)); do
	curl -s -o v2.json "$API/audit/verify" 2>/dev/null && break
	sleep 0.1
done
[[ $(json v2.json 'j["ok"], j["broken_id"]') == "(False, $id)" ]] || fail "GET /audit/verify after the edit"
expect_grep 'level=warn comp=nvrd event=auth_off' nvrd2.log "auth off not logged"
curl -s -o me.json "$API/me"
[[ $(json me.json 'j["user"], j["role"], j["authentication"]') == "('anonymous', 'admin', 'off')" ]] ||
	fail "/me with auth off"
curl -s -o last.json "$API/audit?after=$total"
[[ $(json last.json '[(e["action"], e["detail"]) for e in j["entries"]]') == \
	"[('config', {'setting': 'auth', 'value': 'off'})]" ]] || fail "auth off not audited"
stop_nvrd
echo "ok: roles, 401/403, Basic and bearer, login failures and searches audited, tampering found at entry $id"
