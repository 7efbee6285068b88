/*
 * wl_tls.c - a real client: OpenSSL 3 TLS 1.3 handshakes with OpenSSL's
 * heap on the backend.
 *
 * Client and server live in this process and talk over a BIO pair (memory,
 * no sockets).  One operation is a full handshake (no resumption, no
 * tickets; X25519 key exchange, ECDSA P-256 certificate verified by the
 * client) followed by 16 KiB of application data each way, checked, and
 * both connections freed.  The certificate and its key are made at
 * start-up, outside the timed region.
 *
 * Every allocation OpenSSL makes goes to the backend:
 * CRYPTO_set_mem_functions is the first OpenSSL call of the process.  A
 * backend without realloc (or whose free needs the size) gets a 16-byte
 * header holding the size, and its blocks are moved by copying.  A backend
 * that says tls_heap = TLS_OWN (the OpenSSL secure heap) keeps OpenSSL's
 * heap on glibc and sets up its own allocator for OpenSSL's secrets in
 * prepare(); its tls_note says why.
 *
 * Besides the time per handshake: peak RSS, system calls per handshake for
 * backends that count them (tars), and an allocation profile from a few
 * extra handshakes whose every allocator call is timed: how many blocks a
 * handshake takes, small (<= page/2, the chunk path of tars) and large
 * (OpenSSL's 16 KiB+ record buffers: tars's large-block path, one mapping
 * each), and the time spent in the allocator for each.
 */
#include "compare.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define APP_BYTES 16384
#define HDR 16 /* size header for backends without realloc */

/* ------------------------------------------------------------------------
 * OpenSSL's heap on the backend
 * --------------------------------------------------------------------- */

struct heap_profile {
	int on;                 /* time every call (the profiling handshakes) */
	size_t large_from;      /* a block of this size or more is "large" */
	double calls[2];        /* [0] small, [1] large: malloc + realloc + free */
	double blocks[2];       /* allocations (malloc, realloc to a new size) */
	double bytes[2];
	double ns[2];           /* inside the backend (TSC, timer cost removed) */
};

static struct heap_profile prof;
static int alloc_errno;        /* errno of the last failed allocation */
static const char *alloc_call; /* and the call, for the failure note */

static int use_header(void)
{
	return compare_backend.realloc == NULL || compare_backend.release != NULL;
}

static size_t round16(size_t n)
{
	return (n + 15) & ~(size_t)15;
}

/* The backend's block for n bytes: direct, or behind a size header (the
 * request is rounded to 16 bytes so that a backend placing blocks at the
 * end of their pages, as sodium does, still returns aligned memory). */
static void *heap_get(size_t n)
{
	char *p;

	compare_fail_call = NULL;
	if (!use_header()) {
		p = compare_alloc(n);
	} else {
		p = compare_alloc(round16(n) + HDR);
		if (p != NULL) {
			memcpy(p, &n, sizeof n);
			p += HDR;
		}
	}
	if (p == NULL) {
		alloc_errno = errno ? errno : ENOMEM;
		alloc_call = compare_fail_call;
	}
	return p;
}

static size_t heap_size(void *q)
{
	size_t n;

	memcpy(&n, (char *)q - HDR, sizeof n);
	return n;
}

static void heap_put(void *q)
{
	if (q == NULL)
		return;
	if (!use_header()) {
		compare_release(q, 0);
		return;
	}
	compare_release((char *)q - HDR, round16(heap_size(q)) + HDR);
}

static void *heap_move(void *q, size_t n)
{
	void *r;

	if (!use_header()) {
		compare_fail_call = NULL;
		r = compare_backend.realloc(q, n);
		if (r == NULL) {
			alloc_errno = errno ? errno : ENOMEM;
			alloc_call = compare_fail_call ? compare_fail_call : "realloc";
		}
		return r;
	}
	r = heap_get(n);
	if (r != NULL) {
		size_t old = heap_size(q);

		memcpy(r, q, old < n ? old : n);
		heap_put(q);
	}
	return r;
}

/* Large blocks live during the profiling handshakes (a dozen at most: the
 * record buffers), so that a free can be classified without the size. */
#define MAX_LARGE 256
static void *large_live[MAX_LARGE];

static void large_note(void *p, size_t size)
{
	if (p == NULL || size < prof.large_from)
		return;
	for (int i = 0; i < MAX_LARGE; i++)
		if (large_live[i] == NULL) {
			large_live[i] = p;
			return;
		}
}

static int large_forget(void *p)
{
	for (int i = 0; i < MAX_LARGE; i++)
		if (large_live[i] == p) {
			large_live[i] = NULL;
			return 1;
		}
	return 0;
}

static void account(size_t size, int large, int block, uint64_t t0)
{
	prof.calls[large] += 1;
	prof.blocks[large] += block;
	prof.bytes[large] += block ? (double)size : 0;
	prof.ns[large] += compare_tsc_ns(compare_tsc_end() - t0);
}

static void *tls_malloc(size_t n, const char *file, int line)
{
	uint64_t t0;
	void *p;

	(void)file;
	(void)line;
	if (n == 0)
		return NULL; /* as OpenSSL's own CRYPTO_malloc */
	if (!prof.on)
		return heap_get(n);
	t0 = compare_tsc_begin();
	p = heap_get(n);
	account(n, n >= prof.large_from, 1, t0);
	large_note(p, n);
	return p;
}

static void tls_free(void *p, const char *file, int line)
{
	uint64_t t0;
	int large;

	(void)file;
	(void)line;
	if (p == NULL)
		return;
	if (!prof.on) {
		heap_put(p);
		return;
	}
	large = large_forget(p);
	t0 = compare_tsc_begin();
	heap_put(p);
	account(0, large, 0, t0);
}

static void *tls_realloc(void *p, size_t n, const char *file, int line)
{
	uint64_t t0;
	int was_large;
	void *r;

	(void)file;
	(void)line;
	if (p == NULL)
		return tls_malloc(n, file, line);
	if (n == 0) {
		tls_free(p, file, line);
		return NULL;
	}
	if (!prof.on)
		return heap_move(p, n);
	was_large = large_forget(p);
	t0 = compare_tsc_begin();
	r = heap_move(p, n);
	account(n, was_large || n >= prof.large_from, 1, t0);
	if (r == NULL && was_large)
		large_note(p, prof.large_from); /* the old block is still live */
	large_note(r, n);
	return r;
}

/* ------------------------------------------------------------------------
 * Handshakes
 * --------------------------------------------------------------------- */

struct tls_ctx {
	SSL_CTX *server, *client;
	unsigned char *out, *in;    /* application data (harness memory) */
	const char *failed;         /* which OpenSSL call failed */
	unsigned long ssl_err;
};

static int ssl_fail(struct tls_ctx *c, const char *what)
{
	c->failed = what;
	c->ssl_err = ERR_peek_last_error();
	ERR_clear_error();
	errno = alloc_errno ? alloc_errno : EPROTO;
	compare_fail_call = alloc_call ? alloc_call : what;
	return -1;
}

static int want_more(SSL *s, int rc)
{
	int e = SSL_get_error(s, rc);

	return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
}

/* n bytes from w to r over the BIO pair; 0 or -1. */
static int transfer(struct tls_ctx *c, SSL *w, SSL *r, unsigned char tag)
{
	size_t sent = 0, got = 0;

	memset(c->out, tag, APP_BYTES);
	c->out[0] = tag ^ 0x5a;
	for (int round = 0; got < APP_BYTES; round++) {
		int k;

		if (round > 1000)
			return ssl_fail(c, "transfer (no progress)");
		if (sent < APP_BYTES) {
			k = SSL_write(w, c->out + sent, (int)(APP_BYTES - sent));
			if (k > 0)
				sent += (size_t)k;
			else if (!want_more(w, k))
				return ssl_fail(c, "SSL_write");
		}
		k = SSL_read(r, c->in + got, (int)(APP_BYTES - got));
		if (k > 0)
			got += (size_t)k;
		else if (!want_more(r, k))
			return ssl_fail(c, "SSL_read");
	}
	if (memcmp(c->in, c->out, APP_BYTES) != 0) {
		errno = EBADMSG;
		c->failed = "application data corrupted";
		compare_fail_call = c->failed;
		return -1;
	}
	return 0;
}

static int handshake_op(void *ctx, size_t i)
{
	struct tls_ctx *c = ctx;
	SSL *cl = NULL, *sv = NULL;
	BIO *cb = NULL, *sb = NULL;
	int rc = -1;

	alloc_errno = 0;
	alloc_call = NULL;
	cl = SSL_new(c->client);
	sv = SSL_new(c->server);
	if (cl == NULL || sv == NULL) {
		ssl_fail(c, "SSL_new");
		goto out;
	}
	if (!BIO_new_bio_pair(&cb, 0, &sb, 0)) {
		ssl_fail(c, "BIO_new_bio_pair");
		goto out;
	}
	SSL_set_bio(cl, cb, cb);
	SSL_set_bio(sv, sb, sb);
	SSL_set_connect_state(cl);
	SSL_set_accept_state(sv);
	for (int round = 0;; round++) {
		int a = SSL_do_handshake(cl);
		int b = SSL_do_handshake(sv);

		if (a == 1 && b == 1)
			break;
		if ((a != 1 && !want_more(cl, a)) || (b != 1 && !want_more(sv, b)) || round > 50) {
			ssl_fail(c, "SSL_do_handshake");
			goto out;
		}
	}
	if (transfer(c, cl, sv, (unsigned char)i) != 0 ||
	    transfer(c, sv, cl, (unsigned char)(i + 1)) != 0)
		goto out;
	rc = 0;
out:
	SSL_free(cl); /* frees its BIO */
	SSL_free(sv);
	return rc;
}

/* ------------------------------------------------------------------------
 * Set-up: contexts and a self-signed certificate
 * --------------------------------------------------------------------- */

static X509 *self_signed(EVP_PKEY *key)
{
	X509 *x = X509_new();
	X509_NAME *name;

	if (x == NULL)
		return NULL;
	name = X509_get_subject_name(x);
	if (!X509_set_version(x, 2) ||
	    !ASN1_INTEGER_set(X509_get_serialNumber(x), 1) ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -60) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), 24 * 3600) == NULL ||
	    !X509_set_pubkey(x, key) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
		(const unsigned char *)"tars-compare", -1, -1, 0) ||
	    !X509_set_issuer_name(x, name) ||
	    X509_sign(x, key, EVP_sha256()) == 0) {
		X509_free(x);
		return NULL;
	}
	return x;
}

static const char *tls_setup(struct tls_ctx *c)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *cert = NULL;
	const char *why = NULL;

	if (key == NULL)
		return "EVP_EC_gen(P-256)";
	cert = self_signed(key);
	c->server = SSL_CTX_new(TLS_server_method());
	c->client = SSL_CTX_new(TLS_client_method());
	if (cert == NULL)
		why = "self-signed certificate";
	else if (c->server == NULL || c->client == NULL)
		why = "SSL_CTX_new";
	else if (!SSL_CTX_set_min_proto_version(c->server, TLS1_3_VERSION) ||
	    !SSL_CTX_set_min_proto_version(c->client, TLS1_3_VERSION))
		why = "SSL_CTX_set_min_proto_version(TLS 1.3)";
	else if (SSL_CTX_use_certificate(c->server, cert) != 1 ||
	    SSL_CTX_use_PrivateKey(c->server, key) != 1 ||
	    SSL_CTX_check_private_key(c->server) != 1)
		why = "server certificate and key";
	else if (X509_STORE_add_cert(SSL_CTX_get_cert_store(c->client), cert) != 1)
		why = "X509_STORE_add_cert";
	else if (!SSL_CTX_set_num_tickets(c->server, 0))
		why = "SSL_CTX_set_num_tickets";
	if (why == NULL) {
		/* Full handshakes every time: no session cache, no tickets. */
		SSL_CTX_set_session_cache_mode(c->server, SSL_SESS_CACHE_OFF);
		SSL_CTX_set_session_cache_mode(c->client, SSL_SESS_CACHE_OFF);
		SSL_CTX_set_options(c->server, SSL_OP_NO_TICKET);
		SSL_CTX_set_verify(c->client, SSL_VERIFY_PEER, NULL);
	}
	X509_free(cert);
	EVP_PKEY_free(key);
	return why;
}

/* ------------------------------------------------------------------------
 * The workload
 * --------------------------------------------------------------------- */

static void fail_row(const struct measure_key *k, struct tls_ctx *c, int err,
    const char *what, size_t done)
{
	char note[320], ebuf[160] = "";

	if (c->ssl_err)
		ERR_error_string_n(c->ssl_err, ebuf, sizeof ebuf);
	snprintf(note, sizeof note, "%s failed after %zu handshakes in %s%s%s%s",
	    what, done, c->failed ? c->failed : "?",
	    alloc_call ? " (allocation failed in " : "", alloc_call ? alloc_call : "",
	    alloc_call ? ")" : "");
	if (ebuf[0] && strlen(note) + strlen(ebuf) + 3 < sizeof note) {
		strcat(note, ": ");
		strcat(note, ebuf);
	}
	compare_emit_status(k, "ns_per_op", "failed", err, note);
	compare_progress("  tls: %s", note);
}

static void profile(const struct measure_key *k, struct tls_ctx *c, double ns_per_op)
{
	/* Ten handshakes, one for backends that take 10 ms or more each. */
	const int n = ns_per_op > 1e7 ? 1 : 10;
	static const char *const kind[2] = { "small", "large" };
	char metric[64], note[200];
	struct run_result r = { 0 };

	memset(&prof, 0, sizeof prof);
	memset(large_live, 0, sizeof large_live);
	prof.large_from = (size_t)sysconf(_SC_PAGESIZE) / 2 + 1;
	prof.on = 1;
	run_batches(handshake_op, c, 0, n, n, 0, NULL, &r);
	prof.on = 0;
	if (r.err != 0) {
		compare_progress("  tls: profiling handshakes failed: %s", strerror(r.err));
		return;
	}
	for (int l = 0; l < 2; l++) {
		snprintf(metric, sizeof metric, "allocs_per_op_%s", kind[l]);
		snprintf(note, sizeof note, "allocations (malloc, realloc) per handshake of "
		    "%s blocks (%s %zu bytes)", kind[l], l ? ">=" : "<", prof.large_from);
		compare_emit(k, metric, prof.blocks[l] / n, "count", note);
		snprintf(metric, sizeof metric, "alloc_bytes_per_op_%s", kind[l]);
		compare_emit(k, metric, prof.bytes[l] / n, "bytes", note);
		snprintf(metric, sizeof metric, "alloc_ns_per_op_%s", kind[l]);
		snprintf(note, sizeof note, "time per handshake inside the allocator for "
		    "%s blocks (malloc + realloc + free, TSC)", kind[l]);
		compare_emit(k, metric, prof.ns[l] / n, "ns", note);
	}
	compare_emit(k, "alloc_share", (prof.ns[0] + prof.ns[1]) / n / ns_per_op,
	    "ratio", "share of the handshake time spent in the allocator (profiling "
	    "handshakes over the median time per handshake)");
}

static int tls_run(const struct compare_workload *w)
{
	struct measure_key k = { w->name, "", w->param, APP_BYTES };
	struct tls_ctx c = { 0 };
	struct memsnap base, now;
	struct timing t;
	struct run_result r = { 0 };
	double means[64], sys0, budget = compare_cfg.rep_seconds * 6;
	int reps = compare_cfg.reps;
	const char *why;
	size_t next, warm;
	uint64_t t0;

	compare_progress("  tls: TLS 1.3 handshakes + 16 KiB each way (%s heap)",
	    compare_backend.tls_heap == TLS_OWN ? "OpenSSL's own" : "the backend's");
	(void)memsnap_take(&base);
	if (compare_backend.tls_heap == TLS_ROUTED) {
		/* The first OpenSSL call of the process. */
		if (!CRYPTO_set_mem_functions(tls_malloc, tls_realloc, tls_free)) {
			compare_emit_status(&k, "ns_per_op", "failed", EBUSY,
			    "CRYPTO_set_mem_functions refused: OpenSSL allocated before");
			return 0;
		}
	} else {
		if (compare_prepare((size_t)1 << 20, 4096, &k) != 0)
			return 0;
		compare_emit(&k, "own_heap", 1, "bool", compare_backend.tls_note);
	}
	c.out = compare_mem(APP_BYTES);
	c.in = compare_mem(APP_BYTES);
	why = tls_setup(&c);
	if (why != NULL) {
		c.failed = why;
		c.ssl_err = ERR_peek_last_error();
		fail_row(&k, &c, alloc_errno ? alloc_errno : EPROTO, "set-up", 0);
		goto out;
	}
	/* Warm-up: OpenSSL loads its providers lazily.  Two handshakes, one
	 * when a handshake takes 10 ms or more (the per-mapping backends). */
	t0 = compare_now_ns();
	run_batches(handshake_op, &c, 0, 1, 1, 0, NULL, &r);
	if (r.err == 0 && compare_now_ns() - t0 < 10 * 1000 * 1000)
		run_batches(handshake_op, &c, 1, 1, 1, 0, NULL, &r);
	if (r.err != 0) {
		fail_row(&k, &c, r.err, "warm-up", r.done);
		goto out;
	}
	next = warm = r.done;
	timing_init(&t, 100000, 100000);
	sys0 = compare_syscalls();
	for (int rep = 0; rep < reps; rep++) {
		uint64_t start = compare_now_ns();

		r = (struct run_result){ 0 };
		/* Handshakes timed one by one (a batch of one is a single
		 * operation: its samples are the per-operation ones too). */
		do
			run_batches(handshake_op, &c, next + r.done, 1, 1, 0, &t, &r);
		while (r.err == 0 && (double)(compare_now_ns() - start) < budget * 1e9);
		if (r.err != 0) {
			fail_row(&k, &c, r.err, "timed run", next + r.done);
			timing_free(&t);
			goto out;
		}
		next += r.done;
		means[rep] = (double)r.ns / (double)r.batched;
	}
	for (size_t j = 0; j < t.batch.n; j++)
		samples_add(&t.op, t.batch.v[j]);
	compare_emit_latency(&k, means, reps, &t, "one TLS 1.3 handshake + 16 KiB each way");
	compare_emit(&k, "handshakes_per_s", 1e9 / compare_median(means, reps), "ops/s",
	    "full handshakes (with 16 KiB each way) per second, one thread");
	if (!isnan(sys0))
		compare_emit(&k, "syscalls_per_op", (compare_syscalls() - sys0) / (double)(next - warm),
		    "count", "system calls the backend counted itself, per handshake");
	(void)memsnap_take(&now);
	compare_emit(&k, "peak_rss_bytes", now.hwm, "bytes", "VmHWM: the process's peak RSS");
	compare_emit(&k, "peak_rss_delta_bytes", now.hwm - base.rss, "bytes",
	    "VmHWM - VmRSS before the first OpenSSL call");
	compare_emit_memory(&k, &now, &base);
	if (compare_backend.tls_heap == TLS_ROUTED)
		profile(&k, &c, compare_median(means, reps));
	if (compare_backend.counters)
		compare_backend.counters(&k);
	timing_free(&t);
out:
	SSL_CTX_free(c.server);
	SSL_CTX_free(c.client);
	compare_mem_free(c.out, APP_BYTES);
	compare_mem_free(c.in, APP_BYTES);
	return 0;
}

COMPARE_WORKLOAD(wl_tls) = {
	.name = "tls",
	.what = "OpenSSL TLS 1.3 handshake (X25519, ECDSA P-256) + 16 KiB each way over "
	    "a BIO pair, OpenSSL's heap on the backend",
	.param = "app_bytes",
	.params = {
		[SCALE_TINY] = COMPARE_PARAMS(APP_BYTES),
		[SCALE_DEFAULT] = COMPARE_PARAMS(APP_BYTES),
		[SCALE_FULL] = COMPARE_PARAMS(APP_BYTES),
	},
	COMPARE_HEADLINES(
		{ "tls handshakes", "", APP_BYTES, "handshakes_per_s", 1 },
		{ "tls peak RSS", "", APP_BYTES, "peak_rss_bytes", 0 },
		{ "tls syscalls/handshake", "", APP_BYTES, "syscalls_per_op", 0 },
	),
	.run = tls_run,
};
