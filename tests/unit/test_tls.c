// SPDX-License-Identifier: Apache-2.0
/*
 * common/tls.c: one clear line for each bad file, and the non-blocking
 * contract (-EAGAIN and what to wait for, bytes GnuTLS holds, a send held
 * in a record) over a socketpair, both ends in this thread. The PKI is made
 * here with GnuTLS's own API (a CA, a server certificate for 127.0.0.1, a
 * client certificate), in a temp dir: no CLI tool, no committed key.
 */
#include "test_tls_pki.h"
#include "tls.h"
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

TestSuite(tls, .init = pki_make, .fini = pki_remove);

static struct sw_tls_files files(const char *cert, const char *key, const char *ca)
{
	return (struct sw_tls_files){
	    .cert = cert ? pki_path(cert) : NULL,
	    .key = key ? pki_path(key) : NULL,
	    .ca = ca ? pki_path(ca) : NULL,
	    .cert_opt = "--tls-cert",
	    .key_opt = "--tls-key",
	    .ca_opt = "--tls-ca",
	};
}

/* NULL, and one line naming the option, the file and `want`. */
static void bad(bool server, struct sw_tls_files f, const char *opt_file, const char *want)
{
	char err[1024] = "";
	struct sw_tls_ctx *c = server ? sw_tls_ctx__server(&f, err, sizeof(err))
				      : sw_tls_ctx__client(&f, err, sizeof(err));

	cr_assert_null(c, "accepted: %s", opt_file);
	cr_assert_null(strchr(err, '\n'), "one line: %s", err);
	cr_assert(strstr(err, opt_file), "'%s' does not name '%s'", err, opt_file);
	cr_assert(strstr(err, want), "'%s' does not say '%s'", err, want);
}

Test(tls, bad_files_are_one_line_naming_the_file)
{
	char want[256];

	snprintf(want, sizeof(want), "--tls-cert %s", pki_path("missing.pem"));
	bad(true, files("missing.pem", "server.key", NULL), want, "cannot open it");
	snprintf(want, sizeof(want), "--tls-cert %s", pki_dir);
	bad(true,
	    (struct sw_tls_files){
		.cert = pki_dir, .key = pki_path("server.key"), .cert_opt = "--tls-cert"},
	    want, "not a regular file");
	snprintf(want, sizeof(want), "--tls-cert %s", pki_path("empty.pem"));
	bad(true, files("empty.pem", "server.key", NULL), want, "empty");
	snprintf(want, sizeof(want), "--tls-cert %s", pki_path("garbage.pem"));
	bad(true, files("garbage.pem", "server.key", NULL), want, "no PEM certificate");
	snprintf(want, sizeof(want), "--tls-key %s", pki_path("server.pem"));
	bad(true, files("server.pem", "server.pem", NULL), want, "no usable private key");
	snprintf(want, sizeof(want), "--tls-key %s", pki_path("client.key"));
	bad(true, files("server.pem", "client.key", NULL), want,
	    "is not the key of the certificate");
	bad(true, files("server.pem", NULL, NULL), "--tls-key", "go together");
	bad(false, files(NULL, "client.key", NULL), "--tls-cert", "go together");
	snprintf(want, sizeof(want), "--tls-ca %s", pki_path("garbage.pem"));
	bad(false, files(NULL, NULL, "garbage.pem"), want, "no PEM certificate");
}

struct pair {
	struct sw_tls_ctx *sc, *cc;
	struct sw_tls *s, *c;
	int fds[2]; /* [0] server, [1] client */
};

static void pair_new(struct pair *p, struct sw_tls_files sf, struct sw_tls_files cf,
		     const char *name)
{
	char err[1024] = "";

	p->sc = sw_tls_ctx__server(&sf, err, sizeof(err));
	cr_assert_not_null(p->sc, "%s", err);
	p->cc = sw_tls_ctx__client(&cf, err, sizeof(err));
	cr_assert_not_null(p->cc, "%s", err);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p->fds), 0);
	p->s = sw_tls__new(p->sc, p->fds[0], NULL);
	p->c = sw_tls__new(p->cc, p->fds[1], name);
	cr_assert(p->s && p->c);
}

static void pair_free(struct pair *p)
{
	sw_tls__free(p->s);
	sw_tls__free(p->c);
	close(p->fds[0]);
	close(p->fds[1]);
	sw_tls_ctx__free(p->sc);
	sw_tls_ctx__free(p->cc);
}

/* Both ends step until neither waits; *rs, *rc: their last results. */
static void handshake(struct pair *p, int *rs, int *rc)
{
	*rs = *rc = -EAGAIN;
	for (int i = 0; i < 1000 && (*rs == -EAGAIN || *rc == -EAGAIN); i++) {
		if (*rc == -EAGAIN)
			*rc = sw_tls__handshake(p->c);
		if (*rs == -EAGAIN)
			*rs = sw_tls__handshake(p->s);
		/* a side that waits says for what: reading, in a socketpair */
		if (*rc == -EAGAIN)
			cr_assert(sw_tls__want(p->c) == SW_TLS_WANT_READ ||
				  sw_tls__want(p->c) == SW_TLS_WANT_WRITE);
	}
}

Test(tls, handshake_data_and_pending)
{
	static uint8_t out[40000], in[40000];
	struct pair p;
	size_t got = 0, sent = 0;
	uint8_t small[100];
	ssize_t n;
	int rs, rc;

	pair_new(&p, files("server.pem", "server.key", "ca.pem"),
		 files("client.pem", "client.key", "ca.pem"), "127.0.0.1");
	handshake(&p, &rs, &rc);
	cr_assert_eq(rc, 0, "client: %s", sw_tls__error(p.c));
	cr_assert_eq(rs, 0, "server: %s", sw_tls__error(p.s));
	cr_assert(sw_tls__ready(p.s) && sw_tls__ready(p.c));
	for (size_t i = 0; i < sizeof(out); i++)
		out[i] = (uint8_t)(i * 7);
	/* more than a record (16 KiB): partial sends as a socket's */
	while (sent < sizeof(out)) {
		n = sw_tls__send(p.c, out + sent, sizeof(out) - sent);
		cr_assert_gt(n, 0, "send: %zd %s", n, sw_tls__error(p.c));
		sent += (size_t)n;
	}
	/* a read smaller than the record: the rest is held by GnuTLS, and the
	 * socket may show nothing more (epoll would sleep on it) */
	n = sw_tls__recv(p.s, small, sizeof(small));
	cr_assert_eq(n, (ssize_t)sizeof(small));
	cr_assert_gt(sw_tls__pending(p.s), 0);
	memcpy(in, small, sizeof(small));
	got = sizeof(small);
	while (got < sizeof(in)) {
		n = sw_tls__recv(p.s, in + got, sizeof(in) - got);
		cr_assert_gt(n, 0, "recv: %zd %s", n, sw_tls__error(p.s));
		got += (size_t)n;
	}
	cr_assert_eq(memcmp(in, out, sizeof(out)), 0);
	cr_assert_eq(sw_tls__pending(p.s), 0);
	cr_assert_eq(sw_tls__recv(p.s, small, sizeof(small)), -EAGAIN);
	cr_assert_eq(sw_tls__want(p.s), SW_TLS_WANT_READ);
	/* the client's close_notify is an end of stream, not an error */
	sw_tls__free(p.c);
	p.c = NULL;
	cr_assert_eq(sw_tls__recv(p.s, small, sizeof(small)), 0);
	pair_free(&p);
}

Test(tls, a_send_the_socket_refused_is_held_until_repeated)
{
	static uint8_t buf[4096], sink[1 << 16];
	struct pair p;
	int one = 4096, rs, rc;
	ssize_t n;

	pair_new(&p, files("server.pem", "server.key", NULL), files(NULL, NULL, "ca.pem"),
		 "127.0.0.1");
	handshake(&p, &rs, &rc);
	cr_assert(rs == 0 && rc == 0, "%s / %s", sw_tls__error(p.s), sw_tls__error(p.c));
	setsockopt(p.fds[1], SOL_SOCKET, SO_SNDBUF, &one, sizeof(one));
	for (int i = 0; i < 10000; i++) {
		memset(buf, i & 0xff, sizeof(buf));
		n = sw_tls__send(p.c, buf, sizeof(buf));
		if (n == -EAGAIN)
			break;
		cr_assert_gt(n, 0);
	}
	cr_assert_eq(n, -EAGAIN, "the socket never filled");
	cr_assert(sw_tls__send_held(p.c));
	cr_assert_eq(sw_tls__want(p.c), SW_TLS_WANT_WRITE);
	/* room again: the same buf and len finish the record, counted (the
	 * tiny buffer may take it in more than one go) */
	for (int i = 0; i < 100 && n == -EAGAIN; i++) {
		while (sw_tls__recv(p.s, sink, sizeof(sink)) > 0)
			;
		n = sw_tls__send(p.c, buf, sizeof(buf));
		cr_assert(n > 0 || (n == -EAGAIN && sw_tls__send_held(p.c)), "%zd", n);
	}
	cr_assert_eq(n, (ssize_t)sizeof(buf));
	cr_assert(!sw_tls__send_held(p.c));
	pair_free(&p);
}

Test(tls, a_server_named_otherwise_is_rejected)
{
	struct pair p;
	int rs, rc;

	pair_new(&p, files("server.pem", "server.key", NULL), files(NULL, NULL, "ca.pem"),
		 "collector.invalid");
	handshake(&p, &rs, &rc);
	cr_assert_eq(rc, -EKEYREJECTED, "%d %s", rc, sw_tls__error(p.c));
	cr_assert(strstr(sw_tls__error(p.c), "server's certificate is not trusted"), "%s",
		  sw_tls__error(p.c));
	cr_assert(strstr(sw_tls__error(p.c), "does not match"), "%s", sw_tls__error(p.c));
	/* the client said why: the server's handshake ends on its alert */
	cr_assert_eq(rs, -ECONNREFUSED, "%d %s", rs, sw_tls__error(p.s));
	pair_free(&p);
}

Test(tls, an_unknown_issuer_is_rejected)
{
	struct pair p;
	int rs, rc;

	pair_new(&p, files("server.pem", "server.key", NULL), files(NULL, NULL, "other.pem"),
		 "127.0.0.1");
	handshake(&p, &rs, &rc);
	cr_assert_eq(rc, -EKEYREJECTED, "%d %s", rc, sw_tls__error(p.c));
	cr_assert(strstr(sw_tls__error(p.c), "issuer"), "%s", sw_tls__error(p.c));
	pair_free(&p);
}

Test(tls, a_client_without_certificate_is_refused)
{
	uint8_t b[16];
	struct pair p;
	int rs, rc;
	ssize_t n = 0;

	pair_new(&p, files("server.pem", "server.key", "ca.pem"), files(NULL, NULL, "ca.pem"),
		 "127.0.0.1");
	handshake(&p, &rs, &rc);
	cr_assert_eq(rs, -EKEYREJECTED, "%d %s", rs, sw_tls__error(p.s));
	cr_assert(strstr(sw_tls__error(p.s), "sent no certificate"), "%s", sw_tls__error(p.s));
	cr_assert(strstr(sw_tls__error(p.s), "--tls-ca"), "%s", sw_tls__error(p.s));
	/* TLS 1.3: the client's handshake was done before the server looked
	 * at its certificate; it learns at its next read */
	if (rc == 0)
		n = sw_tls__recv(p.c, b, sizeof(b));
	else
		n = rc;
	cr_assert_eq(n, -ECONNREFUSED, "%zd %s", n, sw_tls__error(p.c));
	pair_free(&p);
}

Test(tls, a_peer_that_does_not_speak_tls)
{
	static const char frame[] = "SW\x01\x00\x00\x00\x00\x04\x12\x02\x0a\x00";
	struct pair p;
	int rs;

	pair_new(&p, files("server.pem", "server.key", NULL), files(NULL, NULL, "ca.pem"),
		 "127.0.0.1");
	cr_assert_eq(write(p.fds[1], frame, sizeof(frame) - 1), (ssize_t)sizeof(frame) - 1);
	rs = sw_tls__handshake(p.s);
	cr_assert(rs < 0 && rs != -EAGAIN, "%d", rs);
	cr_assert_neq(sw_tls__error(p.s)[0], '\0');
	pair_free(&p);
}
