/*
 * fuzz_registry_import.c - libFuzzer target for the camera registry's
 * import (nvr/registry_io.c): CSV through libcsv, JSON through jansson, and
 * the line counting and field parsing around them. Import files come from
 * other systems and spreadsheets, so no input may crash the import or read
 * out of bounds, and a refused import must change nothing: the generation
 * stays where it was and the error names a line inside the input.
 *
 * The first byte picks the format (bit 0) and REPLACE (bit 1); the rest is
 * the file. One registry in a temporary directory serves the whole run.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "registry.h"

static struct registry *fuzz_reg;
static char fuzz_dir[] = "/tmp/nvr-fuzz-registry.XXXXXX";

/* Removes the run's registry when the fuzzer exits. */
static void fuzz_cleanup(void)
{
	char path[sizeof fuzz_dir + 16];
	registry_close(fuzz_reg);
	snprintf(path, sizeof path, "%s/data.mdb", fuzz_dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/lock.mdb", fuzz_dir);
	unlink(path);
	rmdir(fuzz_dir);
}

static struct registry *fuzz_registry(void)
{
	if (fuzz_reg)
		return fuzz_reg;
	if (!mkdtemp(fuzz_dir) || registry_open(fuzz_dir, &fuzz_reg))
		abort();
	atexit(fuzz_cleanup);
	return fuzz_reg;
}

static size_t count_lines(const uint8_t *buf, size_t len)
{
	size_t n = 1;
	for (size_t i = 0; i < len; i++)
		n += buf[i] == '\n';
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	struct registry *r = fuzz_registry();
	enum registry_format fmt = (data[0] & 1) ? REGISTRY_JSON : REGISTRY_CSV;
	unsigned flags = (data[0] & 2) ? REGISTRY_IMPORT_REPLACE : 0;
	const uint8_t *text = data + 1;
	size_t len = size - 1;
	FILE *in = len ? fmemopen((void *)text, len, "r") : fopen("/dev/null", "r");
	if (!in)
		abort();
	uint64_t before = registry_generation(r);
	struct registry_import_result res;
	int rc = registry_import(r, in, fmt, flags, &res);
	fclose(in);
	if (rc == -EINVAL) {
		if (registry_generation(r) != before)
			abort();                       /* a refused import changed something */
		if (res.error_line < 1 || (size_t)res.error_line > count_lines(text, len))
			abort();                       /* the error names a line outside the input */
		if (!memchr(res.error, '\0', sizeof res.error))
			abort();
	} else if (rc == 0 && registry_generation(r) != before + 1) {
		abort();                               /* an import is one write transaction */
	}
	return 0;
}
