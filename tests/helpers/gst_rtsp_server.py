#!/usr/bin/python3
"""gst_rtsp_server.py - a real RTSP server (GStreamer's gst-rtsp-server) for
the ingest tests: an independent implementation to record from.

    /usr/bin/python3 tests/helpers/gst_rtsp_server.py --port P
        [--h264 FILE] [--h265 FILE] [--fps N] [--user U --password W]

Mount points /h264 and /h265 serve the given Annex B elementary streams.
Each client gets its own pipeline (not shared), which plays the file once,
in real time, from its first access unit when the client sends PLAY and
then ends (no loop), so what a recorder gets is exactly the file's access
units. Both TCP interleaved and UDP transports are allowed. With
--user/--password the server asks for Digest authentication (RFC 2617, as
GStreamer implements it) and refuses anonymous clients. Prints "ready" on
stdout once it listens on 127.0.0.1:P; runs until SIGTERM or SIGINT.

An elementary stream carries no timestamps, and without them GStreamer
sends the whole file at once with one RTP timestamp. So each file is first
copied (ffmpeg -c copy, same NAL units) into Matroska with FPS (default
25) timestamps in a temporary directory, and served from there. The
payloaders do not add parameter sets (config-interval=0): the fixtures
carry them in front of every key frame already, and repeating them would
change the access units.

Runs under Debian's /usr/bin/python3 (python3-gi, gir1.2-gst-rtsp-server-1.0).
"""
import argparse
import shutil
import signal
import subprocess
import sys
import tempfile

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

LAUNCH = {
    "h264": "( filesrc location={f} ! matroskademux ! h264parse config-interval=0 "
            "! rtph264pay name=pay0 pt=96 config-interval=0 )",
    "h265": "( filesrc location={f} ! matroskademux ! h265parse config-interval=0 "
            "! rtph265pay name=pay0 pt=96 config-interval=0 )",
}
FFMPEG_FORMAT = {"h264": "h264", "h265": "hevc"}
ROLE = "user"


def launch_quote(path):
    """A file name as one quoted value of gst-launch syntax."""
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'


def make_factory(codec, path, auth):
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(LAUNCH[codec].format(f=launch_quote(path)))
    factory.set_shared(False)
    factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP | GstRtsp.RTSPLowerTrans.UDP)
    if auth:
        role = Gst.Structure.new_empty(ROLE)
        role.set_value(GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS, True)
        role.set_value(GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, True)
        factory.add_role_from_structure(role)
    return factory


def remux(codec, path, fps, tmpdir):
    """The elementary stream copied into Matroska with timestamps."""
    out = "%s/%s.mkv" % (tmpdir, codec)
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
                    "-f", FFMPEG_FORMAT[codec], "-framerate", str(fps), "-i", path,
                    "-c", "copy", out], check=True)
    return out


def make_auth(user, password):
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, ROLE)
    auth.add_digest(user, password, token)
    auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
    return auth


def main():
    ap = argparse.ArgumentParser(description="GStreamer RTSP server for the ingest tests")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--h264")
    ap.add_argument("--h265")
    ap.add_argument("--fps", type=float, default=25)
    ap.add_argument("--user")
    ap.add_argument("--password")
    args = ap.parse_args()
    if not args.h264 and not args.h265:
        ap.error("give --h264 and/or --h265")
    if bool(args.user) != bool(args.password):
        ap.error("--user and --password go together")

    tmpdir = tempfile.mkdtemp(prefix="gst-rtsp-")
    try:
        return serve(args, tmpdir)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def serve(args, tmpdir):
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    auth = bool(args.user)
    if auth:
        server.set_auth(make_auth(args.user, args.password))
    mounts = server.get_mount_points()
    for codec in ("h264", "h265"):
        path = getattr(args, codec)
        if path:
            mkv = remux(codec, path, args.fps, tmpdir)
            mounts.add_factory("/" + codec, make_factory(codec, mkv, auth))
    if server.attach(None) == 0:
        print("cannot listen on port %d" % args.port, file=sys.stderr)
        return 1

    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print("ready", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
