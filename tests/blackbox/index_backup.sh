#!/usr/bin/env bash
# index_backup.sh - nvrctl backup while nvrd records four nvr-camsim
# cameras, then nvrctl restore on the stopped appliance. Checks:
#   - the backup succeeds while nvrd runs, and nvrd loses no frame over it;
#   - restore refuses to run while nvrd runs;
#   - a backup with one byte flipped is refused before anything is replaced:
#     every camera's frames, the cameras, the users are unchanged;
#   - after restoring the sound backup, every frame recorded before AND after
#     the backup is listed again (the lists compare equal, and match what the
#     simulator sent), the users and the legal hold are those of the backup
#     (a user added after it is gone), and nvrd starts and records again on
#     an index nvr-fsck finds in agreement with the disks.
set -euo pipefail
# shellcheck source=tests/blackbox/lib.bash
. "$(dirname "$0")/lib.bash"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PORT=18970
CAMS=4

command -v ffmpeg >/dev/null || { echo "ffmpeg missing"; exit 77; }
cd "$TEST_DIR"
fixdir=$BIN/../fixtures
mkdir -p "$fixdir" 2>/dev/null && [[ -w $fixdir ]] || fixdir=$TEST_DIR/fixtures
mapfile -t fx < <("$ROOT/scripts/make-fixtures.sh" "$fixdir" 4 800 25 320x240)

"$BIN/nvr-camsim" --cameras $CAMS --fixture "${fx[0]}" --listen "127.0.0.1:$PORT" \
	>camsim.out 2>camsim.log &
sim=$!
nvrd_pid=
cleanup() {
	[[ -n $nvrd_pid ]] && kill -KILL "$nvrd_pid" 2>/dev/null
	kill "$sim" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 100); do grep -q '^ready' camsim.out && break; sleep 0.1; done
grep -q '^ready' camsim.out || fail "nvr-camsim did not start: $(cat camsim.log)"

{
	echo "id,name,main_url,enabled"
	for ((k = 1; k <= CAMS; k++)); do echo "$k,camera $k,rtsp://127.0.0.1:$PORT/cam/$k,true"; done
} >cams.csv
expect_exit 0 import.log "$BIN/nvrctl" cameras import cams.csv --data data
printf 'alice-password-1\n' | expect_exit 0 alice.log "$BIN/nvrctl" users add alice --role admin --data data

nvrd() {   # nvrd LOG ARGS...: nvrd on ./data, no HTTP
	local log=$1
	shift
	"$BIN/nvrd" --data data --simulate 0 --http-port 0 --volume-size 128M "$@" 2>>"$log"
}

# 1. a short first run formats the volumes; a hold on camera 1's footage of
# that run goes into the index
nvrd run1.log --seconds 3
now_us=$(($(date +%s) * 1000000))
expect_exit 0 hold.log "$BIN/nvrctl" holds create --data data --camera 1 \
	--from $((now_us - 3600000000)) --to $now_us --case CASE-BACKUP-1

# 2. record, back up while recording, record on
"$BIN/nvrd" --data data --simulate 0 --http-port 0 --volume-size 128M 2>>run2.log &
nvrd_pid=$!
for _ in $(seq 100); do
	[[ $(grep -c 'event=session_up' run2.log || true) -ge $CAMS ]] && break
	sleep 0.1
done
sleep 4
kill -0 $nvrd_pid || fail "nvrd exited: $(cat run2.log)"
expect_exit 0 backup.log "$BIN/nvrctl" backup --data data --out appliance.nvrbk
cat backup.log
for env in index registry users audit; do
	expect_grep "^  $env " backup.log "the backup lacks $env"
done
expect_exit 1 busy.log "$BIN/nvrctl" restore --data data --in appliance.nvrbk
expect_grep 'is in use' busy.log "restore did not refuse a running nvrd"
printf 'bob-password-12\n' | expect_exit 0 bob.log "$BIN/nvrctl" users add bob --role viewer --data data
sleep 5
kill -TERM $nvrd_pid
wait $nvrd_pid || fail "nvrd failed: $(tail -n 5 run2.log)"
nvrd_pid=
status=$(last_status run2.log)
[[ $(kv phase "$status") == final ]] || fail "no final status line: $status"
[[ $(kv dropped_frames "$status") -eq 0 && $(kv frames_lost "$status") -eq 0 ]] ||
	fail "frames lost while backing up: $status"
[[ $(kv reconnects "$status") -eq 0 ]] || fail "cameras reconnected: $status"

# list_all TAG: every camera's frames into TAG-K.txt, cameras and users lists
list_all() {
	local k
	for ((k = 1; k <= CAMS; k++)); do
		expect_exit 0 "$1-frames$k.log" "$BIN/nvrctl" frames --data data --camera $k --list "$1-$k.txt"
	done
	expect_exit 0 "$1-cameras.txt" "$BIN/nvrctl" cameras list --data data
	expect_exit 0 "$1-users.txt" "$BIN/nvrctl" users list --data data
	expect_exit 0 "$1-holds.txt" "$BIN/nvrctl" holds list --data data
	# the listings only: the storage's log lines carry timings (ms=...)
	sed -i '/^level=/d' "$1-cameras.txt" "$1-users.txt" "$1-holds.txt"
}
list_all before

# What the simulator sent each camera, summed over its sessions (a camera
# loses at most the frame in flight when its session is torn down).
sent() { grep -o "event=session_close camera=$1 .*frames_sent=[0-9]*" camsim.log |
	sed 's/.*frames_sent=//' | awk '{ s += $1 } END { print s + 0 }'; }
sessions() { grep -c "event=session_close camera=$1 " camsim.log || true; }
for ((k = 1; k <= CAMS; k++)); do
	s=$(sent $k) f=$(wc -l <"before-$k.txt") n=$(sessions $k)
	[[ $n -eq 2 ]] || fail "camera $k: $n sessions closed, expected 2"
	[[ $f -ge 250 && $f -le $s && $((s - f)) -le $((2 * n)) ]] ||
		fail "camera $k: $f frames recorded, $s sent in $n sessions"
done
grep -q bob before-users.txt || fail "bob was not added after the backup"

# 3. one byte flipped inside the index's section: refused, nothing replaced
cp appliance.nvrbk flipped.nvrbk
at=$(($(stat -c %s flipped.nvrbk) / 3))
printf "$(printf '\\%03o' $(($(od -An -tu1 -j $at -N1 flipped.nvrbk) ^ 1)))" |
	dd of=flipped.nvrbk bs=1 seek=$at conv=notrunc status=none
cmp -s appliance.nvrbk flipped.nvrbk && fail "the byte was not flipped"
expect_exit 1 flipped.log "$BIN/nvrctl" restore --data data --in flipped.nvrbk
expect_grep 'as it was' flipped.log "the refusal does not say the directory is unchanged"
ls -a data | grep -Eq 'before-restore|^\.restore$' && fail "a refused restore left files: $(ls -a data)"
list_all flipped
for f in before-*.txt; do
	cmp -s "$f" "flipped-${f#before-}" || fail "a refused restore changed ${f#before-}"
done

# 4. the sound backup: everything recorded before and after it is there
expect_exit 0 restore.log "$BIN/nvrctl" restore --data data --in appliance.nvrbk
cat restore.log
expect_grep '^index rebuilt from the volumes: volumes=2 ' restore.log "no rebuild"
added=$(sed -n 's/^index entries the volumes added or extended: \([0-9]*\).*/\1/p' restore.log)
[[ $added -gt 0 ]] || fail "the disks added nothing to the backup's index: the test proves nothing"
ls -a data | grep -Eq 'before-restore|^\.restore$' && fail "restore left files: $(ls -a data)"
list_all after
for ((k = 1; k <= CAMS; k++)); do
	cmp -s "before-$k.txt" "after-$k.txt" || {
		diff "before-$k.txt" "after-$k.txt" | head >&2
		fail "camera $k: frames differ after the restore"
	}
done
cmp -s before-cameras.txt after-cameras.txt || fail "cameras differ after the restore"
cmp -s before-holds.txt after-holds.txt || fail "holds differ after the restore"
grep -q CASE-BACKUP-1 after-holds.txt || fail "the hold of the backup is gone"
grep -q alice after-users.txt || fail "alice is gone"
grep -q bob after-users.txt && fail "bob, added after the backup, is still there"

# 5. nvrd starts on the restored directory and records on
nvrd run3.log --seconds 3
status=$(last_status run3.log)
[[ $(kv frames_written "$status") -gt 0 && $(kv dropped_frames "$status") -eq 0 ]] ||
	fail "nvrd did not record after the restore: $status"
mapfile -t args < <(fsck_args data 2)
expect_exit 0 fsck.log "$BIN/nvr-fsck" "${args[@]}"
expect_grep 'differences=0' fsck.log "index and disks disagree after the restart"
echo "ok: $(wc -l <after-1.txt) frames of camera 1 kept, $added index entries recovered from the disks"
