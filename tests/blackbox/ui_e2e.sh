#!/usr/bin/env bash
# ui_e2e.sh - the web interface end to end: nvrd records six simulated
# cameras (odd ones H.264, even ones H.265) with the UI served from the
# source tree's web/static; tests/ui/e2e.mjs drives Debian's chromium
# (headless, through playwright-core from npm) to log in, draw a circle and
# a rectangle on the map and search a time window, play a camera (the
# video's currentTime advances, videoWidth > 0), scrub to a wall-clock time,
# export and check the download's SHA-256 against its manifest, place a
# legal hold, look at the operations view as an operator, and find the
# evidence controls absent for a viewer. Screenshots and downloads are kept
# in $BUILD/ui-artifacts (BUILD: the build directory above $BIN).
#
# Skips (77) only when node or /usr/bin/chromium is missing, or
# playwright-core cannot be installed with npm.
set -euo pipefail
# shellcheck source=tests/blackbox/lib.bash
. "$(dirname "$0")/lib.bash"
SRC=$(cd "$BLACKBOX_DIR/../.." && pwd)
ARTIFACTS=$(cd "$BIN/.." && pwd)/ui-artifacts
cd "$TEST_DIR"

SIM_PORT=18951
HTTP_PORT=18952
command -v curl >/dev/null || { echo "skip: curl is not installed"; exit 77; }
command -v node >/dev/null || { echo "skip: node is not installed (scripts/install-deps.sh)"; exit 77; }
[[ -x /usr/bin/chromium ]] || { echo "skip: /usr/bin/chromium is not installed (scripts/install-deps.sh)"; exit 77; }
if [[ ! -d $SRC/tests/ui/node_modules/playwright-core ]]; then
	(cd "$SRC/tests/ui" && npm ci --no-audit --no-fund >"$TEST_DIR/npm.log" 2>&1) ||
		{ cat "$TEST_DIR/npm.log"; echo "skip: npm ci of tests/ui failed"; exit 77; }
fi
# shellcheck source=tests/blackbox/http_lib.bash
. "$BLACKBOX_DIR/http_lib.bash"

INV_PASS=$($PY -c 'import secrets; print(secrets.token_urlsafe(12))')
VIEW_PASS=$($PY -c 'import secrets; print(secrets.token_urlsafe(12))')
OPS_PASS=$($PY -c 'import secrets; print(secrets.token_urlsafe(12))')
mkdir -p data
for u in "ivan investigator $INV_PASS" "vera viewer $VIEW_PASS" "otto operator $OPS_PASS"; do
	read -r name role pass <<<"$u"
	printf '%s\n' "$pass" | expect_exit 0 "user-$name.out" "$BIN/nvrctl" users add "$name" --role "$role" --data data
done

START_MS=$($PY -c 'import time; print(int(time.time() * 1000))')
start_nvrd_api 6
expect_grep "event=static_dir dir=\"$SRC/web/static\"" nvrd.log "nvrd serves the UI from the source tree"
# Footage to search, play and export.
sleep 8

rm -rf "$ARTIFACTS"
mkdir -p "$ARTIFACTS"
rc=0
NVR_URL="http://127.0.0.1:$HTTP_PORT" \
NVR_START_MS=$START_MS \
NVR_USERS="{\"investigator\":[\"ivan\",\"$INV_PASS\"],\"viewer\":[\"vera\",\"$VIEW_PASS\"],\"operator\":[\"otto\",\"$OPS_PASS\"]}" \
ARTIFACTS=$ARTIFACTS \
	timeout 150 node "$SRC/tests/ui/e2e.mjs" >e2e.log 2>&1 || rc=$?
cp e2e.log "$ARTIFACTS/"
if [[ $rc -ne 0 ]]; then
	cat e2e.log >&2
	tail -n 20 nvrd.log >&2
	fail "e2e.mjs exited $rc (screenshots in $ARTIFACTS)"
fi
[[ $(cat "$ARTIFACTS/RESULT") == pass ]] || fail "e2e.mjs did not finish"
n=$(find "$ARTIFACTS" -name '*.png' | wc -l)
[[ $n -ge 8 ]] || fail "expected screenshots of every view, found $n"
grep -c '^e2e: ok' e2e.log | sed 's/^/checks passed: /'
stop_nvrd
