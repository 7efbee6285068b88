/*
 * opcount - a fixed loop of allocator operations, for counting instructions
 * per operation under `valgrind --tool=callgrind` (tars/tools/opcount.sh,
 * `make opcount`).  Not a timer: the count is exact and repeatable for one
 * binary and its inputs, whatever else the machine does.
 *
 *   build/tools/opcount MODE N [FLAGS]
 *
 *   MODE  pair   N times: allocate 64 bytes, free them
 *         churn  1000 live blocks of crypto sizes (32, 64, 68, 200, 208);
 *                N times: free a random one, allocate a new size, touch it
 *   FLAGS any of: i  start an idle thread first (the process is then
 *                    multi-threaded: round one's tars, and glibc, change
 *                    paths for that alone)
 *                 g  glibc malloc/free instead of tars
 *
 * The per-operation figure is the difference between two runs (N and 2N)
 * divided by N, so start-up and the set-up of the live blocks cancel.
 * Sizes and slots come from a fixed xorshift sequence, the same for every
 * allocator and every build.  Only tars_malloc and tars_free are used, so
 * the program builds against any tars commit (opcount.sh BASE=<rev>).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tars.h"

#define LIVE 1000

static int use_glibc;

static void *
alloc(size_t n)
{
	void *p = use_glibc ? malloc(n) : tars_malloc(n);
	if (p == NULL) {
		fprintf(stderr, "opcount: allocation of %zu bytes failed: %s\n",
		    n, strerror(errno));
		exit(1);
	}
	return p;
}

static void
release(void *p)
{
	if (use_glibc)
		free(p);
	else
		tars_free(p);
}

static void *
idle(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

static unsigned
next(unsigned *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

int
main(int argc, char **argv)
{
	static const size_t sizes[] = {32, 64, 68, 200, 208};
	static void *live[LIVE];
	const char *flags = argc > 3 ? argv[3] : "";
	unsigned x = 12345;
	char *end;
	long n;

	if (argc < 3 || (strcmp(argv[1], "pair") != 0 &&
	    strcmp(argv[1], "churn") != 0)) {
		fprintf(stderr, "usage: opcount pair|churn N [ig]\n");
		return 2;
	}
	errno = 0;
	n = strtol(argv[2], &end, 10);
	if (errno != 0 || *end != '\0' || n < 0) {
		fprintf(stderr, "opcount: bad N '%s'\n", argv[2]);
		return 2;
	}
	use_glibc = strchr(flags, 'g') != NULL;
	if (strchr(flags, 'i') != NULL) {
		pthread_t t;
		int rc = pthread_create(&t, NULL, idle, NULL);
		if (rc != 0) {
			fprintf(stderr, "opcount: pthread_create: %s\n",
			    strerror(rc));
			return 1;
		}
	}

	if (strcmp(argv[1], "pair") == 0) {
		for (long i = 0; i < n; i++) {
			void *p = alloc(64);
			__asm__ volatile("" : : "r"(p) : "memory");
			release(p);
		}
		return 0;
	}
	for (int i = 0; i < LIVE; i++)
		live[i] = alloc(sizes[i % 5]);
	for (long i = 0; i < n; i++) {
		unsigned k = next(&x) % LIVE;
		release(live[k]);
		live[k] = alloc(sizes[x % 5]);
		((volatile char *)live[k])[0] = 1;
	}
	return 0;
}
