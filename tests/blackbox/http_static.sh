#!/usr/bin/env bash
# http_static.sh - the web UI's files (web/static.c): "/" answers
# index.html and /ui/... the other files with their Content-Type, without
# credentials; an ETag is answered 304; HEAD answers the file's length; paths that would
# leave the directory (.., encoded .., a symbolic link out of it, a
# directory) are refused with 404 and the file outside is never sent; POST
# is 405; the API still needs credentials; http.static_dir pointing to a
# missing directory serves no UI and the API still runs.
set -euo pipefail
# shellcheck source=tests/blackbox/lib.bash
. "$(dirname "$0")/lib.bash"
cd "$TEST_DIR"

SIM_PORT=18953
HTTP_PORT=18954
command -v curl >/dev/null || { echo "skip: curl is not installed"; exit 77; }
# shellcheck source=tests/blackbox/http_lib.bash
. "$BLACKBOX_DIR/http_lib.bash"
BASE=http://127.0.0.1:$HTTP_PORT

# A UI directory of our own, with a secret beside it and a link out of it.
mkdir -p www/ui-root/css www/ui-root/js
echo '<!doctype html><title>t</title>index-marker' >www/ui-root/index.html
echo 'body{color:red}' >www/ui-root/css/a.css
echo 'export const x = 1;' >www/ui-root/js/a.js
echo 'secret-marker' >www/secret.txt
ln -s ../secret.txt www/ui-root/link.txt
make_api_user
"$BIN/nvrd" --data data --simulate 1 --sim-port "$SIM_PORT" --http-port "$HTTP_PORT" \
	--volume-size 64M --static-dir "$TEST_DIR/www/ui-root" 2>nvrd.log &
pid=$!
trap 'kill -KILL $pid 2>/dev/null || true' EXIT
for ((i = 0; i < 100; i++)); do
	curl -s -o /dev/null "$BASE/api/v1/health" && break
	sleep 0.1
done

# code URL [CURL ARGS...]: prints the status; the body goes to body.out.
code() {
	local url=$1
	rm -f body.out head.out
	shift
	curl -s --path-as-is -o body.out -D head.out -w '%{http_code}' "$@" "$url"
}

[[ $(code "$BASE/") == 200 ]] || fail "GET / not 200"
grep -q index-marker body.out || fail "GET / is not index.html"
grep -qi '^content-type: text/html' head.out || fail "index.html Content-Type"
etag=$(sed -n 's/^[Ee][Tt][Aa][Gg]: *//p' head.out | tr -d '\r')
[[ -n $etag ]] || fail "no ETag"
grep -qi '^cache-control: no-cache' head.out || fail "no Cache-Control: no-cache"
[[ $(code "$BASE/ui/css/a.css") == 200 ]] && grep -qi '^content-type: text/css' head.out || fail "css"
[[ $(code "$BASE/ui/js/a.js") == 200 ]] && grep -qi '^content-type: text/javascript' head.out || fail "js"
[[ $(code "$BASE/" -H "If-None-Match: $etag") == 304 ]] || fail "If-None-Match not 304"
[[ ! -s body.out ]] || fail "304 with a body"
[[ $(code "$BASE/ui/js/a.js" -I) == 200 ]] || fail "HEAD not 200"
grep -qi '^content-length: 20' head.out || fail "HEAD: Content-Length is not the file's"
[[ $(code "$BASE/ui/js/a.js" -X POST) == 405 ]] || fail "POST not 405"

for path in /ui/../secret.txt /ui/..%2fsecret.txt /ui/%2e%2e/secret.txt /ui/css/../../secret.txt \
	/ui/link.txt /ui/css /ui/css/ /ui/./index.html /ui//index.html /ui/missing.js '/ui/..\secret.txt'; do
	c=$(code "$BASE$path")
	[[ $c == 404 ]] || fail "GET $path answered $c, expected 404"
	! grep -q secret-marker body.out || fail "GET $path sent the file outside the UI directory"
done
expect_grep 'event=static_refused path="/ui/../secret.txt"' nvrd.log "refusals logged"
[[ $(code "$BASE/api/v1/cameras") == 401 ]] || fail "the API must still need credentials"
stop_nvrd

# A static_dir that does not exist: 404 for the UI, the API answers.
"$BIN/nvrd" --data data --simulate 1 --sim-port "$SIM_PORT" --http-port "$HTTP_PORT" \
	--volume-size 64M --static-dir "$TEST_DIR/nowhere" 2>nvrd2.log &
pid=$!
trap 'kill -KILL $pid 2>/dev/null || true' EXIT
for ((i = 0; i < 100; i++)); do
	curl -s -o /dev/null "$BASE/api/v1/health" && break
	sleep 0.1
done
[[ $(code "$BASE/") == 404 ]] || fail "missing static_dir: GET / not 404"
expect_grep 'event=static_dir_missing' nvrd2.log "missing static_dir logged"
[[ $(code "$BASE/api/v1/me" "${CURL_AUTH[@]}") == 200 ]] || fail "API without the UI"
stop_nvrd
echo "static files: served, cached, traversal refused"
