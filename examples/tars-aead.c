/*
 * tars-aead - encrypt and decrypt with XChaCha20-Poly1305 (libsodium),
 * keeping the key and the plaintext in tars memory.
 *
 *   tars-aead keygen KEYFILE               a new random key (mode 0600)
 *   tars-aead encrypt KEYFILE <in >out     out = nonce | ciphertext | tag
 *   tars-aead decrypt KEYFILE <in >out     exit 1 unless `in` is authentic
 *
 * Where the secrets live:
 *
 *   - The key is a tars_key: its own locked pages, PROT_NONE except inside
 *     the read scopes around the libsodium calls (and the write scope in
 *     which keygen fills it).  A stray read of it anywhere else faults.
 *   - The plaintext is in tars_bufs: locked, kept out of core dumps, and
 *     wiped when freed.  It moves through read(2) and write(2) only: stdio
 *     would copy it into its own buffers on the libc heap.
 *   - The nonce and ciphertext are public; they are in tars_bufs only
 *     because the same reader serves both directions.
 *
 * Decryption checks the tag before a single plaintext byte is written, so
 * a tampered input produces no output at all.
 *
 * Build: cc tars-aead.c -ltars -lsodium (see examples.mk).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>
#include <tars.h>

#define KEY_LEN   crypto_aead_xchacha20poly1305_ietf_KEYBYTES  /* 32 */
#define NONCE_LEN crypto_aead_xchacha20poly1305_ietf_NPUBBYTES /* 24 */
#define TAG_LEN   crypto_aead_xchacha20poly1305_ietf_ABYTES    /* 16 */
#define INPUT_MAX ((size_t)64 << 20)                  /* stdin, at most */

/* Authenticated along with every message: a file made for another format
 * or version fails to decrypt instead of being misread. */
static const unsigned char header[] = "tars-aead v1";
#define HEADER_LEN (sizeof(header) - 1)

static void
complain(const char *fmt, ...)
{
	va_list ap;
	fputs("tars-aead: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int
write_all(int fd, const void *data, size_t len)
{
	const unsigned char *p = data;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* A new buffer of len bytes that starts with the first `keep` bytes of
 * buf; buf is wiped and freed either way.  NULL with errno on failure. */
static tars_buf *
resize(tars_buf *buf, size_t keep, size_t len)
{
	tars_buf *copy = tars_buf_new(len);
	if (copy != NULL) {
		memcpy(tars_buf_data(copy), tars_buf_data(buf), keep);
	}
	tars_buf_free(buf); /* tars leaves errno alone on success */
	return copy;
}

/*
 * Everything fd holds (at most INPUT_MAX bytes), in a tars_buf of exactly
 * that length.  The buffer doubles as it fills; each outgrown copy is
 * wiped when freed, so no plaintext is left behind.
 */
static tars_buf *
read_all(int fd)
{
	size_t cap = 4096, used = 0;
	tars_buf *buf = tars_buf_new(cap);
	while (buf != NULL) {
		if (used == cap) {
			if (cap >= INPUT_MAX) {
				tars_buf_free(buf);
				errno = EFBIG;
				return NULL;
			}
			cap *= 2;
			buf = resize(buf, used, cap);
			continue;
		}
		unsigned char *end = (unsigned char *)tars_buf_data(buf) + used;
		ssize_t n = read(fd, end, cap - used);
		if (n > 0) {
			used += (size_t)n;
		} else if (n == 0) {
			return resize(buf, used, used);
		} else if (errno != EINTR) {
			int saved = errno;
			tars_buf_free(buf);
			errno = saved;
			return NULL;
		}
	}
	return NULL;
}

/* The key in `path`, moved straight from the file into a tars_key. */
static tars_key *
load_key(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		complain("%s: %s", path, strerror(errno));
		return NULL;
	}
	tars_buf *raw = read_all(fd);
	int saved = errno;
	(void)close(fd);
	if (raw == NULL) {
		complain("%s: %s", path, strerror(saved));
		return NULL;
	}
	if (tars_buf_len(raw) != KEY_LEN) {
		complain("%s: not a key (%zu bytes, want %u)", path,
		    tars_buf_len(raw), KEY_LEN);
		tars_buf_free(raw);
		return NULL;
	}
	tars_key *key = tars_key_new(raw); /* on success, raw is wiped and freed */
	if (key == NULL) {
		complain("%s: %s", path, strerror(errno));
		tars_buf_free(raw);
	}
	return key;
}

/* ------------------------------------------------------------ keygen */

static int
fill_key(void *key, size_t len, void *arg)
{
	(void)len;
	(void)arg;
	crypto_aead_xchacha20poly1305_ietf_keygen(key);
	return 0;
}

static int
save_key(const void *key, size_t len, void *arg)
{
	return write_all(*(const int *)arg, key, len);
}

static int
keygen(const char *path)
{
	tars_buf *zero = tars_buf_new_zero(KEY_LEN);
	tars_key *key = zero != NULL ? tars_key_new(zero) : NULL;
	if (key == NULL) {
		complain("new key: %s", strerror(errno));
		tars_buf_free(zero);
		return 1;
	}
	if (tars_key_write_with(key, fill_key, NULL) != 0) {
		complain("new key: %s", strerror(errno));
		tars_key_free(key);
		return 1;
	}
	/* O_EXCL: never overwrite a key that may still be needed. */
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		complain("%s: %s", path, strerror(errno));
		tars_key_free(key);
		return 1;
	}
	int rc = tars_key_read_with(key, save_key, &fd);
	int saved = errno;
	if (close(fd) != 0 && rc == 0) {
		rc = -1;
		saved = errno;
	}
	tars_key_free(key);
	if (rc != 0) {
		complain("%s: %s", path, strerror(saved));
		(void)unlink(path);
		return 1;
	}
	return 0;
}

/* ----------------------------------------------------------- encrypt */

struct seal {
	tars_buf *msg;    /* plaintext */
	tars_buf *out;    /* nonce | ciphertext | tag */
};

/* Runs inside a read scope: `key` is readable only for this call. */
static int
seal(const void *key, size_t len, void *arg)
{
	struct seal *s = arg;
	unsigned char *nonce = tars_buf_data(s->out);
	(void)len;
	randombytes_buf(nonce, NONCE_LEN);
	return crypto_aead_xchacha20poly1305_ietf_encrypt(nonce + NONCE_LEN,
	    NULL, tars_buf_data(s->msg), tars_buf_len(s->msg),
	    header, HEADER_LEN, NULL, nonce, key);
}

static int
encrypt(const char *keypath)
{
	int status = 1;
	struct seal s = {NULL, NULL};
	tars_key *key = load_key(keypath);
	if (key == NULL) {
		return 1;
	}
	s.msg = read_all(STDIN_FILENO);
	if (s.msg == NULL) {
		complain("stdin: %s", strerror(errno));
		goto out;
	}
	s.out = tars_buf_new(NONCE_LEN + tars_buf_len(s.msg) + TAG_LEN);
	if (s.out == NULL) {
		complain("%s", strerror(errno));
		goto out;
	}
	if (tars_key_read_with(key, seal, &s) != 0) {
		complain("encryption failed");
		goto out;
	}
	if (write_all(STDOUT_FILENO, tars_buf_data(s.out), tars_buf_len(s.out)) != 0) {
		complain("stdout: %s", strerror(errno));
		goto out;
	}
	status = 0;
out:
	tars_buf_free(s.out);
	tars_buf_free(s.msg);
	tars_key_free(key);
	return status;
}

/* ----------------------------------------------------------- decrypt */

static int
decrypt(const char *keypath)
{
	int status = 1;
	tars_buf *in = NULL, *msg = NULL;
	tars_key *key = load_key(keypath);
	if (key == NULL) {
		return 1;
	}
	in = read_all(STDIN_FILENO);
	if (in == NULL) {
		complain("stdin: %s", strerror(errno));
		goto out;
	}
	size_t inlen = tars_buf_len(in);
	if (inlen < NONCE_LEN + TAG_LEN) {
		complain("stdin: too short to be sealed (%zu bytes)", inlen);
		goto out;
	}
	msg = tars_buf_new(inlen - NONCE_LEN - TAG_LEN);
	if (msg == NULL) {
		complain("%s", strerror(errno));
		goto out;
	}
	const unsigned char *nonce = tars_buf_data(in);

	/* The same thing as tars_key_read_with, spelled out: the key is
	 * readable between these two calls only. */
	const unsigned char *k = tars_key_read_begin(key);
	if (k == NULL) {
		complain("key: %s", strerror(errno));
		goto out;
	}
	int rc = crypto_aead_xchacha20poly1305_ietf_decrypt(tars_buf_data(msg),
	    NULL, NULL, nonce + NONCE_LEN, inlen - NONCE_LEN,
	    header, HEADER_LEN, nonce, k);
	tars_key_read_end(key);

	if (rc != 0) {
		complain("authentication failed: wrong key, or damaged input");
		goto out;
	}
	if (write_all(STDOUT_FILENO, tars_buf_data(msg), tars_buf_len(msg)) != 0) {
		complain("stdout: %s", strerror(errno));
		goto out;
	}
	status = 0;
out:
	tars_buf_free(msg);
	tars_buf_free(in);
	tars_key_free(key);
	return status;
}

static int
usage(void)
{
	fputs("usage: tars-aead keygen KEYFILE\n"
	    "       tars-aead encrypt KEYFILE <plaintext >sealed\n"
	    "       tars-aead decrypt KEYFILE <sealed >plaintext\n", stderr);
	return 2;
}

int
main(int argc, char **argv)
{
	if (argc != 3) {
		return usage();
	}
	if (sodium_init() < 0) {
		complain("libsodium failed to initialise");
		return 1;
	}
	if (strcmp(argv[1], "keygen") == 0) {
		return keygen(argv[2]);
	}
	if (strcmp(argv[1], "encrypt") == 0) {
		return encrypt(argv[2]);
	}
	if (strcmp(argv[1], "decrypt") == 0) {
		return decrypt(argv[2]);
	}
	return usage();
}
