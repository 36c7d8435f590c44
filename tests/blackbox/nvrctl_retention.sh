#!/usr/bin/env bash
# nvrctl_retention.sh - nvrd records 4 simulated cameras with two retention
# classes; on the stopped data directory nvrctl creates, lists and releases
# a legal hold, refuses a purge under it (nothing erased), purges once it
# is released, and prints the retention table; `nvrctl holds` refuses to
# run while nvrd holds the directory.
set -euo pipefail
# shellcheck source=tests/blackbox/lib.bash
. "$(dirname "$0")/lib.bash"
cd "$TEST_DIR"

cp "$BLACKBOX_DIR/../config/good/retention_classes.conf" classes.conf
expect_exit 0 nvrd.log "$BIN/nvrd" --config classes.conf --data data --seconds 5 --simulate 4 \
	--sim-port 18891 --volume-size 256M --http-port 0
expect_grep 'event=retention_loaded' nvrd.log "the engine did not load retention state"
status=$(last_status nvrd.log)
[[ $(kv retention_alarms "$status") -eq 0 ]] || fail "unexpected alarm: $status"

expect_exit 0 frames0 "$BIN/nvrctl" frames --data data --camera 1 --ranges ranges --list /dev/null
from=$(head -n 1 ranges | cut -d' ' -f1)
to=$(tail -n 1 ranges | cut -d' ' -f2)
[[ -n $from && -n $to ]] || fail "camera 1 recorded nothing"
mid=$(((from + to) / 2))

expect_exit 0 create "$BIN/nvrctl" holds create --data data --camera 1 --from "$from" --to "$mid" \
	--case CASE-7 --reason test
expect_grep '^hold 1 created' create "no hold created"
expect_exit 0 list "$BIN/nvrctl" holds list --data data
expect_grep 'CASE-7' list "the hold is not listed"
expect_exit 1 purge1 "$BIN/nvrctl" purge --data data --camera 1 --from "$from" --to "$to"
expect_grep 'legal hold' purge1 "the purge under a hold was not refused"
expect_exit 0 frames1 "$BIN/nvrctl" frames --data data --camera 1 --list /dev/null
before=$(sed -n 's/^camera=1 frames=\([0-9]*\).*/\1/p' frames1)

expect_exit 0 release "$BIN/nvrctl" holds release 1 --data data
expect_exit 1 release2 "$BIN/nvrctl" holds release 1 --data data
expect_exit 0 purge2 "$BIN/nvrctl" purge --data data --camera 1 --from "$from" --to "$mid"
expect_grep '^purged camera 1: [1-9]' purge2 "nothing purged"
expect_exit 0 frames2 "$BIN/nvrctl" frames --data data --camera 1 --list /dev/null
after=$(sed -n 's/^camera=1 frames=\([0-9]*\).*/\1/p' frames2)
[[ $before -gt 0 && $after -lt $before ]] || fail "purge left $after of $before frames"

expect_exit 0 table "$BIN/nvrctl" retention --data data
expect_grep '^key	90.00	365.00' table "class key missing from the table"
expect_grep '^default	0.00	30.00	4	' table "default class with 4 cameras missing"
echo "ok: hold created, purge refused under it, $((before - after)) frames purged after release"
