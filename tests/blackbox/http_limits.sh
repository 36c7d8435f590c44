#!/usr/bin/env bash
# http_limits.sh - the HTTP server's limits: a client address over its
# request rate gets 429 with Retry-After while another address is served,
# and is served again after a pause; a request whose headers exceed the
# per-connection memory is refused; the answers are counted in /metrics.
set -euo pipefail
# shellcheck source=tests/blackbox/lib.bash
. "$(dirname "$0")/lib.bash"
cd "$TEST_DIR"
command -v curl >/dev/null || { echo "skip: curl is not installed"; exit 77; }
HTTP_PORT=18981
SIM_PORT=18982
# shellcheck source=tests/blackbox/http_lib.bash
. "$BLACKBOX_DIR/http_lib.bash"

cat >limits.conf <<CONF
[limits]
request_rate = 1
request_burst = 5
connection_memory = 16K
CONF
make_api_user
"$BIN/nvrd" --config limits.conf --data data --simulate 0 --http-port "$HTTP_PORT" \
	--volume-size 64M 2>nvrd.log &
pid=$!
trap 'kill -KILL $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
	curl -s -o /dev/null "$API/health" 2>/dev/null && break
	sleep 0.1
done
sleep 3      # the polling above took tokens: let the bucket fill again

# Eight requests on one connection, within a few milliseconds.
args=()
for i in $(seq 8); do args+=(-o "body$i.json" "$API/cameras"); done
codes=$(curl -s -D hdr.txt -w '%{http_code} ' "${CURL_AUTH[@]}" "${args[@]}")
[[ $codes == "200 200 200 200 200 429 429 429 " ]] || fail "burst of 5 then 429: got $codes"
cp body8.json body.json
grep -qi '^Retry-After: 1' hdr.txt || fail "429 without Retry-After"
[[ $(json body.json 'j["error"]["code"]') == 429 ]] || fail "429 body"
# Another address is not affected by the first one's bucket.
code=$(curl -s --interface 127.0.0.2 -o other.json -w '%{http_code}' "${CURL_AUTH[@]}" "$API/cameras")
[[ $code == 200 ]] || fail "another address refused ($code)"
sleep 1.5    # 1 token a second
code=$(curl -s -o again.json -w '%{http_code}' "${CURL_AUTH[@]}" "$API/cameras")
[[ $code == 200 ]] || fail "not served again after a pause ($code)"

# Headers larger than the connection's memory: refused, nvrd unharmed.
big=$(head -c 20000 /dev/zero | tr '\0' 'x')
sleep 1
hcode=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Big: $big" "$API/health" || true)
[[ $hcode == 431 || $hcode == 413 || $hcode == 414 ]] || fail "oversized headers answered $hcode"
sleep 1
code=$(curl -s --interface 127.0.0.3 -o metrics.txt -w '%{http_code}' "${CURL_AUTH[@]}" \
	"http://127.0.0.1:$HTTP_PORT/metrics")
[[ $code == 200 ]] || fail "/metrics after the refusals ($code)"
grep -q '^nvr_http_requests_total{code="429"} [1-9]' metrics.txt || fail "429s not counted"
stop_nvrd
echo "ok: burst then 429 with Retry-After per address, served after a pause, big headers refused ($hcode)"
