/*
 * test_crash.c - kill -9 while recording, three times over the same
 * volumes: start-up recovery scans only the open segments, every frame that
 * was synced before the kill is read back byte for byte, what was lost is
 * only the tail, and the index then equals what the disks hold (fsck).
 */
#include <signal.h>
#include <sys/wait.h>
#include "testutil.h"

#define CAMS 4
#define RUN_FRAMES 100000u   /* frame numbers of run k start at k*RUN_FRAMES */

/* Child: records until killed; reports after each sync how far it got. */
static void record_until_killed(struct tu_env *e, int fd, uint32_t base)
{
	int err = stg_open(&e->cfg, &e->stg);
	if (err)
		_exit(3);
	for (uint32_t n = base;; n += 25) {
		for (uint32_t cam = 1; cam <= CAMS; cam++)
			tu_put_frames(e->stg, cam, n, n + 25);
		if ((n - base) % 100 == 0) {
			stg_sync(e->stg);
			/* frames before n's GOP are in closed chunks and on disk */
			uint32_t safe = n - n % T_GOP;
			if (write(fd, &safe, sizeof safe) != sizeof safe)
				_exit(4);
		}
		usleep(2000);
	}
}

static uint32_t run_and_kill(struct tu_env *e, uint32_t base, unsigned wait_reports)
{
	int p[2];
	cr_assert_eq(pipe(p), 0);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		record_until_killed(e, p[1], base);
	}
	close(p[1]);
	uint32_t safe = base;
	for (unsigned i = 0; i < wait_reports; i++)
		cr_assert_eq(read(p[0], &safe, sizeof safe), (ssize_t)sizeof safe,
		             "child died before report %u", i);
	kill(pid, SIGKILL);
	int st;
	waitpid(pid, &st, 0);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	close(p[0]);
	return safe;
}

Test(crash, kill9_three_times_loses_only_the_tail, .timeout = 240)
{
	struct tu_env e;
	tu_env_init(&e, 2, 4 << 20, 16);
	uint32_t safe[3];
	for (uint32_t run = 0; run < 3; run++) {
		safe[run] = run_and_kill(&e, (run + 1) * RUN_FRAMES, 5 + run * 7);
		/* restart: recovery of the open segments, then the checks */
		tu_env_open(&e);
		for (uint32_t cam = 1; cam <= CAMS; cam++) {
			uint32_t first = 0, last = 0;
			tu_read_all(e.stg, cam, &first, &last);
			cr_assert(last + 1 >= safe[run],
			          "run %u cam %u: synced frame %u lost (last %u)",
			          run, cam, safe[run] - 1, last);
			/* every synced frame of every run so far is still there */
			for (uint32_t r = 0; r <= run; r++) {
				uint32_t from = (r + 1) * RUN_FRAMES;
				cr_assert_eq(tu_read_check(e.stg, cam, from, safe[r]),
				             safe[r] - from, "run %u cam %u frames", r, cam);
			}
		}
		tu_env_close(&e);
		struct stg_fsck_report rep = tu_fsck(&e.cfg, false);
		cr_assert_eq(rep.differences, 0, "run %u: index equals disks after recovery", run);
	}
	tu_env_fini(&e);
}
