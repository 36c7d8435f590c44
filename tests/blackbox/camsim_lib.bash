# camsim_lib.bash - helpers for the nvr-camsim black-box tests (sourced
# after lib.bash, not run by the runner).

PY=/usr/bin/python3
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CLIENT=$ROOT/tests/blackbox/camsim_client.py

# camsim_fixtures SECONDS: makes (or reuses) the H.264 and H.265 fixtures
# in the build directory's fixture cache; sets H264 and H265.
camsim_fixtures() {
	local dir out
	dir=$(cd "$BIN/.." && pwd)/fixtures
	out=$("$ROOT/scripts/make-fixtures.sh" "$dir" "$1") ||
		fail "make-fixtures.sh failed"
	H264=$(sed -n 1p <<<"$out")
	H265=$(sed -n 2p <<<"$out")
	[[ -s $H264 && -s $H265 ]] || fail "fixtures missing: $out"
}

# camsim_start NAME ARGS...: starts nvr-camsim in the background (stdout in
# NAME.out, log in NAME.err), waits for its ready line and sets
# PID_<NAME> and PORT_<NAME> (the TCP port of its first listener; every
# listener is given port 0, so the kernel picks free ones).
camsim_start() {
	local name=$1 i port
	shift
	"$BIN/nvr-camsim" "$@" >"$name.out" 2>"$name.err" &
	printf -v "PID_$name" '%s' $!
	for ((i = 0; i < 100; i++)); do
		grep -q '^ready ' "$name.out" 2>/dev/null && break
		sleep 0.1
	done
	expect_grep '^ready cameras=[0-9]+ listeners=[0-9]+$' "$name.out" "nvr-camsim $name not ready"
	port=$(sed -n 's/.*event=listening addr=[0-9.]*:\([0-9]*\) .*/\1/p' "$name.err" | head -n 1)
	[[ -n $port ]] || fail "no listening port in $name.err"
	printf -v "PORT_$name" '%s' "$port"
}

# camsim_stop NAME: SIGTERM, exit status 0 and a summary line on stdout.
camsim_stop() {
	local name=$1 pidvar="PID_$1" rc=0
	kill -TERM "${!pidvar}"
	wait "${!pidvar}" || rc=$?
	[[ $rc -eq 0 ]] || { cat "$name.err" >&2; fail "nvr-camsim $name exited $rc"; }
	expect_grep '^event=camsim_summary sessions=[0-9]+ frames_sent=[0-9]+ packets_sent=[0-9]+ bytes_sent=[0-9]+ frames_skipped=[0-9]+' \
		"$name.out" "no summary line from $name"
}

# summary_kv NAME KEY: a value of NAME's summary line.
summary_kv() {
	kv "$2" "$(grep '^event=camsim_summary' "$1.out")"
}
