#!/usr/bin/env bash
# format.sh - nvr-format: formats a directory and prints its UUID, refuses to
# format it again or to format a non-empty plain directory without --force
# (exit 1, naming the directory and --force), formats with --force, --probe
# shows the UUID of what is on disk, and too few segments are refused.
set -euo pipefail
# shellcheck source=tests/blackbox/lib.bash
. "$(dirname "$0")/lib.bash"
cd "$TEST_DIR"

uuid_re='^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'

# A fresh format prints the UUID, segment size and count.
expect_exit 0 out1 "$BIN/nvr-format" --segments 4 --segment-size 1M vol
uuid1=$(awk '/^uuid:/ {print $2}' out1)
[[ $uuid1 =~ $uuid_re ]] || fail "no UUID in 8-4-4-4-12 form: '$uuid1'"
expect_grep '^segment size: +1048576 bytes' out1 "segment size not printed"
expect_grep '^segment count: +4$' out1 "segment count not printed"
[[ $(find vol -name 'seg-*' | wc -l) -eq 4 ]] || fail "expected 4 segment files"

# The same directory again, without --force: refused.
expect_exit 1 out2 "$BIN/nvr-format" --segments 4 --segment-size 1M vol
expect_grep '^nvr-format: vol:' out2 "refusal does not name the directory"
expect_grep '--force' out2 "refusal does not mention --force"

# A plain directory with a file in it: refused and left alone.
mkdir plain
echo keep >plain/notes.txt
expect_exit 1 out3 "$BIN/nvr-format" --segments 4 --segment-size 1M plain
expect_grep '--force' out3 "refusal of a non-empty directory does not mention --force"
[[ -f plain/notes.txt && ! -e plain/volume.hdr ]] || fail "refused directory was changed"

# With --force the volume is formatted again, with a new UUID.
expect_exit 0 out4 "$BIN/nvr-format" --force --segments 5 --segment-size 1M vol
uuid2=$(awk '/^uuid:/ {print $2}' out4)
[[ $uuid2 =~ $uuid_re && $uuid2 != "$uuid1" ]] || fail "--force did not give a new UUID"

# --probe reads back what is on disk.
expect_exit 0 out5 "$BIN/nvr-format" --probe vol
[[ $(awk '/^uuid:/ {print $2}' out5) == "$uuid2" ]] || fail "--probe shows another UUID"
expect_grep '^segment count: +5$' out5 "--probe shows the wrong segment count"
expect_exit 1 out6 "$BIN/nvr-format" --probe plain

# Fewer than 4 segments: refused, by count or by size, nothing written.
expect_exit 1 out7 "$BIN/nvr-format" --segments 2 --segment-size 1M small
expect_grep 'at least 4 segments' out7 "2 segments refused without a clear reason"
expect_exit 1 out8 "$BIN/nvr-format" --size 512M small
expect_grep 'at least 4 segments' out8 "512M of 256M segments refused without a clear reason"
[[ ! -e small ]] || fail "a refused format left a directory behind"
echo "ok: format, refusals, --force, --probe"
