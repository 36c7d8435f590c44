#!/usr/bin/python3
"""annexb_au.py - H.264/H.265 Annex B streams split into access units, and
the check of a recording against its source.

    annexb_au.py count --codec h264|h265 FILE
        prints the number of access units in FILE

    annexb_au.py compare --codec C --source FILE --rec REC --list LIST
                         [--t0 US --t1 US] [--fps N]
        checks the frames `nvrctl frames` wrote (REC: their bytes back to
        back; LIST: "time_us size key xxh3" per frame) against the source:
        same number of frames, every frame byte-identical to the source's
        access unit in the same position (or, counted apart as "nal_equal",
        the same NAL units with trailing zero bytes after some of them:
        GStreamer's h265parse keeps a stream's trailing_zero_8bits inside
        the NAL units it sends), key flags on exactly the source's
        IDR/IRAP access units, times strictly increasing, inside [t0, t1]
        when given, and spanning the source's duration at N fps (+-10%).
        Prints one summary line; exit status 0 when everything matches,
        1 otherwise (with the first differences listed).

Access units (ITU-T H.264 7.4.1.2.3, H.265 7.4.2.4.4): a new one starts at
an access unit delimiter, a parameter set, a prefix SEI (and the other
NAL types that may only precede the first slice), or a slice that is the
first of its picture (H.264 first_mb_in_slice == 0, H.265
first_slice_segment_in_pic_flag), whenever the current unit already holds
a slice. The recorder writes every NAL unit with a 4-byte start code, so
source units are compared in that form: NAL units in order, each preceded
by 00 00 00 01, trailing zero bytes (part of the next start code) dropped.
"""
import argparse
import sys

START4 = b"\x00\x00\x00\x01"


def nal_units(data):
    """NAL unit payloads of an Annex B byte string, trailing zeros removed."""
    starts = []
    i = 0
    n = len(data)
    while True:
        j = data.find(b"\x00\x00\x01", i)
        if j < 0:
            break
        starts.append(j + 3)
        i = j + 3
    units = []
    for k, s in enumerate(starts):
        e = starts[k + 1] - 3 if k + 1 < len(starts) else n
        nal = data[s:e].rstrip(b"\x00")
        if nal:
            units.append(nal)
    return units


def h264_info(nal):
    """(is_vcl, starts_picture, begins_au_if_after_vcl, is_key)"""
    t = nal[0] & 0x1F
    if t in (1, 5):
        first = len(nal) > 1 and (nal[1] & 0x80) != 0   # ue(v) == 0 is a single 1 bit
        return True, first, first, t == 5
    return False, False, t in (6, 7, 8, 9, 14, 15, 16, 17, 18), False


def h265_info(nal):
    t = (nal[0] >> 1) & 0x3F
    if t < 32:
        first = len(nal) > 2 and (nal[2] & 0x80) != 0
        return True, first, first, 16 <= t <= 23
    prefix = t in (32, 33, 34, 35, 39) or 41 <= t <= 44 or 48 <= t <= 55
    return False, False, prefix, False


def access_units(data, codec):
    """List of (bytes in 4-byte start code form, is_key)."""
    info = h264_info if codec == "h264" else h265_info
    aus = []
    cur, cur_vcl, cur_key = [], False, False
    for nal in nal_units(data):
        vcl, _, begins, key = info(nal)
        if begins and cur_vcl:
            aus.append((b"".join(cur), cur_key))
            cur, cur_vcl, cur_key = [], False, False
        cur.append(START4 + nal)
        cur_vcl |= vcl
        cur_key |= key
    if cur:
        aus.append((b"".join(cur), cur_key))
    return aus


def read_list(path):
    rows = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if len(parts) != 4 or parts[2] not in ("0", "1") or len(parts[3]) != 16:
                raise ValueError("%s:%d: bad line %r" % (path, lineno, line))
            int(parts[3], 16)
            rows.append((int(parts[0]), int(parts[1]), parts[2] == "1"))
    return rows


def compare(args):
    with open(args.source, "rb") as f:
        src = access_units(f.read(), args.codec)
    with open(args.rec, "rb") as f:
        rec = f.read()
    rows = read_list(args.list)
    problems = []
    if sum(r[1] for r in rows) != len(rec):
        problems.append("list sizes add up to %d bytes, recording has %d"
                        % (sum(r[1] for r in rows), len(rec)))
    if len(rows) != len(src):
        problems.append("%d frames recorded, source has %d access units" % (len(rows), len(src)))
    off = 0
    mismatched = nal_equal = 0
    for i, (t, size, key) in enumerate(rows):
        frame = rec[off:off + size]
        off += size
        if i >= len(src):
            continue
        want, want_key = src[i]
        if frame != want and b"".join(START4 + n for n in nal_units(frame)) == want:
            nal_equal += 1
        elif frame != want:
            mismatched += 1
            if mismatched <= 5:
                problems.append("frame %d: %d bytes differ from source unit of %d bytes"
                                % (i, size, len(want)))
        if key != want_key:
            problems.append("frame %d: key=%d, source key=%d" % (i, key, want_key))
    times = [r[0] for r in rows]
    for i in range(1, len(times)):
        if times[i] <= times[i - 1]:
            problems.append("frame %d: time %d not after %d" % (i, times[i], times[i - 1]))
            break
    if times and args.t0 is not None and (times[0] < args.t0 or times[-1] > args.t1):
        problems.append("times %d..%d outside the recording window %d..%d"
                        % (times[0], times[-1], args.t0, args.t1))
    if len(times) > 1 and args.fps:
        want = (len(times) - 1) * 1e6 / args.fps
        got = times[-1] - times[0]
        if abs(got - want) > 0.1 * want:
            problems.append("frames span %.3f s, source %.3f s" % (got / 1e6, want / 1e6))
    compared = min(len(rows), len(src))
    print("frames=%d source_units=%d identical=%d nal_equal=%d differ=%d keys=%d span_us=%d"
          % (len(rows), len(src), compared - mismatched - nal_equal, nal_equal, mismatched,
             sum(1 for r in rows if r[2]), times[-1] - times[0] if times else 0))
    for p in problems[:10]:
        print("MISMATCH: " + p)
    return 1 if problems else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("count")
    c.add_argument("--codec", choices=("h264", "h265"), required=True)
    c.add_argument("file")
    m = sub.add_parser("compare")
    m.add_argument("--codec", choices=("h264", "h265"), required=True)
    m.add_argument("--source", required=True)
    m.add_argument("--rec", required=True)
    m.add_argument("--list", required=True)
    m.add_argument("--t0", type=int)
    m.add_argument("--t1", type=int)
    m.add_argument("--fps", type=float)
    args = ap.parse_args()
    if args.cmd == "count":
        with open(args.file, "rb") as f:
            print(len(access_units(f.read(), args.codec)))
        return 0
    return compare(args)


if __name__ == "__main__":
    sys.exit(main())
