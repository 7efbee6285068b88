/*
 * json.c - the JSON document a compare process writes on stdout: the
 * top-level fields (main.c decides which) and the measurement rows (every
 * workload emits them).  stdout has a static buffer (main.c), so writing
 * the document takes no memory from the backend under test.
 */
#include "compare.h"

#include <math.h>
#include <string.h>

static FILE *doc;
static int nfields, nrows;

void json_fstr(FILE *out, const char *s)
{
	fputc('"', out);
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c < 0x20)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

void json_str(const char *s)
{
	json_fstr(doc, s);
}

void json_num(double v)
{
	if (isnan(v) || isinf(v))
		fputs("null", doc);
	else
		fprintf(doc, "%.10g", v);
}

void json_bool(int v)
{
	fputs(v ? "true" : "false", doc);
}

void json_begin(FILE *out)
{
	doc = out;
	nfields = nrows = 0;
	fputc('{', doc);
}

void json_key(const char *name)
{
	fputs(nfields++ ? ",\n  " : "\n  ", doc);
	json_str(name);
	fputs(": ", doc);
}

void json_rows_begin(void)
{
	json_key("measurements");
	fputc('[', doc);
	nrows = 0;
}

void json_rows_end(void)
{
	fputs("\n  ]", doc);
}

void json_end(void)
{
	fputs("\n}\n", doc);
}

const char *compare_errno_name(int err)
{
	const char *n;

	if (err == 0)
		return "";
	n = strerrorname_np(err);
	return n ? n : "E?";
}

void compare_emit_full(const struct measure_key *k, const char *metric, double value,
    const char *unit, const char *status, int err, const char *note)
{
	fputs(nrows++ ? ",\n    " : "\n    ", doc);
	fputs("{\"workload\": ", doc);
	json_str(k->workload);
	fputs(", \"variant\": ", doc);
	json_str(k->variant ? k->variant : "");
	fputs(", \"param\": ", doc);
	json_str(k->param ? k->param : "");
	fputs(", \"param_value\": ", doc);
	json_num(k->param_value);
	fputs(", \"metric\": ", doc);
	json_str(metric);
	fputs(", \"value\": ", doc);
	json_num(value);
	fputs(", \"unit\": ", doc);
	json_str(unit);
	fputs(", \"status\": ", doc);
	json_str(status);
	fputs(", \"errno\": ", doc);
	json_str(compare_errno_name(err));
	fputs(", \"note\": ", doc);
	json_str(note ? note : "");
	fputc('}', doc);
}

void compare_emit(const struct measure_key *k, const char *metric, double value,
    const char *unit, const char *note)
{
	compare_emit_full(k, metric, value, unit, "ok", 0, note);
}

void compare_emit_status(const struct measure_key *k, const char *metric,
    const char *status, int err, const char *note)
{
	compare_emit_full(k, metric, NAN, "", status, err, note);
}
