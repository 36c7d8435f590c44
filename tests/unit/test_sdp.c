/*
 * test_sdp.c - the SDP parser (nvr/sdp.c) on real-world descriptions: the
 * H.264 and H.265 SDPs GStreamer's RTSP server (rtph264pay, rtph265pay)
 * sends, and an IP camera's with a session-level control URL and an audio
 * track. Parameter sets are checked byte for byte against values decoded
 * outside this project (Python's base64 module).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "sdp.h"

/* gst-rtsp-server 1.22, x264enc ! rtph264pay, as received by DESCRIBE */
static const char gst_h264[] =
	"v=0\r\n"
	"o=- 14000932457434151857 1 IN IP4 127.0.0.1\r\n"
	"s=Session streamed with GStreamer\r\n"
	"i=rtsp-server\r\n"
	"t=0 0\r\n"
	"a=tool:GStreamer\r\n"
	"a=type:broadcast\r\n"
	"a=control:*\r\n"
	"a=range:npt=0-\r\n"
	"m=video 0 RTP/AVP 96\r\n"
	"c=IN IP4 0.0.0.0\r\n"
	"b=AS:2097\r\n"
	"a=rtpmap:96 H264/90000\r\n"
	"a=framerate:30\r\n"
	"a=fmtp:96 packetization-mode=1;sprop-parameter-sets=Z0LAFdkBQfsBagwMDUoAAAMAAgAAAwB5HixckA==,aMuMsg==;profile-level-id=42c015;level-asymmetry-allowed=1\r\n"
	"a=control:stream=0\r\n"
	"a=ts-refclk:local\r\n"
	"a=mediaclk:sender\r\n"
	"a=ssrc:2786044319 cname:user2165902891@host-35078b13\r\n";

static const uint8_t gst_h264_params[] = {
	0, 0, 0, 1,
	0x67, 0x42, 0xc0, 0x15, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x6a, 0x0c, 0x0c,
	0x0d, 0x4a, 0x00, 0x00, 0x03, 0x00, 0x02, 0x00, 0x00, 0x03, 0x00, 0x79,
	0x1e, 0x2c, 0x5c, 0x90,
	0, 0, 0, 1,
	0x68, 0xcb, 0x8c, 0xb2,
};

/* gst-rtsp-server 1.22, x265enc ! rtph265pay */
static const char gst_h265[] =
	"v=0\r\n"
	"o=- 15484029166814403258 1 IN IP4 127.0.0.1\r\n"
	"s=Session streamed with GStreamer\r\n"
	"i=rtsp-server\r\n"
	"t=0 0\r\n"
	"a=tool:GStreamer\r\n"
	"a=type:broadcast\r\n"
	"a=control:*\r\n"
	"a=range:npt=0-\r\n"
	"m=video 0 RTP/AVP 96\r\n"
	"c=IN IP4 0.0.0.0\r\n"
	"a=rtpmap:96 H265/90000\r\n"
	"a=framerate:30\r\n"
	"a=fmtp:96 sprop-vps=QAEMAf//BAgAAAMAmAgAAAMAAD+SgJA=;sprop-sps=QgEBBAgAAAMAmAgAAAMAAD+QAUEB4ilLJUkmV/+AAIAAtQYGBgQAAAMABAAAAwB4IA==;sprop-pps=RAHBcoYMRiQ=\r\n"
	"a=control:stream=0\r\n"
	"a=ts-refclk:local\r\n"
	"a=mediaclk:sender\r\n"
	"a=ssrc:1396693702 cname:user264127373@host-1031be6e\r\n";

static const uint8_t h265_vps[] = {
	0x40, 0x01, 0x0c, 0x01, 0xff, 0xff, 0x04, 0x08, 0x00, 0x00, 0x03, 0x00,
	0x98, 0x08, 0x00, 0x00, 0x03, 0x00, 0x00, 0x3f, 0x92, 0x80, 0x90,
};
static const uint8_t h265_sps[] = {
	0x42, 0x01, 0x01, 0x04, 0x08, 0x00, 0x00, 0x03, 0x00, 0x98, 0x08, 0x00,
	0x00, 0x03, 0x00, 0x00, 0x3f, 0x90, 0x01, 0x41, 0x01, 0xe2, 0x29, 0x4b,
	0x25, 0x49, 0x26, 0x57, 0xff, 0x80, 0x00, 0x80, 0x00, 0xb5, 0x06, 0x06,
	0x06, 0x04, 0x00, 0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0x78,
	0x20,
};
static const uint8_t h265_pps[] = {
	0x44, 0x01, 0xc1, 0x72, 0x86, 0x0c, 0x46, 0x24,
};

/* A typical IP camera (Hikvision-style): absolute control URLs, a
 * session-level control, LF-only lines would also do; spaces after ';' in
 * fmtp; a G.711 audio track after the video. */
static const char ipcam[] =
	"v=0\r\n"
	"o=- 1700000000000000 1700000000000000 IN IP4 192.168.1.64\r\n"
	"s=Media Presentation\r\n"
	"e=NONE\r\n"
	"b=AS:5100\r\n"
	"t=0 0\r\n"
	"a=control:rtsp://192.168.1.64:554/Streaming/Channels/101/?transportmode=unicast\r\n"
	"m=video 0 RTP/AVP 96\r\n"
	"c=IN IP4 0.0.0.0\r\n"
	"b=AS:5000\r\n"
	"a=recvonly\r\n"
	"a=x-dimensions:1920,1080\r\n"
	"a=control:rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=1?transportmode=unicast\r\n"
	"a=rtpmap:96 H264/90000\r\n"
	"a=fmtp:96 profile-level-id=420029; packetization-mode=1; sprop-parameter-sets=Z00AKpWoHgCJ+WbgICAoAAADAAgAAAMBlCA=,aO48gA==\r\n"
	"m=audio 0 RTP/AVP 8\r\n"
	"c=IN IP4 0.0.0.0\r\n"
	"b=AS:50\r\n"
	"a=recvonly\r\n"
	"a=control:rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=2?transportmode=unicast\r\n"
	"a=rtpmap:8 PCMA/8000\r\n"
	"a=Media_header:MEDIAINFO=494D4B48010100000400010010710110401F000000FA000000000000000000000000000000000000;\r\n"
	"a=appversion:1.0\r\n";

static const uint8_t ipcam_params[] = {
	0, 0, 0, 1,
	0x67, 0x4d, 0x00, 0x2a, 0x95, 0xa8, 0x1e, 0x00, 0x89, 0xf9, 0x66, 0xe0,
	0x20, 0x20, 0x28, 0x00, 0x00, 0x03, 0x00, 0x08, 0x00, 0x00, 0x03, 0x01,
	0x94, 0x20,
	0, 0, 0, 1,
	0x68, 0xee, 0x3c, 0x80,
};

static struct sdp_session sess;   /* large: not on the stack */

Test(sdp, gstreamer_h264)
{
	cr_assert_eq(sdp_parse(gst_h264, strlen(gst_h264), &sess), 0);
	cr_assert_str_eq(sess.control, "*");
	cr_assert_eq(sess.media_count, 1);
	const struct sdp_media *m = sdp_find_video(&sess);
	cr_assert_eq(m, &sess.media[0]);
	cr_assert_str_eq(m->type, "video");
	cr_assert_eq(m->payload_type, 96);
	cr_assert_eq(m->codec, STG_CODEC_H264);
	cr_assert_eq(m->clock_rate, 90000);
	cr_assert_str_eq(m->control, "stream=0");
	cr_assert_eq(m->packetization_mode, 1);
	cr_assert_eq(m->param_sets_len, sizeof gst_h264_params);
	cr_assert(!memcmp(m->param_sets, gst_h264_params, sizeof gst_h264_params));
}

Test(sdp, gstreamer_h265_sets_in_vps_sps_pps_order)
{
	cr_assert_eq(sdp_parse(gst_h265, strlen(gst_h265), &sess), 0);
	const struct sdp_media *m = sdp_find_video(&sess);
	cr_assert(m);
	cr_assert_eq(m->codec, STG_CODEC_H265);
	cr_assert_eq(m->clock_rate, 90000);
	cr_assert_eq(m->packetization_mode, 0);
	uint8_t want[256];
	size_t n = 0;
	const struct { const uint8_t *p; size_t len; } sets[] = {
		{ h265_vps, sizeof h265_vps }, { h265_sps, sizeof h265_sps },
		{ h265_pps, sizeof h265_pps },
	};
	for (int i = 0; i < 3; i++) {
		memcpy(want + n, "\0\0\0\1", 4);
		memcpy(want + n + 4, sets[i].p, sets[i].len);
		n += 4 + sets[i].len;
	}
	cr_assert_eq(m->param_sets_len, n);
	cr_assert(!memcmp(m->param_sets, want, n));

	/* the same fmtp with the parameters in another order gives the same */
	static char reordered[2048];
	snprintf(reordered, sizeof reordered,
	         "v=0\nm=video 0 RTP/AVP 97\na=rtpmap:97 h265/90000\n"
	         "a=fmtp:97 sprop-pps=RAHBcoYMRiQ=; sprop-sps=QgEBBAgAAAMAmAgAAAMAAD+QAUEB4ilLJUkmV/+AAIAAtQYGBgQAAAMABAAAAwB4IA==; "
	         "sprop-vps=QAEMAf//BAgAAAMAmAgAAAMAAD+SgJA=\n");
	cr_assert_eq(sdp_parse(reordered, strlen(reordered), &sess), 0);
	m = sdp_find_video(&sess);
	cr_assert(m);
	cr_assert_eq(m->codec, STG_CODEC_H265, "codec names are case-insensitive");
	cr_assert_eq(m->payload_type, 97);
	cr_assert_eq(m->param_sets_len, n);
	cr_assert(!memcmp(m->param_sets, want, n));
}

Test(sdp, ip_camera_with_session_control_and_audio)
{
	cr_assert_eq(sdp_parse(ipcam, strlen(ipcam), &sess), 0);
	cr_assert_str_eq(sess.control,
	                 "rtsp://192.168.1.64:554/Streaming/Channels/101/?transportmode=unicast");
	cr_assert_eq(sess.media_count, 2);
	const struct sdp_media *v = &sess.media[0], *a = &sess.media[1];
	cr_assert_eq(sdp_find_video(&sess), v);
	cr_assert_str_eq(v->control,
	                 "rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=1?transportmode=unicast");
	cr_assert_eq(v->codec, STG_CODEC_H264);
	cr_assert_eq(v->packetization_mode, 1);
	cr_assert_eq(v->param_sets_len, sizeof ipcam_params);
	cr_assert(!memcmp(v->param_sets, ipcam_params, sizeof ipcam_params));
	cr_assert_str_eq(a->type, "audio");
	cr_assert_eq(a->payload_type, 8);
	cr_assert_eq(a->codec, STG_CODEC_UNKNOWN);
	cr_assert_eq(a->clock_rate, 8000);
	cr_assert_str_eq(a->control,
	                 "rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=2?transportmode=unicast");
	cr_assert_eq(a->param_sets_len, 0);
}

Test(sdp, audio_first_then_video)
{
	const char *t = "v=0\ns=x\nm=audio 0 RTP/AVP 0\na=control:track1\n"
	                "m=video 0 RTP/AVP 98 96\na=rtpmap:96 H264/90000\n"
	                "a=rtpmap:98 H265/90000\na=control:track2\n";
	cr_assert_eq(sdp_parse(t, strlen(t), &sess), 0);
	const struct sdp_media *m = sdp_find_video(&sess);
	cr_assert_eq(m, &sess.media[1]);
	/* the first format of the m= line decides */
	cr_assert_eq(m->payload_type, 98);
	cr_assert_eq(m->codec, STG_CODEC_H265);
	cr_assert_str_eq(m->control, "track2");
	cr_assert_str_eq(sess.control, "");
}

Test(sdp, not_sdp)
{
	const char *bad[] = { "", "v=1\n", "o=- 1 1 IN IP4 0.0.0.0\nv=0\n", "RTSP/1.0 200 OK\r\n" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		cr_assert_eq(sdp_parse(bad[i], strlen(bad[i]), &sess), -EBADMSG, "%s", bad[i]);
	/* the length is what counts, not a NUL */
	cr_assert_eq(sdp_parse("v=0\n", 2, &sess), -EBADMSG);
	cr_assert_eq(sdp_parse("v=0", 3, &sess), 0);
	cr_assert_eq(sess.media_count, 0);
	cr_assert_null(sdp_find_video(&sess));
}

Test(sdp, bad_base64_keeps_what_decoded_before_it)
{
	const char *t = "v=0\nm=video 0 RTP/AVP 96\na=rtpmap:96 H264/90000\n"
	                "a=fmtp:96 sprop-parameter-sets=Z00AKpWoHgCJ+WbgICAoAAADAAgAAAMBlCA=,aO4!gA==,aO48gA==\n";
	cr_assert_eq(sdp_parse(t, strlen(t), &sess), 0);
	const struct sdp_media *m = sdp_find_video(&sess);
	cr_assert(m);
	/* the SPS only */
	cr_assert_eq(m->param_sets_len, 30);
	cr_assert(!memcmp(m->param_sets, ipcam_params, 30));
}

Test(sdp, media_past_the_limit_are_ignored)
{
	static char t[8192];
	size_t n = (size_t)snprintf(t, sizeof t, "v=0\n");
	for (int i = 0; i < SDP_MAX_MEDIA + 3; i++)
		n += (size_t)snprintf(t + n, sizeof t - n,
		                      "m=audio 0 RTP/AVP 0\na=control:a%d\n", i);
	n += (size_t)snprintf(t + n, sizeof t - n,
	                      "m=video 0 RTP/AVP 96\na=rtpmap:96 H264/90000\na=control:v\n");
	cr_assert_eq(sdp_parse(t, n, &sess), 0);
	cr_assert_eq(sess.media_count, SDP_MAX_MEDIA);
	cr_assert_str_eq(sess.media[SDP_MAX_MEDIA - 1].control, "a7");
	cr_assert_null(sdp_find_video(&sess));
	cr_assert_str_eq(sess.control, "", "attributes of dropped media go nowhere");
}

Test(sdp, rtpmap_of_other_payload_types_is_ignored)
{
	const char *t = "v=0\nm=video 0 RTP/AVP 96\na=rtpmap:97 H264/90000\n"
	                "a=fmtp:97 sprop-parameter-sets=aO48gA==\n";
	cr_assert_eq(sdp_parse(t, strlen(t), &sess), 0);
	cr_assert_eq(sess.media[0].codec, STG_CODEC_UNKNOWN);
	cr_assert_eq(sess.media[0].param_sets_len, 0);
	cr_assert_null(sdp_find_video(&sess));
}

Test(sdp, control_too_long_is_left_out)
{
	static char t[2048];
	char longctl[600];
	memset(longctl, 'x', sizeof longctl - 1);
	longctl[sizeof longctl - 1] = '\0';
	int n = snprintf(t, sizeof t, "v=0\nm=video 0 RTP/AVP 96\na=rtpmap:96 H264/90000\n"
	                 "a=control:%s\n", longctl);
	cr_assert_eq(sdp_parse(t, (size_t)n, &sess), 0);
	cr_assert_str_eq(sess.media[0].control, "");
	cr_assert_eq(sess.media[0].codec, STG_CODEC_H264);
}
