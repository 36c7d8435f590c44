#!/usr/bin/env bash
# deb_install.sh - the Debian package: `make deb`, `dpkg -i`, the installed
# /usr/bin/nvrd run by hand (no systemd here) as the package's nvr user on
# a temporary configuration (a small volume under TEST_DIR, two simulated
# cameras from the package's fixtures, an HTTP port): it records and
# serves the API; SIGTERM, then `dpkg -r`: the programs are gone, the
# recorded footage and /var/lib/nvr are still there and still readable.
#
# Needs root and dpkg (exit 77 otherwise), and a machine where the package
# is not installed already. Whatever happens, the trap stops the daemon,
# purges the package, and removes the nvr user and /var/lib/nvr only if
# this test made them. The build tree only gains the package (BUILD/deb,
# BUILD/nvr_*.deb): `make deb` finds every program up to date.
set -euo pipefail
# shellcheck source=tests/blackbox/lib.bash
. "$(dirname "$0")/lib.bash"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "$BIN/.." && pwd)
SIM_PORT=18731
HTTP_PORT=18732
PY=/usr/bin/python3

[[ $(id -u) -eq 0 ]] || { echo "not root: cannot install packages"; exit 77; }
command -v dpkg >/dev/null && command -v dpkg-deb >/dev/null || { echo "dpkg missing"; exit 77; }
if dpkg-query -W -f='${db:Status-Abbrev}' nvr 2>/dev/null | grep -q '^.i'; then
	echo "the nvr package is installed on this machine already"
	exit 77
fi
cd "$TEST_DIR"

made_user=no made_group=no made_state=no pid=
getent passwd nvr >/dev/null || made_user=yes
getent group nvr >/dev/null || made_group=yes
[[ -e /var/lib/nvr ]] || made_state=yes
cleanup() {
	set +e
	if [[ -n $pid ]]; then kill -KILL "$pid" 2>/dev/null; fi
	dpkg --purge nvr >purge.log 2>&1 || cat purge.log >&2
	if [[ $made_user == yes ]]; then userdel nvr 2>/dev/null; fi
	if [[ $made_group == yes ]] && getent group nvr >/dev/null; then groupdel nvr; fi
	if [[ $made_state == yes ]]; then rm -rf /var/lib/nvr; fi
	return 0
}
trap cleanup EXIT

expect_exit 0 make.log make -C "$ROOT" --no-print-directory deb BUILD="$BUILD"
deb=$(tail -n 1 make.log)
[[ -f $deb && $deb == *.deb ]] || fail "make deb did not name a package: $(tail -n 3 make.log)"
cp "$deb" nvr.deb
expect_exit 0 dpkg-info.log dpkg-deb --info nvr.deb
expect_grep '^ Depends: .*libmicrohttpd.*' dpkg-info.log "no runtime dependencies in the package"
expect_exit 0 install.log dpkg -i nvr.deb

# What the package and its postinst put in place.
for p in nvrd nvrctl nvr-format nvr-fsck nvr-camsim; do
	[[ -x /usr/bin/$p ]] || fail "/usr/bin/$p not installed"
done
[[ -f /lib/systemd/system/nvrd.service ]] || fail "no systemd unit"
grep -q '^/etc/nvr/nvr.conf$' /var/lib/dpkg/info/nvr.conffiles || fail "nvr.conf is not a conffile"
getent passwd nvr >/dev/null || fail "postinst made no nvr user"
[[ $(stat -c %U:%a /var/lib/nvr) == nvr:750 ]] || fail "/var/lib/nvr: $(stat -c %U:%a /var/lib/nvr)"
[[ $(stat -c %U:%G:%a /etc/nvr/nvr.conf) == root:nvr:640 ]] || fail "nvr.conf permissions"
expect_exit 0 check.out /usr/bin/nvrd --check-config --config /etc/nvr/nvr.conf
[[ $(cat check.out) == "configuration ok" ]] || fail "installed nvr.conf: $(cat check.out)"

# The installed daemon on a temporary configuration, as the nvr user.
chmod 755 "$TEST_DIR"
install -d -o nvr -g nvr data
cat >test.conf <<CONF
[storage]
data_dir = $TEST_DIR/data
volumes = 1
volume_size = 64M
[demo]
simulate = 2
sim_port = $SIM_PORT
fixtures = /usr/share/nvr/fixtures
[http]
listen = 127.0.0.1
port = $HTTP_PORT
CONF
setpriv --reuid=nvr --regid=nvr --init-groups /usr/bin/nvrd --config "$TEST_DIR/test.conf" \
	2>nvrd.log &
pid=$!
json() { $PY -c 'import json,sys; print(eval(sys.argv[2], {"j": json.load(open(sys.argv[1]))}))' "$1" "$2"; }
# The demo's admin (DATA/demo-login, written on the first start) is the user.
AUTH=()
for _ in $(seq 100); do
	if [[ ${#AUTH[@]} -eq 0 && -r $TEST_DIR/data/demo-login ]]; then
		read -r user pass <"$TEST_DIR/data/demo-login"
		AUTH=(-u "$user:$pass")
	fi
	if curl -s "${AUTH[@]}" -o health.json "http://127.0.0.1:$HTTP_PORT/api/v1/health" 2>/dev/null &&
	   [[ $(json health.json 'j["streaming"]') == 2 ]]; then
		break
	fi
	kill -0 $pid 2>/dev/null || { cat nvrd.log >&2; fail "installed nvrd exited"; }
	sleep 0.2
done
[[ $(json health.json 'j["streaming"]') == 2 ]] || { cat nvrd.log >&2; fail "no streaming cameras"; }
curl -s "${AUTH[@]}" -o cams.json "http://127.0.0.1:$HTTP_PORT/api/v1/cameras" || fail "GET /cameras"
[[ $(json cams.json 'j["total"]') == 2 ]] || fail "cameras: $(cat cams.json)"
sleep 3
kill -TERM $pid
rc=0
wait $pid || rc=$?
pid=
[[ $rc -eq 0 ]] || { tail -n 20 nvrd.log >&2; fail "installed nvrd exited $rc"; }
status=$(last_status nvrd.log)
written=$(kv frames_written "$status")
[[ $written -gt 0 && $(kv dropped_frames "$status") -eq 0 ]] || fail "recording: $status"
[[ $(stat -c %U data/index) == nvr ]] || fail "the data was not written by the nvr user"
expect_exit 0 fsck.out /usr/bin/nvr-fsck --index data/index --volume data/vol0
expect_grep 'differences=0' fsck.out "fsck of the installed daemon's data"

# Removal keeps the footage, /var/lib/nvr and the configuration.
expect_exit 0 remove.log dpkg -r nvr
for p in nvrd nvrctl nvr-fsck; do [[ ! -e /usr/bin/$p ]] || fail "/usr/bin/$p left after dpkg -r"; done
[[ ! -e /lib/systemd/system/nvrd.service ]] || fail "unit left after dpkg -r"
[[ -d /var/lib/nvr ]] || fail "dpkg -r deleted /var/lib/nvr"
[[ -f /etc/nvr/nvr.conf ]] || fail "dpkg -r deleted the conffile (only purge may)"
expect_exit 0 frames.log "$BIN/nvrctl" frames --data data --camera 1 --list cam1.txt
[[ $(wc -l <cam1.txt) -gt 0 ]] || fail "no footage of camera 1 after dpkg -r"
echo "ok: installed, recorded $written frames as user nvr, served the API, removed; footage kept"
