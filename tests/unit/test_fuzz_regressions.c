/*
 * test_fuzz_regressions.c - every input that once crashed or exhausted a
 * fuzz target is kept under tests/fuzz/regressions/<target>/ and replayed
 * here through the same harness, in the default test run (the fuzz build
 * itself needs clang's libFuzzer and runs only with `make fuzz-run`).
 *
 * Every target is included here, each with its LLVMFuzzerTestOneInput
 * renamed; their static functions carry a prefix of their own so the files
 * can share one program. The seed corpora (tests/fuzz/seeds/<target>/) of
 * the ingest parsers are replayed as well, so their invariants are
 * checked in every test run, not only when fuzzing.
 */
#include <dirent.h>
#include <errno.h>
#include <sys/resource.h>
#include "testutil.h"

#define LLVMFuzzerTestOneInput fuzz_record_one
#include "../fuzz/fuzz_record.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_rtsp_one
#include "../fuzz/fuzz_rtsp.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_sdp_one
#include "../fuzz/fuzz_sdp.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_rtp_one
#include "../fuzz/fuzz_rtp.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_range_one
#include "../fuzz/fuzz_range.c"
#undef LLVMFuzzerTestOneInput

#if defined(__SANITIZE_ADDRESS__)            /* gcc */
#define UNDER_ASAN 1
#elif defined(__has_feature)                 /* clang */
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

typedef int (*fuzz_fn)(const uint8_t *data, size_t size);

/* The extra check of the record target: a damaged directory is reported as
 * damaged, never as a request for more memory than a directory can need. */
static void record_extra(uint8_t *buf, size_t len, const char *path)
{
	if (len < sizeof(struct rec_header))
		return;
	make_plausible(buf, len);
	struct dir_entry *e = NULL;
	uint32_t ne = 0;
	int err = dir_record_decode(buf, len, 7, &e, &ne);
	cr_assert(err == 0 || err == STG_ECORRUPT, "%s: %s", path, stg_strerror(err));
	free(e);
}

/* Replays every file of dir through fn; returns how many. A missing
 * directory counts 0 unless it must exist. */
static int replay_dir(const char *dir, fuzz_fn fn,
                      void (*extra)(uint8_t *, size_t, const char *),
                      bool must_exist)
{
	DIR *d = opendir(dir);
	if (!d && !must_exist && errno == ENOENT)
		return 0;
	cr_assert(d, "regression directory %s", dir);
	struct dirent *de;
	int n = 0;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char path[1024];
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		FILE *f = fopen(path, "rb");
		cr_assert(f, "open %s", path);
		static uint8_t buf[1 << 20];
		size_t len = fread(buf, 1, sizeof buf, f);
		fclose(f);
		/* an exact-size copy, as libFuzzer passes it: reading past the
		 * end shows under AddressSanitizer */
		uint8_t *exact = malloc(len ? len : 1);
		cr_assert(exact);
		memcpy(exact, buf, len);
		cr_assert_eq(fn(exact, len), 0, "%s", path);
		free(exact);
		if (extra)
			extra(buf, len, path);
		n++;
	}
	closedir(d);
	return n;
}

/* Seeds and kept crash inputs of one ingest parser target. */
static int replay_target(const char *name, fuzz_fn fn)
{
	char dir[256];
	snprintf(dir, sizeof dir, "tests/fuzz/seeds/%s", name);
	int n = replay_dir(dir, fn, NULL, true);
	snprintf(dir, sizeof dir, "tests/fuzz/regressions/%s", name);
	return n + replay_dir(dir, fn, NULL, false);
}

Test(fuzz_regressions, record_parsers_survive_every_kept_input)
{
	/* an input that made the parser ask for gigabytes must now fail cleanly
	 * under a 1 GiB address-space limit instead (not under AddressSanitizer,
	 * whose shadow memory alone needs far more address space; the plain
	 * build of this test is the one that catches that regression) */
#ifndef UNDER_ASAN
	struct rlimit lim = { 1ull << 30, 1ull << 30 };
	setrlimit(RLIMIT_AS, &lim);
#endif
	cr_assert(replay_dir("tests/fuzz/regressions/fuzz_record", fuzz_record_one,
	                     record_extra, true) >= 1);
}

Test(fuzz_regressions, rtsp_parsers_survive_every_kept_input)
{
	cr_assert(replay_target("fuzz_rtsp", fuzz_rtsp_one) >= 1);
}

Test(fuzz_regressions, sdp_parser_survives_every_kept_input)
{
	cr_assert(replay_target("fuzz_sdp", fuzz_sdp_one) >= 1);
}

Test(fuzz_regressions, rtp_and_depacketizers_survive_every_kept_input)
{
	cr_assert(replay_target("fuzz_rtp", fuzz_rtp_one) >= 1);
}

Test(fuzz_regressions, range_parser_survives_every_kept_input)
{
	cr_assert(replay_target("fuzz_range", fuzz_range_one) >= 1);
}
