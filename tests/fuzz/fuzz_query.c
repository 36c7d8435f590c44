/*
 * fuzz_query.c - libFuzzer target for the HTTP API's query-string parser
 * and its typed getters (web/query.c): any bytes a client sends after '?'
 * must never crash them or make them read past their length. What comes
 * back must hold together: every key and value NUL-terminated inside its
 * field, at most QUERY_MAX_PARAMS of them, and every time accepted by
 * query_parse_time printed back by query_format_time at millisecond
 * precision and parsed again to the same millisecond.
 * Static names carry the queryf_ prefix (see fuzz_rtsp.c).
 */
#include <stdlib.h>
#include <string.h>

#include "query.h"

static void queryf_check_time(const char *s)
{
	int64_t us, back;
	char buf[40];
	if (query_parse_time(s, &us))
		return;
	if (query_format_time(us, buf, sizeof buf))
		return;      /* outside years 1..9999 after a zone offset */
	if (query_parse_time(buf, &back))
		abort();
	int64_t ms = us >= 0 ? us / 1000 : -((-us + 999) / 1000);
	if (back != ms * 1000)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct query q;
	struct query_error err;
	int64_t v;
	double d;
	if (query_parse((const char *)data, size, &q, &err) < 0) {
		if (strnlen(err.parameter, sizeof err.parameter) >= sizeof err.parameter)
			abort();
		return 0;
	}
	if (q.count < 0 || q.count > QUERY_MAX_PARAMS)
		abort();
	for (int i = 0; i < q.count; i++) {
		const struct query_param *p = &q.params[i];
		if (strnlen(p->key, sizeof p->key) >= sizeof p->key ||
		    strnlen(p->value, sizeof p->value) >= sizeof p->value || !p->key[0])
			abort();
		(void)query_int(&q, p->key, INT64_MIN, INT64_MAX, 0, &v, &err);
		(void)query_double(&q, p->key, -1e300, 1e300, 0, &d, &err);
		queryf_check_time(p->value);
	}
	return 0;
}
