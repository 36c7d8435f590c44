#!/usr/bin/env bash
# config_check.sh - `nvrd --check-config` over tests/config: every good file
# and the installed default (packaging/nvr.conf) print "configuration ok"
# and exit 0; every bad file exits 1 and names the file and line its first
# line announces ("# LINE: message"), and nvrd did not start (no data
# directory appears). Also: a bad command-line value exits 2, and
# docs/CONFIG.md is exactly what `nvrd --print-config-doc` prints.
set -euo pipefail
# shellcheck source=tests/blackbox/lib.bash
. "$(dirname "$0")/lib.bash"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$TEST_DIR"

good=0
for f in "$ROOT"/tests/config/good/*.conf "$ROOT/packaging/nvr.conf"; do
	expect_exit 0 out "$BIN/nvrd" --check-config --config "$f"
	[[ $(cat out) == "configuration ok" ]] || fail "$f: output '$(cat out)'"
	good=$((good + 1))
done

bad=0
for f in "$ROOT"/tests/config/bad/*.conf; do
	want=$(head -n 1 "$f" | sed 's/^# //')
	expect_exit 1 out "$BIN/nvrd" --check-config --config "$f"
	first=$(head -n 1 out)
	[[ $first == "$f:$want"* ]] || fail "$f: first error '$first', expected '$f:$want'"
	grep -q "configuration ok" out && fail "$f: says ok"
	bad=$((bad + 1))
done
[[ $bad -ge 40 ]] || fail "only $bad bad files"

# The same errors stop a real start before anything is created.
f=$ROOT/tests/config/bad/out_of_range.conf
expect_exit 1 out "$BIN/nvrd" --config "$f" --data "$TEST_DIR/data"
expect_grep "^$f:3: http.port: out of range" out "start with a bad file"
[[ ! -e data ]] || fail "nvrd created its data directory despite a bad file"

# Command-line values: checked like file values (exit 2); a good one
# overrides the file's value.
expect_exit 2 out "$BIN/nvrd" --check-config --volumes 65
expect_grep "bad --volumes '65': out of range \(1 to 64\)" out "bad option value"
expect_exit 0 out "$BIN/nvrd" --check-config --config "$ROOT/tests/config/good/full.conf" \
	--http-port 0
expect_exit 1 out "$BIN/nvrd" --check-config --config /nonexistent/nvr.conf
expect_grep '^/nonexistent/nvr.conf: cannot open' out "missing file"

"$BIN/nvrd" --print-config-doc >CONFIG.md
diff -u "$ROOT/docs/CONFIG.md" CONFIG.md >doc.diff ||
	{ cat doc.diff >&2; fail "docs/CONFIG.md differs from nvrd --print-config-doc (regenerate it)"; }
echo "ok: $good good files accepted, $bad bad files refused with file and line, CONFIG.md current"
