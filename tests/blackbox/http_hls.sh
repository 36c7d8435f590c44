#!/usr/bin/env bash
# http_hls.sh - HLS playback of nvrd while it records two simulated cameras
# (1: H.264, 2: H.265, 640x360 at 25 fps, a key frame every 2 s), stopped
# for a few seconds in between so that the footage has a gap:
#   - the VOD playlist of the recorded window follows RFC 8216 (VOD type,
#     ENDLIST, EXTINF rounded within TARGETDURATION, PROGRAM-DATE-TIME on
#     every segment equal to the segment's start) and has an
#     EXT-X-DISCONTINUITY before the first segment after the gap, which
#     starts where /ranges says the second range starts;
#   - every segment is MPEG-TS that ffprobe reads with the right codec,
#     size and as many frames as its EXTINF lasts; camera 2's are HEVC;
#   - `ffmpeg -i <playlist URL> -c copy out.mp4` succeeds and ffprobe finds
#     in out.mp4 as many frames as /ranges reports, within one GOP a range;
#   - the live playlist slides: its media sequence rises between two loads
#     and a segment listed in both has the same number in both;
#   - segment URLs that name no segment answer 400, 404 or 410 (reclaimed);
# then SIGTERM and exit status 0.
set -euo pipefail
# shellcheck source=tests/blackbox/lib.bash
. "$(dirname "$0")/lib.bash"
cd "$TEST_DIR"

SIM_PORT=18695
HTTP_PORT=18696
need_tools curl ffprobe ffmpeg
# shellcheck source=tests/blackbox/http_lib.bash
. "$BLACKBOX_DIR/http_lib.bash"


# m3u8 FILE KIND: checks playlist FILE (KIND vod or live) and writes FILE.json:
# target, seq, disc_seq, segments [{uri, start, end, dur, disc, pdt_ms}].
m3u8() {
	$PY - "$1" "$2" >"$1.json" <<'PYEOF' || fail "playlist $1 is wrong (above)"
import json, re, sys, datetime
lines = open(sys.argv[1]).read().split("\n")
kind = sys.argv[2]
def die(msg):
    sys.stderr.write("%s: %s\n" % (sys.argv[1], msg)); sys.exit(1)
if lines[0] != "#EXTM3U": die("no #EXTM3U")
tags = {}
segs, pdt, dur, disc = [], None, None, False
for l in lines[1:]:
    if not l: continue
    if l.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
        t = datetime.datetime.strptime(l.split(":", 1)[1], "%Y-%m-%dT%H:%M:%S.%fZ")
        pdt = int(t.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000 + 0.5)
    elif l.startswith("#EXTINF:"):
        dur = float(l[8:].rstrip(","))
    elif l == "#EXT-X-DISCONTINUITY":
        disc = True
    elif l.startswith("#"):
        k, _, v = l.partition(":")
        tags[k] = v
    else:
        if pdt is None: die("segment without EXT-X-PROGRAM-DATE-TIME: " + l)
        if dur is None: die("segment without EXTINF: " + l)
        m = re.fullmatch(r"hls/segment\.ts\?start=(\d+)&end=(\d+)", l)
        if not m: die("segment URL " + l)
        start, end = int(m.group(1)), int(m.group(2))
        if pdt != start // 1000: die("PROGRAM-DATE-TIME %d is not the start %d" % (pdt, start))
        if abs(dur - (end - start) / 1e6) > 0.0011: die("EXTINF %s for %d us" % (dur, end - start))
        segs.append({"uri": l, "start": start, "end": end, "dur": dur, "disc": disc, "pdt_ms": pdt})
        pdt, dur, disc = None, None, False
target = int(tags["#EXT-X-TARGETDURATION"])
for s in segs:
    if int(s["dur"] + 0.5) > target: die("EXTINF %s over TARGETDURATION %d" % (s["dur"], target))
    if not 0.5 < s["dur"] <= 12: die("segment of %s s" % s["dur"])
for a, b in zip(segs, segs[1:]):
    if b["start"] < a["end"]: die("segments overlap")
    if b["start"] > a["end"] and not b["disc"]: die("a gap without EXT-X-DISCONTINUITY")
if segs and segs[0]["disc"]: die("DISCONTINUITY before the first segment")
vod = tags.get("#EXT-X-PLAYLIST-TYPE") == "VOD" and "#EXT-X-ENDLIST" in tags
if kind == "vod" and not vod: die("not a VOD playlist with ENDLIST")
if kind == "live" and ("#EXT-X-ENDLIST" in tags or "#EXT-X-PLAYLIST-TYPE" in tags):
    die("a live playlist with ENDLIST or a playlist type")
json.dump({"target": target, "seq": int(tags["#EXT-X-MEDIA-SEQUENCE"]),
           "disc_seq": int(tags.get("#EXT-X-DISCONTINUITY-SEQUENCE", "0")), "segments": segs},
          sys.stdout)
PYEOF
}

# probe FILE: "codec width height frames duration" of the first video stream.
probe() {
	ffprobe -v error -count_frames -select_streams v:0 -of json \
		-show_entries stream=codec_name,width,height,nb_read_frames:format=duration "$1" \
		>"$1.probe" || fail "ffprobe cannot read $1"
	json "$1.probe" '" ".join(str(x) for x in (j["streams"][0]["codec_name"],
		j["streams"][0]["width"], j["streams"][0]["height"],
		j["streams"][0]["nb_read_frames"], j["format"]["duration"]))'
}

# Footage, a gap of a few seconds (nvrd stopped), footage again.
start_nvrd_api 2
sleep 9
stop_nvrd
mv nvrd.log nvrd1.log
sleep 3
start_nvrd_api 2
sleep 28

now=$(date +%s%3N)
fetch ranges.json "/cameras/1/ranges?from=$((now - 120000))&to=$now" 200
nranges=$(json ranges.json 'len(j["ranges"])')
((nranges >= 2)) || fail "no gap in the recording: $nranges range(s)"
from=$(json ranges.json 'j["ranges"][0]["start_ms"]')
to=$(json ranges.json 'j["ranges"][-1]["end_ms"]')
second=$(json ranges.json 'j["ranges"][1]["start_ms"]')
recorded_ms=$(json ranges.json 'sum(r["end_ms"] - r["start_ms"] for r in j["ranges"])')

# VOD across the gap.
vod="/cameras/1/hls.m3u8?from=$from&to=$to"
fetch vod.m3u8 "$vod" 200
m3u8 vod.m3u8 vod
nseg=$(json vod.m3u8.json 'len(j["segments"])')
ndisc=$(json vod.m3u8.json 'sum(s["disc"] for s in j["segments"])')
((ndisc == nranges - 1)) || fail "$ndisc discontinuities for $nranges ranges"
[[ $(json vod.m3u8.json '[s["pdt_ms"] for s in j["segments"] if s["disc"]][0]') == "$second" ]] ||
	fail "the first segment after the gap does not start at the second range ($second)"
[[ $(json vod.m3u8.json 'j["segments"][0]["pdt_ms"]') == "$from" ]] ||
	fail "the first segment does not start at the first range ($from)"
listed_ms=$(json vod.m3u8.json 'int(sum(s["dur"] for s in j["segments"]) * 1000 + 0.5)')
echo "VOD: $nseg segments, $ndisc discontinuity, ${listed_ms} ms listed, ${recorded_ms} ms recorded"
((listed_ms <= recorded_ms && recorded_ms - listed_ms <= 2000 * nranges)) ||
	fail "segments last $listed_ms ms, ranges $recorded_ms ms"

# Every segment is MPEG-TS with the frames its EXTINF announces.
total=0 i=0
while read -r uri want; do
	fetch "seg$i.ts" "/cameras/1/$uri" 200
	read -r codec w h frames pdur < <(probe "seg$i.ts")
	[[ $codec == h264 && $w == 640 && $h == 360 ]] || fail "segment $i: $codec ${w}x$h"
	((frames >= want - 1 && frames <= want + 1)) ||
		fail "segment $i: $frames frames, its EXTINF says $want (ffprobe: $pdur s)"
	total=$((total + frames)) i=$((i + 1))
done < <(json vod.m3u8.json '"\n".join("%s %d" % (s["uri"], round(s["dur"] * 25)) for s in j["segments"])')
((i == nseg)) || fail "$i segments fetched of $nseg"
echo "VOD segments: $total frames in $nseg segments"

# ffmpeg reads the playlist over HTTP and copies it into an MP4.
ffmpeg -nostdin -v error -headers "$AUTH_HEADER"$'\r\n' -i "$API$vod" -c copy out.mp4 \
	2>ffmpeg.log ||
	{ cat ffmpeg.log >&2; fail "ffmpeg could not copy the HLS playlist into out.mp4"; }
read -r codec w h frames pdur < <(probe out.mp4)
want=$((recorded_ms * 25 / 1000))
echo "out.mp4: $codec ${w}x$h, $frames frames, $pdur s (ranges: $want frames)"
[[ $codec == h264 && $w == 640 && $h == 360 ]] || fail "out.mp4: $codec ${w}x$h"
((frames == total)) || fail "out.mp4 has $frames frames, the segments $total"
((frames <= want && frames >= want - 50 * nranges)) ||
	fail "out.mp4 has $frames frames, /ranges says $want (one GOP is 50)"

# Camera 2 is H.265: its segments are HEVC in MPEG-TS.
fetch vod2.m3u8 "/cameras/2/hls.m3u8?from=$from&to=$to" 200
m3u8 vod2.m3u8 vod
uri=$(json vod2.m3u8.json 'j["segments"][0]["uri"]')
fetch seg2.ts "/cameras/2/$uri" 200
read -r codec w h frames pdur < <(probe seg2.ts)
[[ $codec == hevc && $w == 640 && $h == 360 && $frames -gt 0 ]] ||
	fail "camera 2 segment: $codec ${w}x$h $frames frames"

# Live: the window slides, and a segment keeps its sequence number.
fetch live1.m3u8 "/cameras/1/hls.m3u8?live=1" 200
m3u8 live1.m3u8 live
sleep 5
fetch live2.m3u8 "/cameras/1/hls.m3u8?live=1" 200
m3u8 live2.m3u8 live
seq1=$(json live1.m3u8.json 'j["seq"]')
seq2=$(json live2.m3u8.json 'j["seq"]')
echo "live: media sequence $seq1 -> $seq2, $(json live2.m3u8.json 'len(j["segments"])') segments"
((seq2 > seq1)) || fail "live media sequence did not rise ($seq1 -> $seq2)"
$PY - live1.m3u8.json live2.m3u8.json <<'PYEOF' || fail "live reloads disagree"
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
na = {s["uri"]: a["seq"] + i for i, s in enumerate(a["segments"])}
nb = {s["uri"]: b["seq"] + i for i, s in enumerate(b["segments"])}
common = set(na) & set(nb)
assert common, "no segment in both loads"
for u in common:
    assert na[u] == nb[u], "%s: number %d, then %d" % (u, na[u], nb[u])
assert b["segments"][-1]["end"] > a["segments"][-1]["end"], "no newer segment"
PYEOF
uri=$(json live2.m3u8.json 'j["segments"][-1]["uri"]')
fetch live.ts "/cameras/1/$uri" 200
probe live.ts >/dev/null

# Segment URLs that name no segment.
start=$(json vod.m3u8.json 'j["segments"][0]["start"]')
expect_param "/cameras/1/hls/segment.ts?end=$start" 400 start "missing start"
expect_param "/cameras/1/hls/segment.ts?start=$start" 400 end "missing end"
expect_param "/cameras/1/hls/segment.ts?start=$start&end=$start" 400 end "empty segment"
expect_param "/cameras/1/hls/segment.ts?start=$((start + 1))&end=$((start + 4000000))" 404 start \
	"a segment not starting at a key frame"
expect_param "/cameras/1/hls/segment.ts?start=1000000&end=4000000" 410 start \
	"footage older than the oldest"
expect_param "/cameras/999/hls/segment.ts?start=$start&end=$((start + 4000000))" 404 id \
	"camera 999"
expect_param "/cameras/1/hls.m3u8?to=$to" 400 from "VOD without from"
fetch none.json "/cameras/1/hls.m3u8?from=$((now - 7200000))&to=$((now - 3600000))" 404

# Playlist requests are audited as playback; segments are not, one by one.
fetch audit.json "/audit?limit=1000" 200
$PY - audit.json "$from" "$to" <<'PYEOF' || fail "HLS playlists not audited as playback"
import json, sys
e = [x for x in json.load(open(sys.argv[1]))["entries"] if x["action"] == "playback"]
d = [x["detail"] for x in e]
assert any(x.get("format") == "hls" and x.get("camera") == 1 and x.get("from_ms") == int(sys.argv[2])
           and x.get("to_ms") == int(sys.argv[3]) for x in d), d
assert any(x.get("format") == "hls" and x.get("live") for x in d), d
assert len(d) <= 8, "%d playback entries: segments audited one by one?" % len(d)
PYEOF

# Nothing else was lost: both cameras still record.
fetch health.json /health 200
[[ $(json health.json 'j["streaming"]') == 2 ]] || fail "cameras stopped streaming"
stop_nvrd
echo "ok"
