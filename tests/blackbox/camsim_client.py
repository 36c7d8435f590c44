#!/usr/bin/env python3
"""camsim_client.py - an independent RTSP client that checks what
nvr-camsim sends, byte for byte, against the fixture file it serves.

Used by tests/blackbox/camsim_*.sh (not run by the test runner itself).

  camsim_client.py URL --fixture FILE [--transport tcp|udp] [--seconds S]
                   [--user U --password P] [--pause AT:FOR] [--rcvbuf BYTES]
                   [--corrupt] [--reorder] [--expect-status CODE]

It speaks RTSP itself (Digest MD5 from hashlib), then checks:
  - SDP: rtpmap codec/90000, a=control, sprop parameter sets equal to the
    fixture's first VPS/SPS/PPS;
  - SETUP/PLAY: ssrc and timeout=60 in the replies; the first RTP packet
    has the RTP-Info seq and rtptime;
  - RTP: version 2, payload type 96, the SSRC; sequence numbers without
    gaps; one marker per frame on its last packet; timestamps 90000/fps
    apart (a jump only where frames were skipped, always onto a key frame);
  - payloads: depacketized (single NAL, FU-A / FU) frame k equals fixture
    access unit k mod frames, across the loop; with --corrupt the only
    differences are single bytes flipped (x ^ 0xFF) inside payloads;
    with --reorder adjacent packets arrive swapped and sort back;
  - pacing: about fps frames per second;
  - RTCP: sender reports with the SSRC whose NTP time matches the wall
    clock at which the frame with that RTP timestamp arrived.
Prints one key=value line with what it saw; exits 1 with a message on the
first failed check.
"""
import argparse
import base64
import hashlib
import os
import re
import select
import socket
import struct
import sys
import time

NTP_UNIX = 2208988800


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


# ---- the fixture -------------------------------------------------------------

def split_nals(data):
    """NAL units of Annex B data, without start codes or trailing zeros."""
    starts = [m.end() for m in re.finditer(b"\x00\x00\x01", data)]
    nals = []
    for i, s in enumerate(starts):
        e = starts[i + 1] - 3 if i + 1 < len(starts) else len(data)
        nal = data[s:e].rstrip(b"\x00")
        if nal:
            nals.append(nal)
    return nals


def nal_type(codec, nal):
    return nal[0] & 0x1F if codec == "h264" else (nal[0] >> 1) & 0x3F


def is_vcl(codec, t):
    return 1 <= t <= 5 if codec == "h264" else t <= 31


def is_key(codec, t):
    return t == 5 if codec == "h264" else 16 <= t <= 23


def starts_au(codec, t):
    """Non-VCL NAL units that open a new access unit."""
    if codec == "h264":
        return t in (6, 7, 8, 9) or 14 <= t <= 18
    return t in (32, 33, 34, 35, 39) or 41 <= t <= 44 or 48 <= t <= 55


def first_slice(codec, nal):
    b = nal[1] if codec == "h264" else nal[2]
    return bool(b & 0x80)


def load_fixture(path):
    codec = "h264" if path.endswith(".264") else "h265"
    with open(path, "rb") as f:
        nals = split_nals(f.read())
    aus, cur, seen_vcl = [], [], False
    params = {}
    for nal in nals:
        t = nal_type(codec, nal)
        vcl = is_vcl(codec, t)
        if cur and seen_vcl and ((not vcl and starts_au(codec, t)) or (vcl and first_slice(codec, nal))):
            aus.append(cur)
            cur, seen_vcl = [], False
        seen_vcl |= vcl
        skip = t in ((9, 12) if codec == "h264" else (35, 38))
        if not skip:
            cur.append(nal)
        names = {7: "sps", 8: "pps"} if codec == "h264" else {32: "vps", 33: "sps", 34: "pps"}
        if t in names and names[t] not in params:
            params[names[t]] = nal
    if cur:
        aus.append(cur)
    first_key = next(i for i, au in enumerate(aus) if any(is_key(codec, nal_type(codec, n)) for n in au))
    aus = aus[first_key:]
    keys = [any(is_key(codec, nal_type(codec, n)) for n in au) for au in aus]
    return codec, aus, keys, params


# ---- RTSP ----------------------------------------------------------------------

class Rtsp:
    def __init__(self, url, user, password, rcvbuf):
        m = re.match(r"rtsp://([^/:]+):(\d+)(/.*)$", url)
        if not m:
            fail("bad url " + url)
        self.url = url
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect((m.group(1), int(m.group(2))))
        self.user, self.password = user, password
        self.cseq = 0
        self.buf = b""
        self.challenge = None
        self.interleaved = []      # (channel, payload, arrival time)

    def fill(self, timeout):
        r, _, _ = select.select([self.sock], [], [], timeout)
        if not r:
            return False
        d = self.sock.recv(1 << 16)
        if not d:
            raise EOFError
        self.buf += d
        return True

    def next_item(self, timeout=5.0):
        """The next response (status, headers, body) or interleaved frame."""
        deadline = time.time() + timeout
        while True:
            if self.buf[:1] == b"$" and len(self.buf) >= 4:
                ch, n = self.buf[1], struct.unpack(">H", self.buf[2:4])[0]
                if len(self.buf) >= 4 + n:
                    payload = self.buf[4:4 + n]
                    self.buf = self.buf[4 + n:]
                    return ("frame", ch, payload)
            elif self.buf[:1] not in (b"", b"$"):
                end = self.buf.find(b"\r\n\r\n")
                if end >= 0:
                    head = self.buf[:end].decode()
                    lines = head.split("\r\n")
                    hdrs = {}
                    for line in lines[1:]:
                        k, v = line.split(":", 1)
                        hdrs[k.strip().lower()] = v.strip()
                    blen = int(hdrs.get("content-length", "0"))
                    if len(self.buf) >= end + 4 + blen:
                        body = self.buf[end + 4:end + 4 + blen]
                        self.buf = self.buf[end + 4 + blen:]
                        return ("reply", int(lines[0].split()[1]), hdrs, body)
            left = deadline - time.time()
            if left <= 0 or not self.fill(left):
                fail("no answer from the server")

    def auth_header(self, method, uri):
        realm, nonce = self.challenge
        ha1 = hashlib.md5(f"{self.user}:{realm}:{self.password}".encode()).hexdigest()
        ha2 = hashlib.md5(f"{method}:{uri}".encode()).hexdigest()
        resp = hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()
        return (f'Digest username="{self.user}", realm="{realm}", nonce="{nonce}", '
                f'uri="{uri}", response="{resp}"')

    def request(self, method, uri, headers=None, retry=True):
        self.cseq += 1
        lines = [f"{method} {uri} RTSP/1.0", f"CSeq: {self.cseq}", "User-Agent: camsim_client"]
        if self.challenge and self.user is not None:
            lines.append("Authorization: " + self.auth_header(method, uri))
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        while True:
            item = self.next_item()
            if item[0] == "frame":
                self.interleaved.append((item[1], item[2], time.time()))
                continue
            _, status, hdrs, body = item
            if hdrs.get("cseq") != str(self.cseq):
                fail(f"{method}: CSeq {hdrs.get('cseq')} for request {self.cseq}")
            break
        if status == 401:
            m = re.match(r'Digest realm="([^"]*)", nonce="([^"]*)"', hdrs.get("www-authenticate", ""))
            if not m:
                fail("401 without a Digest challenge: " + hdrs.get("www-authenticate", ""))
            if m.group(1) != "nvr-camsim":
                fail("realm is " + m.group(1))
            if retry and self.user is not None and not self.challenge:
                self.challenge = (m.group(1), m.group(2))
                return self.request(method, uri, headers, retry=False)
        return status, hdrs, body


# ---- RTP -----------------------------------------------------------------------

def depacketize(codec, payloads):
    """NAL units of one frame from its RTP payloads (in sequence order)."""
    nals, frag = [], None
    for p in payloads:
        t = nal_type(codec, p)
        fu_type = 28 if codec == "h264" else 49
        if t != fu_type:
            nals.append(p)
            continue
        hl = 2 if codec == "h264" else 3
        fh = p[hl - 1]
        if fh & 0x80:
            if codec == "h264":
                hdr = bytes([(p[0] & 0xE0) | (fh & 0x1F)])
            else:
                hdr = bytes([(p[0] & 0x81) | ((fh & 0x3F) << 1), p[1]])
            frag = bytearray(hdr)
        if frag is None:
            fail("FU fragment without a start")
        frag += p[hl:]
        if fh & 0x40:
            nals.append(bytes(frag))
            frag = None
    if frag is not None:
        fail("FU without an end in a frame")
    return nals


def parse_rtp(pkt):
    if len(pkt) < 12:
        fail("RTP packet shorter than 12 bytes")
    b0, b1, seq, ts, ssrc = struct.unpack(">BBHII", pkt[:12])
    if b0 != 0x80:
        fail(f"RTP first byte {b0:#x} (version 2, no padding/extension/CSRC expected)")
    if b1 & 0x7F != 96:
        fail(f"payload type {b1 & 0x7F}")
    return seq, ts, ssrc, bool(b1 & 0x80), pkt[12:]


def parse_sr(pkt):
    if len(pkt) < 28 or pkt[1] != 200 or pkt[0] >> 6 != 2:
        return None
    ssrc, msw, lsw, rtp_ts = struct.unpack(">IIII", pkt[4:20])
    return ssrc, msw - NTP_UNIX + lsw / 2 ** 32, rtp_ts


def compare_frame(codec, got, want, corrupt, k):
    """0 when equal; with corrupt, the number of flipped bytes."""
    if len(got) != len(want):
        fail(f"frame {k}: {len(got)} NAL units, fixture has {len(want)}")
    flipped = 0
    for i, (g, w) in enumerate(zip(got, want)):
        if g == w:
            continue
        if not corrupt or len(g) != len(w):
            fail(f"frame {k} NAL {i}: bytes differ from the fixture (len {len(g)} vs {len(w)})")
        for a, b in zip(g, w):
            if a != b:
                if a != b ^ 0xFF:
                    fail(f"frame {k} NAL {i}: a byte changed other than by a flip")
                flipped += 1
    return flipped


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--fixture", required=True)
    ap.add_argument("--transport", default="tcp")
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--fps", type=float, default=25)
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--pause", help="AT:FOR seconds without reading")
    ap.add_argument("--rcvbuf", type=int, default=0)
    ap.add_argument("--stall", type=float, default=0,
                    help="expect one gap of this many seconds 5 s after PLAY")
    ap.add_argument("--corrupt", action="store_true")
    ap.add_argument("--reorder", action="store_true")
    ap.add_argument("--expect-status", type=int, default=200)
    a = ap.parse_args()

    codec, aus, keys, params = load_fixture(a.fixture)
    r = Rtsp(a.url, a.user, a.password, a.rcvbuf)
    st, h, _ = r.request("OPTIONS", a.url)
    if st != 200 or "PLAY" not in h.get("public", ""):
        fail(f"OPTIONS: {st} {h}")
    st, h, sdp = r.request("DESCRIBE", a.url, {"Accept": "application/sdp"})
    if st != a.expect_status:
        fail(f"DESCRIBE answered {st}, expected {a.expect_status}")
    if st != 200:
        print(f"status={st}")
        return
    sdp = sdp.decode()
    rtpmap = "H264/90000" if codec == "h264" else "H265/90000"
    if f"a=rtpmap:96 {rtpmap}" not in sdp:
        fail("SDP without rtpmap " + rtpmap + ":\n" + sdp)
    if codec == "h264":
        m = re.search(r"packetization-mode=1;.*sprop-parameter-sets=([^,;\s]+),([^;\s]+)", sdp)
        sprops = {"sps": m.group(1), "pps": m.group(2)} if m else None
    else:
        m = re.search(r"sprop-vps=([^;\s]+);sprop-sps=([^;\s]+);sprop-pps=([^;\s]+)", sdp)
        sprops = {"vps": m.group(1), "sps": m.group(2), "pps": m.group(3)} if m else None
    if not sprops:
        fail("SDP fmtp without parameter sets:\n" + sdp)
    for k, v in sprops.items():
        if base64.b64decode(v) != params[k]:
            fail(f"sprop {k} differs from the fixture's first {k}")
    control = re.findall(r"a=control:(\S+)", sdp)
    if control[-1] != "track1" or "content-base" not in h:
        fail(f"control {control} content-base {h.get('content-base')}")
    track = h["content-base"] + control[-1]

    udp = None
    if a.transport == "tcp":
        transport = "RTP/AVP/TCP;unicast;interleaved=0-1"
    else:
        while True:
            s1 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s1.bind(("127.0.0.1", 0))
            port = s1.getsockname()[1]
            if port % 2:
                s1.close()
                continue
            s2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s2.bind(("127.0.0.1", port + 1))
            except OSError:
                s1.close()
                continue
            break
        for s in (s1, s2):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        udp = (s1, s2)
        transport = f"RTP/AVP;unicast;client_port={port}-{port + 1}"
    st, h, _ = r.request("SETUP", track, {"Transport": transport})
    if st != 200:
        fail(f"SETUP: {st}")
    m = re.search(r"ssrc=([0-9A-Fa-f]{8})", h.get("transport", ""))
    sess = h.get("session", "")
    if not m or not sess.endswith(";timeout=60"):
        fail(f"SETUP reply transport={h.get('transport')} session={sess}")
    ssrc = int(m.group(1), 16)
    session = sess.split(";")[0]
    if udp:
        sp = re.search(r"server_port=(\d+)-(\d+)", h["transport"])
        if not sp:
            fail("UDP SETUP without server_port")
        server = (re.match(r"rtsp://([^/:]+)", a.url).group(1), int(sp.group(2)))
        # an empty receiver report keeps the session alive (and tests the demux)
        udp[1].sendto(struct.pack(">BBHI", 0x80, 201, 1, 0x1234), server)
    st, h, _ = r.request("PLAY", a.url + "/", {"Session": session, "Range": "npt=0.000-"})
    if st != 200:
        fail(f"PLAY: {st}")
    m = re.search(r"seq=(\d+);rtptime=(\d+)", h.get("rtp-info", ""))
    if not m:
        fail("PLAY without RTP-Info seq/rtptime: " + h.get("rtp-info", ""))
    seq0, ts0 = int(m.group(1)), int(m.group(2))
    t_play = time.time()

    # ---- receive ----
    pause_at, pause_for = (float(x) for x in a.pause.split(":")) if a.pause else (None, 0)
    rtp, rtcp = [], []          # (payload, arrival time)
    end = t_play + a.seconds
    paused = False
    closed = False
    for ch, payload, t in r.interleaved:
        (rtp if ch == 0 else rtcp).append((payload, t))
    while time.time() < end:
        if pause_at is not None and not paused and time.time() - t_play >= pause_at:
            time.sleep(pause_for)
            paused = True
            end += pause_for
        if udp:
            rd, _, _ = select.select([udp[0], udp[1], r.sock], [], [], 0.2)
            for s in rd:
                if s is r.sock:
                    try:
                        r.fill(0)
                    except EOFError:
                        closed = True
                    continue
                d = s.recv(65536)
                (rtp if s is udp[0] else rtcp).append((d, time.time()))
            if closed:
                break
        else:
            try:
                r.fill(0.2)
            except EOFError:
                closed = True
                break
            while len(r.buf) >= 4 and r.buf[:1] == b"$":
                n = struct.unpack(">H", r.buf[2:4])[0]
                if len(r.buf) < 4 + n:
                    break
                ch, payload = r.buf[1], r.buf[4:4 + n]
                r.buf = r.buf[4 + n:]
                (rtp if ch == 0 else rtcp).append((payload, time.time()))
            if r.buf[:1] not in (b"", b"$"):
                fail("RTSP bytes inside the interleaved stream: %r" % r.buf[:40])
    elapsed = time.time() - t_play - (pause_for if paused else 0)

    # ---- check ----
    if not rtp:
        fail("no RTP packets")
    pkts = [parse_rtp(p) + (t,) for p, t in rtp]
    if pkts[0][2] != ssrc or any(p[2] != ssrc for p in pkts):
        fail("SSRC differs from the SETUP reply")
    inversions = sum(1 for i in range(1, len(pkts)) if (pkts[i][0] - pkts[i - 1][0]) & 0xFFFF > 0x8000)
    if a.reorder:
        pkts.sort(key=lambda p: (p[0] - seq0) & 0xFFFF)   # no wrap within a test
        # reading stopped at some instant: the last frame may lack the first
        # packet of a swapped pair, so it is left out
        pkts = [p for p in pkts if p[1] != pkts[-1][1]]
    if pkts[0][0] != seq0 or pkts[0][1] != ts0:
        fail(f"first packet seq={pkts[0][0]} ts={pkts[0][1]}, RTP-Info says seq={seq0} rtptime={ts0}")
    for i in range(1, len(pkts)):
        if pkts[i][0] != (pkts[i - 1][0] + 1) & 0xFFFF:
            fail(f"sequence gap: {pkts[i - 1][0]} then {pkts[i][0]}")
    # frames: group by timestamp, marker on the last packet
    frames, cur = [], []
    for p in pkts:
        if cur and p[1] != cur[0][1]:
            if not cur[-1][3]:
                fail(f"frame ts={cur[0][1]} ends without a marker")
            frames.append(cur)
            cur = []
        if cur and cur[-1][3]:
            fail("packets after a marker with the same timestamp")
        cur.append(p)
    if cur and cur[-1][3]:
        frames.append(cur)
    step = 90000 / a.fps
    flipped = skipped = jumps = 0
    arrival = {}
    for f in frames:
        k = round(((f[0][1] - ts0) & 0xFFFFFFFF) / step)
        if abs(((f[0][1] - ts0) & 0xFFFFFFFF) - round(k * step)) > 1:
            fail(f"timestamp {f[0][1]} is not on the 90000/fps grid")
        arrival[f[0][1]] = f[-1][5]
        nals = depacketize(codec, [p[4] for p in f])
        flipped += compare_frame(codec, nals, aus[k % len(aus)], a.corrupt, k)
        f.append(k)
    prev = None
    for f in frames:
        k = f[-1]
        if prev is not None and k != prev + 1:
            if k <= prev:
                fail(f"frame index went from {prev} to {k}")
            if a.stall:
                gap = (k - prev - 1) / a.fps
                if jumps or abs(prev / a.fps - 5) > 0.2 or abs(gap - a.stall) > 0.2:
                    fail(f"stall: frames {prev} to {k} ({gap:.2f} s), expected one gap of "
                         f"{a.stall} s at 5 s")
            elif not keys[k % len(keys)]:
                fail(f"frames skipped from {prev} to {k}, but {k} is not a key frame")
            skipped += k - prev - 1
            jumps += 1
        prev = k
    # pacing
    last_k = frames[-1][-1]
    expect = elapsed * a.fps
    if not a.pause and not closed and not (0.85 * expect - 3 <= last_k + 1 <= 1.1 * expect + 3):
        fail(f"{last_k + 1} frames in {elapsed:.2f} s, expected about {expect:.0f}")
    if not a.pause and not a.stall and jumps:
        fail(f"{jumps} timestamp jumps in a stream that was read all along")
    if a.stall and jumps != 1:
        fail(f"stall: {jumps} gaps in the frames, expected 1")
    if a.corrupt and not flipped:
        fail("--corrupt: no flipped byte seen")
    if a.reorder and not inversions:
        fail("--reorder: no packet arrived out of order")
    if not a.corrupt and not a.reorder and (flipped or inversions):
        fail("unexpected corruption or reordering")
    # RTCP sender reports
    srs = [(parse_sr(p), t) for p, t in rtcp]
    srs = [(s, t) for s, t in srs if s]
    if elapsed > 1 and not srs:
        fail("no RTCP sender report")
    for (s_ssrc, ntp, s_ts), t in srs:
        if s_ssrc != ssrc:
            fail("sender report with another SSRC")
        if s_ts in arrival and not a.pause and abs(arrival[s_ts] - ntp) > 0.5:
            fail(f"sender report NTP {ntp:.3f} vs arrival {arrival[s_ts]:.3f} of its frame")
        if abs(ntp - t) > 2 + (pause_for if a.pause else 0):
            fail(f"sender report NTP {ntp:.3f} far from the wall clock {t:.3f}")
    if not closed:
        r.request("TEARDOWN", a.url + "/", {"Session": session})
    print(f"status=200 frames={len(frames)} last_frame={last_k} packets={len(pkts)} "
          f"seconds={elapsed:.2f} sender_reports={len(srs)} flipped={flipped} "
          f"inversions={inversions} skipped={skipped} jumps={jumps} loops={last_k // len(aus)} "
          f"closed={int(closed)}")


if __name__ == "__main__":
    main()
