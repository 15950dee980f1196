// SPDX-License-Identifier: Apache-2.0
/* The HTTP port's token and TLS files (collector/http_auth.c): what is read,
 * what is refused with which reason, and the bearer comparison. The server
 * side (401s, HTTPS) is tests/root/test_http_auth.py. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "http_auth.h"

static char dir[] = "/tmp/sw-http-auth-XXXXXX";
static char why[256];

static void setup(void)
{
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[64];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

/* path of a file in dir holding len bytes of data, with mode */
static const char *file(const char *name, const void *data, size_t len, mode_t mode)
{
	static char path[4][128];
	static int next;
	char *p = path[next++ % 4];
	FILE *f;

	snprintf(p, sizeof(path[0]), "%s/%s", dir, name);
	f = fopen(p, "w");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(data, 1, len, f), len);
	fclose(f);
	cr_assert_eq(chmod(p, mode), 0);
	return p;
}

static const char *text(const char *name, const char *s)
{
	return file(name, s, strlen(s), 0600);
}

TestSuite(http_auth, .init = setup, .fini = teardown);

Test(http_auth, token_is_sw_secret_with_printable_bytes)
{
	struct sw_secret t;

	cr_assert_eq(sw_http_auth__read_token(text("t", "0123456789abcdef0123\r\n \t\n"), &t, why,
					      sizeof(why)),
		     0, "%s", why);
	cr_assert_eq(t.len, 20);
	cr_assert_eq(memcmp(t.b, "0123456789abcdef0123", 20), 0);
	cr_assert_not(t.world_readable);
	cr_assert_eq(sw_http_auth__read_token(file("o", "0123456789abcdef", 16, 0644), &t, why,
					      sizeof(why)),
		     0, "%s", why);
	cr_assert(t.world_readable); /* a warning, not a refusal */
}

static int token_err(const char *path)
{
	struct sw_secret t;
	int rc;

	why[0] = '\0';
	rc = sw_http_auth__read_token(path, &t, why, sizeof(why));
	if (rc) /* nothing of a refused token is left */
		for (size_t i = 0; i < sizeof(t.b); i++)
			cr_assert_eq(t.b[i], 0);
	return rc;
}

Test(http_auth, bad_tokens_are_refused_with_a_reason)
{
	char big[SW_SECRET_MAX + 2];

	cr_assert_eq(token_err(text("short", "0123456789abcde\n")), -EINVAL);
	cr_assert(strstr(why, "15 bytes"), "%s", why);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	cr_assert_eq(token_err(text("long", big)), -EINVAL);
	big[SW_SECRET_MAX] = '\0'; /* 4096: the longest there is */
	cr_assert_eq(token_err(text("longest", big)), 0, "%s", why);
	/* what the agent port's token may hold and a header may not */
	cr_assert_eq(token_err(text("space", "0123456789 abcdef\n")), -EINVAL);
	cr_assert(strstr(why, "byte 10 of the token"), "%s", why);
	cr_assert(strstr(why, "0x20"), "%s", why);
	cr_assert_eq(token_err(text("lead", " 0123456789abcdef")), -EINVAL);
	cr_assert_eq(token_err(text("utf8", "0123456789abcdef\xc3\xa9")), -EINVAL);
	cr_assert_eq(token_err(file("nul", "0123456789\0abcdef", 17, 0600)), -EINVAL);
	cr_assert(strstr(why, "0x00"), "%s", why);
	cr_assert_eq(token_err("/nonexistent/sw-token"), -ENOENT);
}

Test(http_auth, bearer_compares_the_whole_token)
{
	static const char tok[] = "s3cret-t0ken-0123456789";
	struct sw_secret t = {.len = sizeof(tok) - 1};
	static const char *ok[] = {"Bearer s3cret-t0ken-0123456789",
				   "bearer s3cret-t0ken-0123456789",
				   "BEARER   s3cret-t0ken-0123456789"};
	static const char *bad[] = {"",
				    "Bearer",
				    "Bearer ",
				    "Bearers3cret-t0ken-0123456789",
				    "Basic s3cret-t0ken-0123456789",
				    "Bearer s3cret-t0ken-012345678",
				    "Bearer s3cret-t0ken-01234567890",
				    "Bearer S3cret-t0ken-0123456789",
				    "Bearer s3cret-t0ken-0123456788",
				    "Bearer  s3cret-t0ken-0123456789 x",
				    "\tBearer s3cret-t0ken-0123456789",
				    "Bearer\ts3cret-t0ken-0123456789"};

	memcpy(t.b, tok, t.len);
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		cr_assert(sw_http_auth__bearer_ok(&t, ok[i], strlen(ok[i])), "%s", ok[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_not(sw_http_auth__bearer_ok(&t, bad[i], strlen(bad[i])), "'%s'", bad[i]);
	/* a NUL inside the header value does not end the comparison */
	cr_assert_not(sw_http_auth__bearer_ok(&t, "Bearer s3cret\0t0ken-0123456789", 30));
	/* the length given, not a terminator: the value need not end in one */
	cr_assert(sw_http_auth__bearer_ok(&t, "Bearer s3cret-t0ken-0123456789XYZ", 30));
}

#define CERT                                                                                       \
	"-----BEGIN CERTIFICATE-----\n"                                                            \
	"MIIBszCCAVmgAwIBAgIUQ2Vy\n"                                                               \
	"dGlmaWNhdGU=\n"                                                                           \
	"-----END CERTIFICATE-----\n"
#define KEY                                                                                        \
	"-----BEGIN PRIVATE KEY-----\n"                                                            \
	"MIGHAgEAMBMGByqGSM49AgEG\n"                                                               \
	"-----END PRIVATE KEY-----\n"

static int pem_err(const char *path, bool key)
{
	char *t = NULL;
	bool loose;
	int rc;

	why[0] = '\0';
	rc = sw_http_auth__read_pem(path, key, &t, &loose, why, sizeof(why));
	cr_assert(rc < 0 || t);
	free(t);
	return rc;
}

Test(http_auth, pem_files_that_look_right_are_read)
{
	/* `openssl x509 -text` output before the block, a chain of two, CRLF */
	cr_assert_eq(pem_err(text("c", "Certificate:\n    Data: ...\n" CERT CERT), false), 0, "%s",
		     why);
	cr_assert_eq(pem_err(text("crlf", "-----BEGIN CERTIFICATE-----\r\nMIIB\r\n"
					  "-----END CERTIFICATE-----\r\n"),
			     false),
		     0, "%s", why);
	cr_assert_eq(pem_err(text("k", KEY), true), 0, "%s", why);
	cr_assert_eq(pem_err(text("ec", "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n"
					"-----END EC PARAMETERS-----\n"
					"-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n"
					"-----END EC PRIVATE KEY-----\n"),
			     true),
		     0, "%s", why);
}

Test(http_auth, bad_pem_files_are_named_with_a_reason)
{
	cr_assert_eq(pem_err(text("k", KEY), false), -EINVAL);
	cr_assert(strstr(why, "swapped"), "%s", why);
	cr_assert_eq(pem_err(text("c", CERT), true), -EINVAL);
	cr_assert(strstr(why, "swapped"), "%s", why);
	cr_assert_eq(pem_err(text("none", "hello\n"), false), -EINVAL);
	cr_assert(strstr(why, "no PEM certificate"), "%s", why);
	cr_assert_eq(pem_err(file("der", "\x30\x82\x01\x00\x00", 5, 0600), false), -EINVAL);
	cr_assert(strstr(why, "binary"), "%s", why);
	cr_assert_eq(pem_err(text("cut", "-----BEGIN CERTIFICATE-----\nMIIB\n"), false), -EINVAL);
	cr_assert(strstr(why, "cut short"), "%s", why);
	cr_assert_eq(pem_err(text("bad64", "-----BEGIN CERTIFICATE-----\nMII!B\n"
					   "-----END CERTIFICATE-----\n"),
			     false),
		     -EINVAL);
	cr_assert(strstr(why, "line 2"), "%s", why);
	cr_assert_eq(pem_err(text("mism", "-----BEGIN CERTIFICATE-----\nMIIB\n"
					  "-----END PRIVATE KEY-----\n"),
			     false),
		     -EINVAL);
	cr_assert_eq(pem_err(text("empty", "-----BEGIN CERTIFICATE-----\n"
					   "-----END CERTIFICATE-----\n"),
			     false),
		     -EINVAL);
	cr_assert_eq(pem_err(text("enc", "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n"
					 "-----END ENCRYPTED PRIVATE KEY-----\n"),
			     true),
		     -EINVAL);
	cr_assert(strstr(why, "encrypted"), "%s", why);
	cr_assert_eq(pem_err(text("oldenc", "-----BEGIN RSA PRIVATE KEY-----\n"
					    "Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00\n\n"
					    "MIIB\n-----END RSA PRIVATE KEY-----\n"),
			     true),
		     -EINVAL);
	cr_assert(strstr(why, "encrypted"), "%s", why);
	cr_assert_eq(pem_err(text("two", KEY KEY), true), -EINVAL);
	cr_assert(strstr(why, "2 private keys"), "%s", why);
	cr_assert_eq(pem_err("/nonexistent/sw.pem", false), -ENOENT);
}
