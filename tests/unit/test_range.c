/*
 * test_range.c - the HTTP Range header parser (web/range.c) against the
 * cases of RFC 9110 section 14: the three forms of a single range, ranges
 * cut at the end of the body, unsatisfiable ranges (416), several ranges
 * (whole body unless none is satisfiable), headers that do not follow the
 * grammar or use another unit (ignored), and reads bounded by the length.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "range.h"

static uint64_t rf, rl;

static int parse(const char *h, uint64_t size)
{
	rf = rl = 12345;
	return range_parse(h, strlen(h), size, &rf, &rl);
}

static void expect_range(const char *h, uint64_t size, uint64_t first, uint64_t last)
{
	cr_assert_eq(parse(h, size), 1, "%s", h);
	cr_assert_eq(rf, first, "%s: first %llu", h, (unsigned long long)rf);
	cr_assert_eq(rl, last, "%s: last %llu", h, (unsigned long long)rl);
}

Test(range, single_ranges)
{
	expect_range("bytes=0-499", 10000, 0, 499);
	expect_range("bytes=500-999", 10000, 500, 999);
	expect_range("bytes=9500-", 10000, 9500, 9999);
	expect_range("bytes=-500", 10000, 9500, 9999);
	expect_range("bytes=0-0", 1, 0, 0);
	expect_range("bytes=-1", 1, 0, 0);
	expect_range("Bytes=3-4", 10, 3, 4);      /* the unit is case-insensitive */
	expect_range("bytes= 3-4 ", 10, 3, 4);    /* spaces around a range-spec */
	expect_range("bytes=,3-4,", 10, 3, 4);    /* empty list elements */
}

Test(range, cut_at_the_end)
{
	expect_range("bytes=5-100", 10, 5, 9);
	expect_range("bytes=-100", 10, 0, 9);
	expect_range("bytes=9-18446744073709551615", 10, 9, 9);
	expect_range("bytes=9-999999999999999999999999", 10, 9, 9);  /* saturates */
}

Test(range, unsatisfiable)
{
	cr_assert_eq(parse("bytes=10-", 10), -ERANGE);
	cr_assert_eq(parse("bytes=10-20", 10), -ERANGE);
	cr_assert_eq(parse("bytes=-0", 10), -ERANGE);
	cr_assert_eq(parse("bytes=0-", 0), -ERANGE);
	cr_assert_eq(parse("bytes=-5", 0), -ERANGE);
	cr_assert_eq(parse("bytes=99999999999999999999999-", 10), -ERANGE);
	cr_assert_eq(parse("bytes=10-11, 20-", 10), -ERANGE);
	cr_assert_eq(rf, 12345, "nothing set for a 416");
}

Test(range, several_ranges_send_the_whole_body)
{
	cr_assert_eq(parse("bytes=0-1, 5-6", 10), 0);
	cr_assert_eq(parse("bytes=20-30, 5-6", 10), 0);
	char many[1024] = "bytes=0-1";
	for (int i = 0; i < 100; i++)
		strcat(many, ",0-1");
	cr_assert_eq(parse(many, 10), 0, "more than RANGE_MAX_SPECS");
}

Test(range, ignored_headers)
{
	const char *bad[] = { "", "bytes", "bytes=", "bytes=,", "items=0-1", "bytes 0-1",
	                      "bytes=a-b", "bytes=5-4", "bytes=-", "bytes=1", "bytes=1-2-3",
	                      "bytes=0-1;x", "bytes=--1", "bytes=0x1-2", " bytes=0-1",
	                      "bytes=1 -2", "bytes=-1-2" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		cr_assert_eq(parse(bad[i], 10), 0, "'%s' is not ignored", bad[i]);
	cr_assert_eq(range_parse(NULL, 0, 10, &rf, &rl), 0);
}

Test(range, reads_only_len_bytes)
{
	/* "bytes=1-2" of "bytes=1-23": the 3 lies outside the length */
	const char *h = "bytes=1-23";
	cr_assert_eq(range_parse(h, 9, 100, &rf, &rl), 1);
	cr_assert_eq(rf, 1);
	cr_assert_eq(rl, 2);
	/* a NUL inside the length does not end the header: not the grammar */
	cr_assert_eq(range_parse("bytes=1-2\0", 10, 100, &rf, &rl), 0);
	cr_assert_eq(range_parse("bytes=1-2", 5, 100, &rf, &rl), 0);
}
