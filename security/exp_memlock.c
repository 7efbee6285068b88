/*
 * exp_memlock.c - live blocks up to RLIMIT_MEMLOCK and past it.  The driver
 * runs this as an unprivileged user (without CAP_IPC_LOCK, so the limit
 * applies); -l sets the limit (main.c, before the backend's init, which
 * may lock memory: the OpenSSL arena).  Blocks of -s bytes are allocated
 * and written until an allocation fails or -c blocks are live; VmLck (and
 * tars's locked_bytes / unlocked_bytes, when its statistics have them) are
 * sampled along the way.
 */
#include "sec.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define CHECKPOINTS 256

struct point {
	uint64_t live;
	long vmlck_kb;
	uint64_t locked, unlocked;
};

static void sample(struct point *p, size_t live, long *lck_max)
{
	int ok;

	p->live = live;
	p->vmlck_kb = sec_status_kb("VmLck");
	p->locked = sec_stat("locked_bytes", &ok);
	p->unlocked = sec_stat("unlocked_bytes", &ok);
	if (p->vmlck_kb > *lck_max)
		*lck_max = p->vmlck_kb;
}

int exp_memlock(char *err, size_t errlen)
{
	const size_t cap = sec_cfg.cap, size = sec_cfg.size;
	const size_t step = cap / CHECKPOINTS ? cap / CHECKPOINTS : 1;
	struct point *pts = sec_mem((CHECKPOINTS + 4) * sizeof *pts);
	struct rlimit rl;
	size_t npts = 0, live = 0;
	int fail_errno = 0, has_locked, has_unlocked;
	char capeff[64] = "";
	uint64_t first_unlocked_at = 0;
	long lck_max = 0;

	if (getrlimit(RLIMIT_MEMLOCK, &rl) != 0)
		return sec_fail(err, errlen, "getrlimit: %s", strerror(errno));
	if (sec_status_str("CapEff", capeff, sizeof capeff) != 0)
		snprintf(capeff, sizeof capeff, "unknown");
	(void)sec_stat("unlocked_bytes", &has_unlocked);
	(void)sec_stat("locked_bytes", &has_locked);

	sample(&pts[npts++], 0, &lck_max);   /* what was locked before */
	while (live < cap) {
		unsigned char *d;
		void *h = sec_alloc_filled(sec_cfg.kind, size, 0x5a, &d);

		if (h == NULL) {
			fail_errno = errno;
			break;
		}
		live++;
		if (has_unlocked && first_unlocked_at == 0 && live % 64 == 0) {
			int ok;

			if (sec_stat("unlocked_bytes", &ok) > 0)
				first_unlocked_at = live;
		}
		if (live % step == 0 && npts < CHECKPOINTS)
			sample(&pts[npts++], live, &lck_max);
	}
	sample(&pts[npts++], live, &lck_max);

	js_u64("euid", geteuid());
	js_str("cap_eff", capeff);
	if (rl.rlim_cur == RLIM_INFINITY)
		js_null("rlimit_memlock");
	else
		js_u64("rlimit_memlock", rl.rlim_cur);
	js_u64("cap", cap);
	js_u64("live", live);
	js_bool("failed", fail_errno != 0);
	js_str("errno", fail_errno ? strerrorname_np(fail_errno) : NULL);
	js_i64("vmlck_kb", pts[npts - 1].vmlck_kb);
	js_i64("vmlck_max_kb", lck_max);
	if (has_unlocked) {
		js_u64("tars_locked_bytes", pts[npts - 1].locked);
		js_u64("tars_unlocked_bytes", pts[npts - 1].unlocked);
		/* To 64 blocks: the statistic is read every 64 allocations. */
		if (first_unlocked_at)
			js_u64("first_unlocked_at", first_unlocked_at);
		else
			js_null("first_unlocked_at");
	}
	js_array("points");   /* [live, VmLck kB, tars locked, tars unlocked] */
	for (size_t i = 0; i < npts; i++) {
		js_array(NULL);
		js_u64(NULL, pts[i].live);
		js_i64(NULL, pts[i].vmlck_kb);
		js_u64(NULL, pts[i].locked);
		js_u64(NULL, pts[i].unlocked);
		js_array_end();
	}
	js_array_end();
	if (sec_backend.stats != NULL)
		sec_backend.stats("stats");
	return 0;
}
