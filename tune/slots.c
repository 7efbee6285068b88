/*
 * slots.c - slot bytes per requested size under each class scheme.
 *
 *   tars-slots [MIN [MAX]]      (default 16 2048)
 *
 * Prints one line per requested size: "size slot_classes0 slot_classes1",
 * both from tars_slot_size() after tars_option_set("classes", scheme), so
 * the numbers are the library's own and not a copy of its class table.
 * The tuning driver (tune/tune.py) turns them into the waste figure.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tars.h>

static size_t arg(const char *s, const char *what)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v == 0) {
		fprintf(stderr, "tars-slots: bad %s: %s\n", what, s);
		exit(2);
	}
	return (size_t)v;
}

int main(int argc, char **argv)
{
	size_t lo = argc > 1 ? arg(argv[1], "MIN") : 16;
	size_t hi = argc > 2 ? arg(argv[2], "MAX") : 2048;

	if (argc > 3 || lo > hi) {
		fprintf(stderr, "usage: tars-slots [MIN [MAX]]\n");
		return 2;
	}
	printf("size slot_classes0 slot_classes1\n");
	for (size_t s = lo; s <= hi; s++) {
		size_t slot[2];

		for (int scheme = 0; scheme < 2; scheme++) {
			if (tars_option_set("classes", scheme) != 0) {
				fprintf(stderr, "tars-slots: classes=%d: %s\n", scheme,
				    strerror(errno));
				return 1;
			}
			slot[scheme] = tars_slot_size(s);
		}
		printf("%zu %zu %zu\n", s, slot[0], slot[1]);
	}
	return fflush(stdout) == 0 ? 0 : 1;
}
