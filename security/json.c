/*
 * json.c - the one JSON document each run writes on stdout.  Nesting is a
 * small stack of "first member yet?" flags; strings are escaped for the
 * characters that can occur in notes and error messages.
 */
#include "sec.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define DEPTH 16

static int first[DEPTH];
static int depth = -1;

static void raw_str(const char *v)
{
	fputc('"', stdout);
	for (const unsigned char *c = (const unsigned char *)v; *c; c++) {
		if (*c == '"' || *c == '\\')
			printf("\\%c", *c);
		else if (*c < 0x20 || *c >= 0x7f)
			printf("\\u%04x", *c);
		else
			fputc(*c, stdout);
	}
	fputc('"', stdout);
}

/* The comma before a member or item, and "key": for a member. */
static void member(const char *key)
{
	if (depth >= 0) {
		if (!first[depth])
			fputc(',', stdout);
		first[depth] = 0;
	}
	if (key != NULL) {
		raw_str(key);
		fputc(':', stdout);
	}
}

static void push(void)
{
	if (depth + 1 >= DEPTH) {
		fprintf(stderr, "sec: JSON nested too deep\n");
		exit(2);
	}
	first[++depth] = 1;
}

void js_open(const char *key)
{
	member(key);
	fputc('{', stdout);
	push();
}

void js_close(void)
{
	fputc('}', stdout);
	if (--depth < 0)
		fputc('\n', stdout);
}

void js_array(const char *key)
{
	member(key);
	fputc('[', stdout);
	push();
}

void js_array_end(void)
{
	fputc(']', stdout);
	depth--;
}

void js_u64(const char *key, uint64_t v)
{
	member(key);
	printf("%" PRIu64, v);
}

void js_i64(const char *key, int64_t v)
{
	member(key);
	printf("%" PRId64, v);
}

void js_num(const char *key, double v)
{
	member(key);
	if (isfinite(v))
		printf("%.17g", v);
	else
		fputs("null", stdout);
}

void js_str(const char *key, const char *v)
{
	member(key);
	if (v == NULL)
		fputs("null", stdout);
	else
		raw_str(v);
}

void js_bool(const char *key, int v)
{
	member(key);
	fputs(v ? "true" : "false", stdout);
}

void js_null(const char *key)
{
	member(key);
	fputs("null", stdout);
}
