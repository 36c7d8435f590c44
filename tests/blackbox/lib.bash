# lib.bash - helpers shared by the black-box tests (sourced, not run; the
# runner only runs tests/blackbox/*.sh).
#
# Each test gets BIN (the directory of the built programs) and TEST_DIR (a
# fresh, empty temporary directory it may fill) from tests/run-tests.sh.

: "${BIN:?BIN must name the directory of the built programs}"
: "${TEST_DIR:?TEST_DIR must name a fresh temporary directory}"
# This directory, absolute: tests cd into TEST_DIR before sourcing more.
BLACKBOX_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# need_tools TOOL...: skips the test (exit 77) unless every TOOL is installed.
need_tools() {
	local tool
	for tool in "$@"; do
		command -v "$tool" >/dev/null || { echo "skip: $tool is not installed"; exit 77; }
	done
}

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# expect_exit CODE OUTFILE CMD...: runs CMD with stdout and stderr in
# OUTFILE and fails the test unless it exits with CODE.
expect_exit() {
	local want=$1 out=$2 rc=0
	shift 2
	"$@" >"$out" 2>&1 || rc=$?
	if [[ $rc -ne $want ]]; then
		echo "--- output of: $*" >&2
		cat "$out" >&2
		fail "'$*' exited $rc, expected $want"
	fi
}

# expect_grep PATTERN FILE WHAT: fails unless FILE has a line matching the
# extended regular expression PATTERN.
expect_grep() {
	if ! grep -Eq -- "$1" "$2"; then
		echo "--- $2:" >&2
		cat "$2" >&2
		fail "$3 (no line matching '$1' in $2)"
	fi
}

# kv KEY LINE: the value of KEY=value in a key=value log line.
kv() {
	sed -n "s/.* $1=\\([^ ]*\\).*/\\1/p" <<<" $2"
}

# last_status LOG: the last status line nvrd wrote to LOG.
last_status() {
	grep 'comp=nvrd event=status' "$1" | tail -n 1
}

# fsck_args DATA VOLUMES: nvr-fsck's arguments for nvrd's data directory.
fsck_args() {
	local data=$1 n=$2 i
	printf -- '--index\n%s/index\n' "$data"
	for ((i = 0; i < n; i++)); do
		printf -- '--volume\n%s/vol%d\n' "$data" "$i"
	done
}

# fsck_chunks OUTFILE: the chunks count of an nvr-fsck summary line.
fsck_chunks() {
	kv chunks "$(grep -E '^volumes=' "$1" | tail -n 1)"
}
