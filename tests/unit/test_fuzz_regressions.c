/*
 * test_fuzz_regressions.c - every input that once crashed or exhausted a
 * fuzz target is kept under tests/fuzz/regressions/<target>/ and replayed
 * here through the same harness, in the default test run (the fuzz build
 * itself needs clang's libFuzzer and runs only with `make fuzz-run`).
 */
#include <dirent.h>
#include <sys/resource.h>
#include "testutil.h"
#include "../fuzz/fuzz_record.c"

#if defined(__SANITIZE_ADDRESS__)            /* gcc */
#define UNDER_ASAN 1
#elif defined(__has_feature)                 /* clang */
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

static int replay_dir(const char *dir)
{
	DIR *d = opendir(dir);
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
		cr_assert_eq(LLVMFuzzerTestOneInput(buf, len), 0, "%s", path);
		/* and a damaged directory is reported as damaged, never as a
		 * request for more memory than a directory can need */
		if (len >= sizeof(struct rec_header)) {
			make_plausible(buf, len);
			struct dir_entry *e = NULL;
			uint32_t ne = 0;
			int err = dir_record_decode(buf, len, 7, &e, &ne);
			cr_assert(err == 0 || err == STG_ECORRUPT, "%s: %s", path, stg_strerror(err));
			free(e);
		}
		n++;
	}
	closedir(d);
	return n;
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
	cr_assert(replay_dir("tests/fuzz/regressions/fuzz_record") >= 1);
}
