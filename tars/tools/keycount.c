/*
 * keycount - live tars_keys against VMAs: makes up to N 32-byte keys
 * (tars_key_new_random) until N or the first failure, then prints the VMA
 * count (/proc/self/maps) at rest, with `open` read scopes open, after
 * they close and after every key is freed, with the key statistics.
 *
 *   build/tools/keycount [N [open]]        (default 1000000 and 1000)
 *
 * Options come from TARS_OPTIONS as usual; run it as an unprivileged user
 * with TARS_OPTIONS=mlock=2 to see how many keys RLIMIT_MEMLOCK locks.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "tars.h"

static long
vmas(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	if (f == NULL) {
		perror("/proc/self/maps");
		exit(1);
	}
	long n = 0;
	int c;
	while ((c = fgetc(f)) != EOF) {
		n += c == '\n';
	}
	(void)fclose(f);
	return n;
}

static long
vmlck_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long v = -1;
	while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "VmLck:", 6) == 0) {
			v = atol(line + 6);
		}
	}
	if (f != NULL) {
		(void)fclose(f);
	}
	return v;
}

static double
now_s(void)
{
	struct timespec ts;
	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int
main(int argc, char **argv)
{
	size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
	size_t open = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000;
	tars_key **k = calloc(n ? n : 1, sizeof(*k));
	if (k == NULL) {
		perror("calloc");
		return 1;
	}
	struct rlimit rl = {0, 0};
	(void)getrlimit(RLIMIT_MEMLOCK, &rl);
	long base = vmas();
	double t0 = now_s();
	size_t made = 0;
	int err = 0;
	for (; made < n; made++) {
		if ((k[made] = tars_key_new_random(32)) == NULL) {
			err = errno;
			break;
		}
	}
	double t1 = now_s();
	struct tars_stats s;
	tars_stats_get(&s);
	printf("keys %zu of %zu (%s), %.1f us each; RLIMIT_MEMLOCK %llu KiB\n", made, n,
	    err ? strerror(err) : "all made", made ? (t1 - t0) / (double)made * 1e6 : 0.0,
	    (unsigned long long)rl.rlim_cur / 1024);
	printf("at rest:  VMAs %ld (%ld before), key_regions %zu, key_region_pages %zu, "
	    "locked_bytes %zu, unlocked_bytes %zu, secretmem_pages %zu, VmLck %ld KiB\n",
	    vmas(), base, s.key_regions, s.key_region_pages, s.locked_bytes, s.unlocked_bytes,
	    s.secretmem_pages, vmlck_kib());
	if (open > made) {
		open = made;
	}
	size_t opened = 0;
	for (; opened < open; opened++) {
		if (tars_key_read_begin(k[opened * (made / open)]) == NULL) {
			printf("open %zu failed: %s\n", opened, strerror(errno));
			break;
		}
	}
	tars_stats_get(&s);
	printf("%zu open: VMAs %ld, key_open %zu\n", opened, vmas(), s.key_open);
	for (size_t i = 0; i < opened; i++) {
		tars_key_read_end(k[i * (made / open)]);
	}
	printf("closed:   VMAs %ld\n", vmas());
	t0 = now_s();
	for (size_t i = 0; i < made; i++) {
		tars_key_free(k[i]);
	}
	t1 = now_s();
	tars_stats_get(&s);
	printf("freed:    VMAs %ld, %.1f us each, key_count %zu, key_quarantined %zu, "
	    "key_regions %zu\n", vmas(), made ? (t1 - t0) / (double)made * 1e6 : 0.0,
	    s.key_count, s.key_quarantined, s.key_regions);
	free(k);
	return 0;
}
