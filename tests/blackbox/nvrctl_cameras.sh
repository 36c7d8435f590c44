#!/usr/bin/env bash
# nvrctl_cameras.sh - `nvrctl cameras` at city scale: 30,000 cameras of CSV
# (names with commas and quotes, UTF-8, rtsp URLs, positions around Berlin
# with some unknown, tags, districts, credentials, a few tag cells spread
# over two lines) import in under 10 s; `list` shows 30,000 lines; a JSON
# export imports into a second data directory in under 10 s and both give
# the same CSV export byte for byte; a file with a bad row on physical line
# 12345 is refused with FILE:12345: and the registry is left as it was.
set -euo pipefail
# shellcheck source=tests/blackbox/lib.bash
. "$(dirname "$0")/lib.bash"
cd "$TEST_DIR"

if [[ ! -x $BIN/nvrctl ]]; then
	echo "skip: $BIN/nvrctl is not built"
	exit 77
fi

ROWS=30000
BAD_LINE=12345
LIMIT_S=10
# A sanitizer build (make asan) spends several times the CPU on every
# allocation; its limit is 60 s, and the times are printed either way.
if grep -qa __asan_init "$BIN/nvrctl"; then
	LIMIT_S=60
	echo "nvrctl is a sanitizer build: time limit $LIMIT_S s"
fi

# gen_csv BAD_LINE: the cameras as CSV on stdout; the row starting on
# physical line BAD_LINE (0: none) gets an ftp:// URL, which is refused. Rows
# starting on a line ending in 500 have a tags cell on two lines.
gen_csv() {
	awk -v rows="$ROWS" -v bad="$1" 'BEGIN {
		srand(20260101)
		ns = split("Alexanderplatz|Kurfürstendamm|Friedrichstraße|Unter den Linden|Karl-Marx-Allee|Sonnenallee|Schönhauser Allee|Torstraße|Potsdamer Platz|Warschauer Straße|Hermannplatz|Kottbusser Tor", street, "|")
		nd = split("Mitte|Friedrichshain-Kreuzberg|Pankow|Charlottenburg-Wilmersdorf|Spandau|Steglitz-Zehlendorf|Tempelhof-Schöneberg|Neukölln|Treptow-Köpenick|Marzahn-Hellersdorf|Lichtenberg|Reinickendorf", district, "|")
		nt = split("street|crossing|ptz|entrance|platform|parking|school|park|bridge|tunnel", tag, "|")
		nv = split("north|south|east|west", side, "|")
		print "id,name,main_url,sub_url,username,password,latitude,longitude,tags,site,district,retention_class,transport,enabled"
		line = 2
		for (id = 1; id <= rows; id++) {
			s = street[int(rand() * ns) + 1]
			if (id % 7 == 0)
				name = "\"" s ", " side[id % 4 + 1] " " id "\""
			else if (id % 11 == 0)
				name = "\"" s " \"\"Cam " id "\"\"\""
			else
				name = s " " id
			ip = "10." int(id / 65536) "." int(id / 256) % 256 "." id % 256
			main = "rtsp://" ip ":554/Streaming/Channels/101"
			if (line == bad)
				main = "ftp://" ip "/stream"
			suburl = (id % 3) ? "rtsp://" ip ":554/Streaming/Channels/102" : ""
			if (id % 20 == 0) {
				lat = ""; lon = ""
			} else {
				lat = sprintf("%.7f", 52.52 + (rand() - 0.5) * 0.4)
				lon = sprintf("%.7f", 13.405 + (rand() - 0.5) * 0.7)
			}
			t1 = tag[int(rand() * nt) + 1]
			t2 = tag[int(rand() * nt) + 1]
			tags = (t1 == t2) ? t1 : t1 ";" t2
			split_tags = (line % 1000 == 500 && t1 != t2)
			if (split_tags)
				tags = "\"" t1 ";\n" t2 "\""
			site = "depot-" (id % 40)
			d = district[id % nd + 1]
			ret = (id % 5 == 0) ? "long" : ""
			tr = (id % 9 == 0) ? "udp" : (id % 2 ? "tcp" : "")
			en = (id % 50 == 0) ? "false" : "true"
			printf "%d,%s,%s,%s,admin,Secr3t-%d-%d,%s,%s,%s,%s,%s,%s,%s,%s\n", id, name, main, suburl, id, int(rand() * 100000), lat, lon, tags, site, d, ret, tr, en
			line += 1 + split_tags
		}
	}'
}

# timed_import LABEL OUTFILE ARGS...: runs nvrctl cameras import, prints
# and checks the wall time.
timed_import() {
	local label=$1 out=$2 t0 t1 secs
	shift 2
	t0=$(date +%s.%N)
	expect_exit 0 "$out" "$BIN/nvrctl" cameras import "$@"
	t1=$(date +%s.%N)
	secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
	echo "$label: $ROWS cameras in $secs s ($(cat "$out"))"
	awk -v s="$secs" -v l="$LIMIT_S" 'BEGIN { exit !(s < l) }' ||
		fail "$label took $secs s, limit $LIMIT_S s"
}

gen_csv 0 >cams.csv
[[ $(grep -c 'rtsp://' cams.csv) -eq $ROWS ]] || fail "generator wrote the wrong number of rows"

timed_import "CSV import" out_csv cams.csv --data d1
expect_grep "^imported $ROWS cameras \\($ROWS added, 0 updated, 0 removed\\) in [0-9]+\\.[0-9]{2} s$" \
	out_csv "import summary"

"$BIN/nvrctl" cameras list --data d1 >list1
[[ $(wc -l <list1) -eq $ROWS ]] || fail "list shows $(wc -l <list1) lines, expected $ROWS"
! grep -q 'Secr3t' list1 || fail "list shows passwords"
[[ $(grep -c $'^7\tenabled\t[^\t]*, west 7\tNeukölln\t' list1) -eq 1 ]] || fail "camera 7 is not listed as generated"
[[ $(grep -c $'^11\tenabled\t[^\t]* "Cam 11"\t' list1) -eq 1 ]] || fail "camera 11 (quotes in its name) is not listed as generated"

expect_exit 0 out_show "$BIN/nvrctl" cameras show 1234 --data d1
expect_grep '^password: +\(set\)$' out_show "show hides the password"
! grep -q 'Secr3t' out_show || fail "show prints the password"

"$BIN/nvrctl" cameras export --format json --data d1 cams.json
! grep -q 'Secr3t' cams.json || fail "a plain JSON export holds passwords"
[[ $(grep -c '"id":' cams.json) -eq $ROWS ]] || fail "JSON export lacks cameras"

timed_import "JSON import" out_json cams.json --data d2
expect_grep "^imported $ROWS cameras \\($ROWS added" out_json "JSON import summary"

"$BIN/nvrctl" cameras export --data d1 a.csv
"$BIN/nvrctl" cameras export --data d2 b.csv
cmp a.csv b.csv || fail "CSV exports of the CSV import and of its JSON round trip differ"
[[ $(wc -l <a.csv) -gt $ROWS ]] || fail "CSV export too short"

# The bad row on line 12345 (after two-line tag cells on lines 500, 1500...).
gen_csv "$BAD_LINE" >bad.csv
[[ $(sed -n "${BAD_LINE}p" bad.csv) == *ftp://* ]] || fail "generator put the bad row elsewhere"
"$BIN/nvrctl" cameras export --with-credentials --data d1 before.csv
expect_exit 1 out_bad "$BIN/nvrctl" cameras import bad.csv --replace --data d1
expect_grep "^bad\\.csv:$BAD_LINE: main_url" out_bad "the refusal names line $BAD_LINE"
expect_grep '^nothing imported$' out_bad "the refusal says nothing was imported"
"$BIN/nvrctl" cameras export --with-credentials --data d1 after.csv
cmp before.csv after.csv || fail "a refused import changed the registry"
[[ $(grep -c 'Secr3t' after.csv) -eq $ROWS ]] || fail "credentials missing from a --with-credentials export"
echo "ok: $ROWS cameras imported as CSV and JSON, listed, exported identically; bad line $BAD_LINE refused"
