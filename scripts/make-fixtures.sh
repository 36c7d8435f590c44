#!/usr/bin/env bash
# make-fixtures.sh - generates the video fixtures the ingest tests, the camera
# simulator and the ingest benchmark stream, with Debian's ffmpeg (libx264,
# libx265). Nothing large is committed: fixtures are made at build or test
# time and cached by their parameters.
#
#   scripts/make-fixtures.sh OUTDIR [SECONDS [KBPS [FPS [SIZE]]]]
#
# Writes OUTDIR/h264-S-K-F-WxH.264 and OUTDIR/h265-S-K-F-WxH.265 (Annex B
# elementary streams) and prints their two paths, one per line. Defaults:
# 10 s, 1000 kbit/s, 25 fps, 640x360. Like most cameras' streams they have no
# B-frames, a key frame every 2 s (with SPS/PPS, and VPS for H.265, in front
# of every key frame) and a constant frame rate.
set -euo pipefail

out=${1:?usage: make-fixtures.sh OUTDIR [SECONDS [KBPS [FPS [SIZE]]]]}
seconds=${2:-10}
kbps=${3:-1000}
fps=${4:-25}
size=${5:-640x360}
gop=$((fps * 2))
mkdir -p "$out"

tag="$seconds-$kbps-$fps-$size"
h264="$out/h264-$tag.264"
h265="$out/h265-$tag.265"
src=(-hide_banner -loglevel error -y -f lavfi -i "testsrc2=size=$size:rate=$fps" -t "$seconds"
     -pix_fmt yuv420p -b:v "${kbps}k" -maxrate "${kbps}k" -bufsize "$((kbps * 2))k")

if [[ ! -s $h264 ]]; then
	ffmpeg "${src[@]}" -c:v libx264 -preset veryfast -profile:v main -bf 0 \
	  -g "$gop" -keyint_min "$gop" -sc_threshold 0 \
	  -x264-params repeat-headers=1 -f h264 "$h264.tmp"
	mv "$h264.tmp" "$h264"
fi
if [[ ! -s $h265 ]]; then
	ffmpeg "${src[@]}" -c:v libx265 -preset veryfast \
	  -x265-params "bframes=0:keyint=$gop:min-keyint=$gop:scenecut=0:repeat-headers=1:log-level=error" \
	  -f hevc "$h265.tmp"
	mv "$h265.tmp" "$h265"
fi
echo "$h264"
echo "$h265"
