/*
 * test_rtsp_auth.c - Basic and Digest authentication (nvr/rtsp_auth.c):
 * the RFC 2617 section 3.5 example, challenge parsing, header generation
 * and the server-side check the camera simulator uses.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "rtsp_auth.h"

#define RFC_REALM "testrealm@host.com"
#define RFC_NONCE "dcd98b7102dd2f0e8b11d0f600bfb0c093"
#define RFC_OPAQUE "5ccc069c403ebaf9f0171e9517f40e41"
#define RFC_RESPONSE "6629fae49393a05397450978507c4ef1"

static const char rfc_challenge[] =
	"Digest\r\n realm=\"" RFC_REALM "\",\r\n qop=\"auth,auth-int\",\r\n"
	" nonce=\"" RFC_NONCE "\",\r\n opaque=\"" RFC_OPAQUE "\"";

Test(rtsp_auth, rfc2617_example_response)
{
	char out[33];
	rtsp_digest_response("Mufasa", RFC_REALM, "Circle Of Life", "GET",
	                     "/dir/index.html", RFC_NONCE, "00000001", "0a4f113b",
	                     "auth", out);
	cr_assert_str_eq(out, RFC_RESPONSE);
	/* one character of the password changes everything */
	rtsp_digest_response("Mufasa", RFC_REALM, "Circle of Life", "GET",
	                     "/dir/index.html", RFC_NONCE, "00000001", "0a4f113b",
	                     "auth", out);
	cr_assert_str_neq(out, RFC_RESPONSE);
	cr_assert_eq(strlen(out), 32);
}

Test(rtsp_auth, digest_without_qop)
{
	/* RFC 2069 form: MD5(HA1:nonce:HA2), computed independently here:
	 * HA1 = MD5("Mufasa:testrealm@host.com:Circle Of Life")
	 *     = 939e7578ed9e3c518a452acee763bce9
	 * HA2 = MD5("GET:/dir/index.html") = 39aff3a2bab6126f332b942af96d3366
	 * MD5("939e...:dcd98b...:39af...") = 670fd8c2df070c60b045671b8b24ff02 */
	char out[33];
	rtsp_digest_response("Mufasa", RFC_REALM, "Circle Of Life", "GET",
	                     "/dir/index.html", RFC_NONCE, NULL, NULL, NULL, out);
	cr_assert_str_eq(out, "670fd8c2df070c60b045671b8b24ff02");
}

Test(rtsp_auth, parses_rfc_challenge)
{
	struct rtsp_auth_challenge ch;
	cr_assert_eq(rtsp_auth_parse_challenge(rfc_challenge, strlen(rfc_challenge), &ch), 0);
	cr_assert_eq(ch.scheme, RTSP_AUTH_DIGEST);
	cr_assert_str_eq(ch.realm, RFC_REALM);
	cr_assert_str_eq(ch.nonce, RFC_NONCE);
	cr_assert_str_eq(ch.opaque, RFC_OPAQUE);
	cr_assert(ch.qop_auth);
	cr_assert(!ch.stale);
}

Test(rtsp_auth, header_reproduces_rfc_example)
{
	struct rtsp_auth_challenge ch;
	char out[512];
	cr_assert_eq(rtsp_auth_parse_challenge(rfc_challenge, strlen(rfc_challenge), &ch), 0);
	int n = rtsp_auth_header(&ch, "Mufasa", "Circle Of Life", "GET",
	                         "/dir/index.html", 1, "0a4f113b", out, sizeof out);
	cr_assert_eq(n, (int)strlen(out));
	cr_assert_str_eq(out,
		"Digest username=\"Mufasa\", realm=\"" RFC_REALM "\", nonce=\"" RFC_NONCE
		"\", uri=\"/dir/index.html\", response=\"" RFC_RESPONSE "\", opaque=\""
		RFC_OPAQUE "\", qop=auth, nc=00000001, cnonce=\"0a4f113b\"");
	/* too small a buffer: -ENOSPC, never a cut header */
	cr_assert_eq(rtsp_auth_header(&ch, "Mufasa", "Circle Of Life", "GET",
	                              "/dir/index.html", 1, "0a4f113b", out, 100), -ENOSPC);
	/* qop=auth needs a client nonce */
	cr_assert_eq(rtsp_auth_header(&ch, "Mufasa", "x", "GET", "/", 1, NULL,
	                              out, sizeof out), -EINVAL);
}

Test(rtsp_auth, camera_style_challenges)
{
	struct rtsp_auth_challenge ch;
	const char *c1 = "Digest realm=\"IP Camera(C1234)\", nonce=\"a8b3c1d2e3f4\", stale=\"FALSE\"";
	cr_assert_eq(rtsp_auth_parse_challenge(c1, strlen(c1), &ch), 0);
	cr_assert_eq(ch.scheme, RTSP_AUTH_DIGEST);
	cr_assert_str_eq(ch.realm, "IP Camera(C1234)");
	cr_assert(!ch.qop_auth && !ch.stale);

	const char *c2 = "digest realm=\"x\",nonce=\"n\",algorithm=MD5,stale=TRUE";
	cr_assert_eq(rtsp_auth_parse_challenge(c2, strlen(c2), &ch), 0);
	cr_assert(ch.stale);

	const char *c3 = "Basic realm=\"Streaming Server\"";
	cr_assert_eq(rtsp_auth_parse_challenge(c3, strlen(c3), &ch), 0);
	cr_assert_eq(ch.scheme, RTSP_AUTH_BASIC);
	cr_assert_str_eq(ch.realm, "Streaming Server");

	/* escaped quote in a quoted string */
	const char *c4 = "Digest realm=\"a\\\"b\", nonce=\"n\"";
	cr_assert_eq(rtsp_auth_parse_challenge(c4, strlen(c4), &ch), 0);
	cr_assert_str_eq(ch.realm, "a\"b");

	/* only the bytes given count: the rest of the buffer is not read */
	const char *c5 = "Digest realm=\"r\", nonce=\"abc\"GARBAGE";
	cr_assert_eq(rtsp_auth_parse_challenge(c5, strlen(c5) - 7, &ch), 0);
	cr_assert_str_eq(ch.nonce, "abc");
}

Test(rtsp_auth, refuses_bad_or_unsupported_challenges)
{
	struct rtsp_auth_challenge ch;
	const char *bad[] = {
		"",
		"Negotiate abc",
		"Digest realm=\"r\"",                                    /* no nonce */
		"Digest nonce=\"n\"",                                    /* no realm */
		"Digest realm=\"r\", nonce=\"n\", algorithm=MD5-sess",
		"Digest realm=\"r\", nonce=\"n\", algorithm=SHA-256",
		"Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\"",
		"Digest realm=\"r, nonce=\"n\"",                         /* unterminated */
		"Digest realm=\"r\" nonce=\"n\"",                         /* no comma */
		("Digest realm=\"rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr"
		 "rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr\", nonce=\"n\""),
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		memset(&ch, 0x5a, sizeof ch);
		cr_assert_eq(rtsp_auth_parse_challenge(bad[i], strlen(bad[i]), &ch), -EINVAL,
		             "accepted: %s", bad[i]);
		cr_assert_eq(ch.scheme, RTSP_AUTH_NONE);
	}
}

Test(rtsp_auth, basic_header_and_check)
{
	struct rtsp_auth_challenge ch = { .scheme = RTSP_AUTH_BASIC };
	char out[256];
	/* RFC 7617 section 2's example */
	int n = rtsp_auth_header(&ch, "Aladdin", "open sesame", "DESCRIBE",
	                         "rtsp://cam/", 1, NULL, out, sizeof out);
	cr_assert_eq(n, (int)strlen(out));
	cr_assert_str_eq(out, "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
	cr_assert(rtsp_auth_check(out, strlen(out), "r", "n", "Aladdin", "open sesame",
	                          "DESCRIBE", true));
	cr_assert(!rtsp_auth_check(out, strlen(out), "r", "n", "Aladdin", "open sesame",
	                           "DESCRIBE", false), "Basic refused unless allowed");
	cr_assert(!rtsp_auth_check(out, strlen(out), "r", "n", "Aladdin", "open sesamE",
	                           "DESCRIBE", true));
	cr_assert(!rtsp_auth_check(out, strlen(out), "r", "n", "aladdin", "open sesame",
	                           "DESCRIBE", true));
	cr_assert_eq(rtsp_auth_header(&ch, "a:b", "p", "GET", "/", 1, NULL, out, sizeof out),
	             -EINVAL, "':' in a Basic user name");
	cr_assert_eq(rtsp_auth_header(&ch, "Aladdin", "open sesame", "GET", "/", 1, NULL,
	                              out, 20), -ENOSPC);
}

static void digest_round_trip(const char *challenge, const char *user,
                              const char *pass)
{
	struct rtsp_auth_challenge ch;
	char out[1024];
	const char *uri = "rtsp://10.0.0.5:554/Streaming/Channels/101";
	cr_assert_eq(rtsp_auth_parse_challenge(challenge, strlen(challenge), &ch), 0);
	for (uint32_t nc = 1; nc <= 3; nc++) {
		int n = rtsp_auth_header(&ch, user, pass, "SETUP", uri, nc, "c0ffee42",
		                         out, sizeof out);
		cr_assert_gt(n, 0);
		cr_assert(rtsp_auth_check(out, (size_t)n, ch.realm, ch.nonce, user, pass,
		                          "SETUP", false), "%s", out);
		/* wrong password, wrong user, other method, other nonce: refused */
		cr_assert(!rtsp_auth_check(out, (size_t)n, ch.realm, ch.nonce, user,
		                           "wrong", "SETUP", false));
		cr_assert(!rtsp_auth_check(out, (size_t)n, ch.realm, ch.nonce, "other",
		                           pass, "SETUP", false));
		cr_assert(!rtsp_auth_check(out, (size_t)n, ch.realm, ch.nonce, user, pass,
		                           "PLAY", false));
		cr_assert(!rtsp_auth_check(out, (size_t)n, ch.realm, "othernonce", user,
		                           pass, "SETUP", false));
		cr_assert(!rtsp_auth_check(out, (size_t)n, "other realm", ch.nonce, user,
		                           pass, "SETUP", false));
		/* a cut header is refused too */
		cr_assert(!rtsp_auth_check(out, (size_t)n - 5, ch.realm, ch.nonce, user,
		                           pass, "SETUP", false));
	}
}

Test(rtsp_auth, digest_check_round_trip)
{
	digest_round_trip("Digest realm=\"cam\", nonce=\"0123456789abcdef\"", "admin", "12345");
	digest_round_trip("Digest realm=\"cam\", nonce=\"0123456789abcdef\", qop=\"auth\"",
	                  "admin", "pa:ss word");
	/* quotes and backslashes in the user name survive escaping */
	digest_round_trip("Digest realm=\"cam\", nonce=\"n1\", qop=\"auth\", opaque=\"o\"",
	                  "we\"ird\\user", "p");
}

Test(rtsp_auth, check_refuses_tampered_response)
{
	struct rtsp_auth_challenge ch;
	char out[512];
	const char *c = "Digest realm=\"cam\", nonce=\"abc\", qop=\"auth\"";
	cr_assert_eq(rtsp_auth_parse_challenge(c, strlen(c), &ch), 0);
	int n = rtsp_auth_header(&ch, "u", "p", "PLAY", "/x", 7, "cn", out, sizeof out);
	cr_assert_gt(n, 0);
	char *resp = strstr(out, "response=\"");
	cr_assert(resp);
	resp += 10;
	resp[0] = resp[0] == '0' ? '1' : '0';
	cr_assert(!rtsp_auth_check(out, (size_t)n, "cam", "abc", "u", "p", "PLAY", false));
	resp[0] = (char)(resp[0] == '0' ? '1' : '0');   /* back: one flip of it */
	/* upper-case hex from a client is still the same response */
	cr_assert_eq(rtsp_auth_parse_challenge(c, strlen(c), &ch), 0);
	n = rtsp_auth_header(&ch, "u", "p", "PLAY", "/x", 7, "cn", out, sizeof out);
	resp = strstr(out, "response=\"") + 10;
	for (int i = 0; i < 32; i++)
		if (resp[i] >= 'a' && resp[i] <= 'f')
			resp[i] = (char)(resp[i] - 'a' + 'A');
	cr_assert(rtsp_auth_check(out, (size_t)n, "cam", "abc", "u", "p", "PLAY", false));
	/* qop without nc or cnonce, other algorithms, garbage: refused */
	const char *bad[] = {
		("Digest username=\"u\", realm=\"cam\", nonce=\"abc\", uri=\"/x\", "
		 "response=\"00000000000000000000000000000000\", qop=auth"),
		("Digest username=\"u\", realm=\"cam\", nonce=\"abc\", uri=\"/x\", "
		 "response=\"00000000000000000000000000000000\", algorithm=SHA-256"),
		"Digest username=\"u\"",
		"Bearer abc",
		"",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		cr_assert(!rtsp_auth_check(bad[i], strlen(bad[i]), "cam", "abc", "u", "p",
		                           "PLAY", true), "%s", bad[i]);
}

Test(rtsp_auth, header_refuses_line_breaks)
{
	struct rtsp_auth_challenge ch = { .scheme = RTSP_AUTH_DIGEST };
	strcpy(ch.realm, "r");
	strcpy(ch.nonce, "n");
	char out[512];
	cr_assert_eq(rtsp_auth_header(&ch, "u\r\nX-Evil: 1", "p", "GET", "/", 1, NULL,
	                              out, sizeof out), -EINVAL);
	cr_assert_eq(rtsp_auth_header(&ch, "u", "p", "GET", "/\n", 1, NULL,
	                              out, sizeof out), -EINVAL);
	struct rtsp_auth_challenge none = { .scheme = RTSP_AUTH_NONE };
	cr_assert_eq(rtsp_auth_header(&none, "u", "p", "GET", "/", 1, NULL,
	                              out, sizeof out), -EINVAL);
}
