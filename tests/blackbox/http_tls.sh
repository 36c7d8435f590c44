#!/usr/bin/env bash
# http_tls.sh - with http.tls_cert and http.tls_key in the configuration,
# nvrd serves its API over HTTPS only: a certificate made here for
# localhost (openssl, subjectAltName) is checked by curl --cacert; without
# the CA curl refuses the certificate; plain HTTP to the same port gets no
# answer. Then http.plain_http_port is added to the file and SIGHUP restarts
# the HTTP server: the plain port answers too, HTTPS still does, and the
# cameras recorded through it all (same sessions, nothing dropped).
set -euo pipefail
# shellcheck source=tests/blackbox/lib.bash
. "$(dirname "$0")/lib.bash"
SIM_PORT=18711
HTTPS_PORT=18712
PLAIN_PORT=18713
PY=/usr/bin/python3
command -v openssl >/dev/null || { echo "openssl missing"; exit 77; }
cd "$TEST_DIR"

openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 2 \
	-subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>openssl.log ||
	fail "openssl could not make a certificate: $(cat openssl.log)"

write_conf() {
	cat >nvr.conf <<CONF
[storage]
data_dir = $TEST_DIR/data
volumes = 1
volume_size = 64M
[demo]
simulate = 2
sim_port = $SIM_PORT
[http]
listen = 127.0.0.1
port = $HTTPS_PORT
tls_cert = $TEST_DIR/cert.pem
tls_key = $TEST_DIR/key.pem
$1
CONF
}

# The demo's admin (DATA/demo-login, written on the first start) is the user.
AUTH=()
demo_auth() {
	local u p
	[[ ${#AUTH[@]} -gt 0 || ! -r $TEST_DIR/data/demo-login ]] && return 0
	read -r u p <"$TEST_DIR/data/demo-login" && AUTH=(-u "$u:$p")
}
https() {
	demo_auth
	curl -s "${AUTH[@]}" --cacert cert.pem -o "$1" -w '%{http_code}' "https://localhost:$HTTPS_PORT/api/v1/$2"
}
json() { $PY -c 'import json,sys; print(eval(sys.argv[2], {"j": json.load(open(sys.argv[1]))}))' "$1" "$2"; }

write_conf ""
expect_exit 0 check.out "$BIN/nvrd" --check-config --config nvr.conf
"$BIN/nvrd" --config nvr.conf 2>nvrd.log &
pid=$!
trap 'kill -KILL $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
	code=$(https health.json health || true)
	[[ $code == 200 && $(json health.json 'j["streaming"]') == 2 ]] && break
	kill -0 $pid 2>/dev/null || { cat nvrd.log >&2; fail "nvrd exited"; }
	sleep 0.2
done
[[ $code == 200 ]] || { cat nvrd.log >&2; fail "no HTTPS answer (last status '$code')"; }
expect_grep "event=http_started url=https://127.0.0.1:$HTTPS_PORT/" nvrd.log "no https line"
[[ $(https cams.json cameras) == 200 && $(json cams.json 'j["total"]') == 2 ]] ||
	fail "GET /cameras over HTTPS: $(cat cams.json)"

rc=0
curl -s -o /dev/null "https://localhost:$HTTPS_PORT/api/v1/health" || rc=$?
[[ $rc -eq 60 ]] || fail "curl without the CA: exit $rc, expected 60 (certificate refused)"
rc=0
code=$(curl -s -m 5 -o plain.out -w '%{http_code}' "http://127.0.0.1:$HTTPS_PORT/api/v1/health") || rc=$?
[[ $rc -ne 0 || $code != 200 ]] || fail "plain HTTP was answered on the TLS port"
rc=0
curl -s -m 5 -o /dev/null "http://127.0.0.1:$PLAIN_PORT/api/v1/health" || rc=$?
[[ $rc -eq 7 ]] || fail "something listens on the plain port before it is configured (curl $rc)"

# Reload with a plain port as well.
write_conf "plain_http_port = $PLAIN_PORT"
kill -HUP $pid
for _ in $(seq 50); do
	code=$(curl -s -o plain.json -w '%{http_code}' "http://127.0.0.1:$PLAIN_PORT/api/v1/health" || true)
	[[ $code == 200 ]] && break
	sleep 0.2
done
[[ $code == 200 ]] || { cat nvrd.log >&2; fail "plain_http_port not served after SIGHUP"; }
expect_grep 'event=config_reloaded .*http_restarted=yes' nvrd.log "no reload line"
[[ $(https health2.json health) == 200 ]] || fail "HTTPS gone after the reload"
[[ $(json health2.json 'j["streaming"]') == 2 ]] || fail "cameras stopped streaming"

kill -TERM $pid
rc=0
wait $pid || rc=$?
trap - EXIT
[[ $rc -eq 0 ]] || { tail -n 20 nvrd.log >&2; fail "nvrd exited $rc"; }
grep -q 'event=session_up camera=1 ' nvrd.log || fail "camera 1 never streamed"
[[ $(grep -c 'event=session_up camera=1 ' nvrd.log) -eq 1 ]] ||
	fail "camera 1 reconnected during the HTTP restart"
status=$(last_status nvrd.log)
[[ $(kv frames_written "$status") -gt 0 && $(kv dropped_frames "$status") -eq 0 ]] ||
	fail "recording: $status"
echo "ok: HTTPS with the test certificate, no plain HTTP on the TLS port, plain port after SIGHUP"
