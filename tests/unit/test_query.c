/*
 * test_query.c - the HTTP API's query-string parser and typed getters
 * (web/query.c): splitting and percent-decoding, repeated keys, the bounds
 * of the fixed table, numbers, and times as RFC 3339 or epoch milliseconds,
 * with every refusal naming its parameter. Expected epoch values were
 * computed outside this project (Python's datetime).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "query.h"

static struct query q;
static struct query_error qe;

static void parse_ok(const char *s)
{
	memset(&qe, 0, sizeof qe);
	cr_assert_eq(query_parse(s, strlen(s), &q, &qe), 0, "%s: %s", s, qe.message);
}

Test(query, splits_and_decodes)
{
	parse_ok("q=main%20st&name=a+b&tag=school&empty=&flag&tag=street&&x=%2F%3d");
	cr_assert_eq(q.count, 7);
	cr_assert_str_eq(query_get(&q, "q"), "main st");
	cr_assert_str_eq(query_get(&q, "name"), "a b");
	cr_assert_str_eq(query_get(&q, "empty"), "");
	cr_assert_str_eq(query_get(&q, "flag"), "");
	cr_assert_str_eq(query_get(&q, "x"), "/=");
	cr_assert_null(query_get(&q, "missing"));
	const char *tags[4];
	cr_assert_eq(query_all(&q, "tag", tags, 4), 2);
	cr_assert_str_eq(tags[0], "school");
	cr_assert_str_eq(tags[1], "street");
	/* only len bytes are read: the second parameter is outside */
	cr_assert_eq(query_parse("a=1&b=2", 3, &q, &qe), 0);
	cr_assert_eq(q.count, 1);
	cr_assert_str_eq(query_get(&q, "a"), "1");
}

Test(query, refuses_bad_escapes_and_overflows)
{
	const char *bad[] = { "a=%zz", "a=%4", "a=%00", "%=1", "=x" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		cr_assert_eq(query_parse(bad[i], strlen(bad[i]), &q, &qe), -EINVAL, "%s", bad[i]);
	cr_assert_eq(query_parse("from=%zz", 8, &q, &qe), -EINVAL);
	cr_assert_str_eq(qe.parameter, "from");

	char big[QUERY_MAX_VALUE + 16];
	snprintf(big, sizeof big, "v=");
	memset(big + 2, 'x', QUERY_MAX_VALUE);
	big[QUERY_MAX_VALUE + 2] = '\0';
	cr_assert_eq(query_parse(big, strlen(big), &q, &qe), -E2BIG);
	cr_assert_str_eq(qe.parameter, "v");
	big[QUERY_MAX_VALUE + 1] = '\0';   /* exactly the largest value that fits */
	parse_ok(big);
	cr_assert_eq(strlen(query_get(&q, "v")), QUERY_MAX_VALUE - 1);

	char many[QUERY_MAX_PARAMS * 8 + 8] = "";
	for (int i = 0; i <= QUERY_MAX_PARAMS; i++)
		snprintf(many + strlen(many), sizeof many - strlen(many), "k%d=1&", i);
	cr_assert_eq(query_parse(many, strlen(many), &q, &qe), -E2BIG);
}

Test(query, numbers)
{
	int64_t v;
	double d;
	parse_ok("limit=25&offset=-1&radius=12.5&bad=12x&big=99999999999999999999");
	cr_assert_eq(query_int(&q, "limit", 1, 1000, 100, &v, &qe), 1);
	cr_assert_eq(v, 25);
	cr_assert_eq(query_int(&q, "absent", 1, 1000, 100, &v, &qe), 0);
	cr_assert_eq(v, 100);
	cr_assert_eq(query_int(&q, "offset", 0, 10, 0, &v, &qe), -EINVAL);
	cr_assert_str_eq(qe.parameter, "offset");
	cr_assert_eq(query_int(&q, "bad", 0, 100, 0, &v, &qe), -EINVAL);
	cr_assert_str_eq(qe.parameter, "bad");
	cr_assert_eq(query_int(&q, "big", INT64_MIN, INT64_MAX, 0, &v, &qe), -EINVAL);
	cr_assert_eq(query_double(&q, "radius", 0, 1e6, 0, &d, &qe), 1);
	cr_assert_float_eq(d, 12.5, 1e-12);
	cr_assert_eq(query_double(&q, "bad", 0, 1e6, 0, &d, &qe), -EINVAL);
	cr_assert_str_eq(qe.parameter, "bad");
	cr_assert_eq(query_parse_double("nan", -1, 1, &d), -EINVAL);
	cr_assert_eq(query_parse_double("inf", -1e9, 1e9, &d), -EINVAL);
	cr_assert_eq(query_parse_double(" 1", -1e9, 1e9, &d), -EINVAL);
}

Test(query, times_in_both_forms)
{
	int64_t us;
	cr_assert_eq(query_parse_time("2026-01-01T12:00:00Z", &us), 0);
	cr_assert_eq(us, 1767268800000000LL);
	cr_assert_eq(query_parse_time("2026-01-01T12:00:00.5+08:00", &us), 0);
	cr_assert_eq(us, 1767240000500000LL);
	cr_assert_eq(query_parse_time("2025-12-31T23:30:00.123456-01:30", &us), 0);
	cr_assert_eq(us, 1767229200123456LL);
	cr_assert_eq(query_parse_time("2024-02-29T00:00:00z", &us), 0);
	cr_assert_eq(us, 1709164800000000LL);
	cr_assert_eq(query_parse_time("1767268800123", &us), 0);
	cr_assert_eq(us, 1767268800123000LL);
	cr_assert_eq(query_parse_time("0", &us), 0);
	cr_assert_eq(us, 0);

	/* '+' in a query string is a space: an encoded %2B keeps the zone */
	parse_ok("from=2026-01-01T12%3A00%3A00%2B08%3A00&to=garbage");
	cr_assert_eq(query_time(&q, "from", &us, &qe), 1);
	cr_assert_eq(us, 1767240000000000LL);
	cr_assert_eq(query_time(&q, "to", &us, &qe), -EINVAL);
	cr_assert_str_eq(qe.parameter, "to");
	cr_assert_eq(query_time(&q, "absent", &us, &qe), 0);
}

Test(query, refuses_bad_times)
{
	const char *bad[] = {
		"", "garbage", "2026-01-01T12:00:00", "2026-01-01", "2026-13-01T00:00:00Z",
		"2026-02-29T00:00:00Z", "2026-01-01T24:00:00Z", "2026-01-01T12:60:00Z",
		"2026-01-01T12:00:60Z", "2026-01-01T12:00:00.Z", "2026-01-01T12:00:00+8:00",
		"2026-01-01T12:00:00+08:60", "2026-01-01T12:00:00.1234567890Z",
		"2026-01-01T12:00:00Zjunk", "-1", "1e12", "9999999999999999", "12 ",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int64_t us = 42;
		cr_assert_eq(query_parse_time(bad[i], &us), -EINVAL, "accepted '%s'", bad[i]);
	}
}

Test(query, formats_times_with_milliseconds)
{
	char buf[40];
	cr_assert_eq(query_format_time(1767240000500000LL, buf, sizeof buf), 0);
	cr_assert_str_eq(buf, "2026-01-01T04:00:00.500Z");
	cr_assert_eq(query_format_time(0, buf, sizeof buf), 0);
	cr_assert_str_eq(buf, "1970-01-01T00:00:00.000Z");
	cr_assert_eq(query_format_time(-1000, buf, sizeof buf), 0);
	cr_assert_str_eq(buf, "1969-12-31T23:59:59.999Z");
	cr_assert_eq(query_format_time(0, buf, 10), -ERANGE);
	int64_t back;
	cr_assert_eq(query_parse_time("2024-02-29T23:59:59.999Z", &back), 0);
	cr_assert_eq(query_format_time(back, buf, sizeof buf), 0);
	cr_assert_str_eq(buf, "2024-02-29T23:59:59.999Z");
}
