// SPDX-License-Identifier: Apache-2.0
#include "tls.h"
#include "log.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* TLS 1.0 and 1.1 are deprecated (RFC 8996); both our ends speak 1.3. */
#define SW_TLS_PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
/* A PEM file larger than this is not a certificate, key or CA bundle we
 * were meant to read (Debian's whole system bundle is ~220 KiB). */
#define SW_TLS_FILE_MAX (4u << 20)
/* Non-fatal returns (warning alerts, a renegotiation request we ignore)
 * taken in one call before handing back -EAGAIN: a peer sending only those
 * must not keep us in a loop. */
#define SW_TLS_NONFATAL_MAX 16

struct sw_tls_ctx {
	gnutls_certificate_credentials_t cred;
	gnutls_priority_t prio;
	bool server;
	bool client_certs; /* server: a client certificate is required */
	char ca_opt[32];   /* for "the client sent no certificate" */
};

struct sw_tls {
	gnutls_session_t s;
	const struct sw_tls_ctx *ctx;
	bool ready;
	bool held; /* a record of the last send is built, not out yet */
	bool dead;
	enum sw_tls_want want;
	/* what the server's certificate must say (client side); GnuTLS keeps
	 * pointers into these for the session's life */
	char name[256];
	gnutls_typed_vdata_st vdata[2];
	char vstatus[256]; /* server: why the client's certificate was rejected */
	char err[512];
};

/* key purposes (extended key usage); a certificate without the extension
 * may serve any purpose */
static char kp_server[] = GNUTLS_KP_TLS_WWW_SERVER;
static char kp_client[] = GNUTLS_KP_TLS_WWW_CLIENT;

static const char *opt_or(const char *opt, const char *dflt) { return opt ? opt : dflt; }

/*
 * The bytes of a PEM file (freed with free()), or one line in err. Read
 * here rather than by GnuTLS's *_file functions, which say "Error while
 * reading file" for a missing file, a directory and a permission alike.
 * *mode (may be NULL): its permission bits.
 */
static int load_file(const char *opt, const char *path, mode_t *mode, gnutls_datum_t *d, char *err,
		     size_t errlen)
{
	struct stat st;
	ssize_t n;
	size_t got = 0;
	int fd, e;

	d->data = NULL;
	d->size = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		e = errno;
		snprintf(err, errlen, "%s %s: cannot open it: %s; give a readable PEM file", opt,
			 path, strerror(e));
		return -e;
	}
	if (fstat(fd, &st)) {
		e = errno;
		snprintf(err, errlen, "%s %s: cannot read it: %s", opt, path, strerror(e));
		close(fd);
		return -e;
	}
	if (!S_ISREG(st.st_mode) || st.st_size <= 0 ||
	    (unsigned long long)st.st_size > SW_TLS_FILE_MAX) {
		snprintf(err, errlen, "%s %s: not a PEM file (%s); give the PEM file itself", opt,
			 path,
			 !S_ISREG(st.st_mode) ? "not a regular file"
			 : st.st_size <= 0    ? "empty"
					      : "larger than 4 MiB");
		close(fd);
		return -EINVAL;
	}
	if (mode)
		*mode = st.st_mode & 07777;
	d->data = malloc((size_t)st.st_size + 1);
	if (!d->data) {
		close(fd);
		snprintf(err, errlen, "%s %s: out of memory", opt, path);
		return -ENOMEM;
	}
	while (got < (size_t)st.st_size) {
		n = read(fd, d->data + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	e = errno;
	close(fd);
	if (got != (size_t)st.st_size) {
		snprintf(err, errlen, "%s %s: cannot read it: %s", opt, path,
			 strerror(got ? EIO : e));
		free(d->data);
		d->data = NULL;
		return -EIO;
	}
	d->data[got] = '\0';
	d->size = (unsigned int)got;
	return 0;
}

static void fmt_time(time_t t, char *buf, size_t size)
{
	struct tm tm;

	if (t == (time_t)-1 || !gmtime_r(&t, &tm) ||
	    !strftime(buf, size, "%Y-%m-%d %H:%M UTC", &tm))
		snprintf(buf, size, "an unknown date");
}

/* At least one PEM certificate in d; with `own`, the first is ours: a
 * certificate out of its dates is said now, not at each peer's refusal. */
static int check_certs(const char *opt, const char *path, const gnutls_datum_t *d, bool own,
		       char *err, size_t errlen)
{
	gnutls_x509_crt_t *crts = NULL;
	unsigned int n = 0;
	char when[64];
	time_t now, t;
	int rc;

	rc = gnutls_x509_crt_list_import2(&crts, &n, d, GNUTLS_X509_FMT_PEM, 0);
	if (rc < 0 || !n) {
		snprintf(err, errlen,
			 "%s %s: no PEM certificate in it (%s); give certificates in PEM "
			 "(-----BEGIN CERTIFICATE-----)",
			 opt, path, rc < 0 ? gnutls_strerror(rc) : "none found");
		return -EINVAL;
	}
	if (own) {
		now = time(NULL);
		t = gnutls_x509_crt_get_expiration_time(crts[0]);
		if (t != (time_t)-1 && t < now) {
			fmt_time(t, when, sizeof(when));
			sw_warn("%s %s expired on %s: peers will refuse it; renew it", opt, path,
				when);
		}
		t = gnutls_x509_crt_get_activation_time(crts[0]);
		if (t != (time_t)-1 && t > now) {
			fmt_time(t, when, sizeof(when));
			sw_warn("%s %s is not valid before %s: peers will refuse it until then; "
				"check this host's clock",
				opt, path, when);
		}
	}
	for (unsigned int i = 0; i < n; i++)
		gnutls_x509_crt_deinit(crts[i]);
	gnutls_free(crts);
	return 0;
}

static int check_key(const char *opt, const char *path, const gnutls_datum_t *d, char *err,
		     size_t errlen)
{
	gnutls_privkey_t pk;
	int rc;

	if (gnutls_privkey_init(&pk) < 0) {
		snprintf(err, errlen, "%s %s: out of memory", opt, path);
		return -ENOMEM;
	}
	rc = gnutls_privkey_import_x509_raw(pk, d, GNUTLS_X509_FMT_PEM, NULL, 0);
	gnutls_privkey_deinit(pk);
	if (rc < 0) {
		snprintf(err, errlen,
			 "%s %s: no usable private key in it (%s); give the unencrypted key in PEM "
			 "(-----BEGIN PRIVATE KEY-----)",
			 opt, path, gnutls_strerror(rc));
		return -EINVAL;
	}
	return 0;
}

/* Our certificate and key, each checked alone first, so that the line
 * names the file at fault. */
static int load_pair(struct sw_tls_ctx *c, const struct sw_tls_files *f, char *err, size_t errlen)
{
	const char *copt = opt_or(f->cert_opt, "certificate"), *kopt = opt_or(f->key_opt, "key");
	gnutls_datum_t cd = {0}, kd = {0};
	mode_t mode = 0;
	int rc;

	rc = load_file(copt, f->cert, NULL, &cd, err, errlen);
	if (rc)
		goto out;
	rc = check_certs(copt, f->cert, &cd, true, err, errlen);
	if (rc)
		goto out;
	rc = load_file(kopt, f->key, &mode, &kd, err, errlen);
	if (rc)
		goto out;
	rc = check_key(kopt, f->key, &kd, err, errlen);
	if (rc)
		goto out;
	/* the collector's or the agent's identity: said, not refused (a
	 * group-readable key is a deliberate setup in some places) */
	if (mode & 077)
		sw_warn("%s %s can be read by other users (mode %04o): it is a private key; chmod "
			"600 it",
			kopt, f->key, (unsigned int)mode);
	rc = gnutls_certificate_set_x509_key_mem(c->cred, &cd, &kd, GNUTLS_X509_FMT_PEM);
	if (rc == GNUTLS_E_CERTIFICATE_KEY_MISMATCH) {
		snprintf(err, errlen,
			 "%s %s is not the key of the certificate in %s %s; give the key the "
			 "certificate was made for",
			 kopt, f->key, copt, f->cert);
		rc = -EINVAL;
	} else if (rc < 0) {
		snprintf(err, errlen, "%s %s with %s %s: %s; give a PEM certificate and its key",
			 copt, f->cert, kopt, f->key, gnutls_strerror(rc));
		rc = -EINVAL;
	} else {
		rc = 0;
	}
out:
	if (kd.data) /* a private key: not left in freed memory */
		gnutls_memset(kd.data, 0, kd.size);
	free(kd.data);
	free(cd.data);
	return rc;
}

static int load_ca(struct sw_tls_ctx *c, const char *opt, const char *path, char *err,
		   size_t errlen)
{
	gnutls_datum_t d = {0};
	int rc;

	rc = load_file(opt, path, NULL, &d, err, errlen);
	if (!rc)
		rc = check_certs(opt, path, &d, false, err, errlen);
	if (!rc) {
		rc = gnutls_certificate_set_x509_trust_mem(c->cred, &d, GNUTLS_X509_FMT_PEM);
		if (rc <= 0) {
			snprintf(err, errlen,
				 "%s %s: no CA certificate taken from it (%s); give the "
				 "issuing CA's certificate in PEM",
				 opt, path, rc < 0 ? gnutls_strerror(rc) : "none");
			rc = -EINVAL;
		} else {
			rc = 0;
		}
	}
	free(d.data);
	return rc;
}

static struct sw_tls_ctx *ctx_new(bool server, const struct sw_tls_files *f, char *err,
				  size_t errlen)
{
	const char *copt = opt_or(f->cert_opt, "certificate"), *kopt = opt_or(f->key_opt, "key");
	const char *aopt = opt_or(f->ca_opt, "CA");
	struct sw_tls_ctx *c;
	const char *pos = NULL;
	int rc;

	if (!f->cert != !f->key || (server && !f->cert)) {
		snprintf(err, errlen,
			 "%s and %s go together: give both (a PEM certificate and its "
			 "private key)",
			 copt, kopt);
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "TLS: out of memory");
		return NULL;
	}
	c->server = server;
	snprintf(c->ca_opt, sizeof(c->ca_opt), "%s", aopt);
	rc = gnutls_certificate_allocate_credentials(&c->cred);
	if (rc < 0) {
		snprintf(err, errlen, "TLS: %s", gnutls_strerror(rc));
		c->cred = NULL;
		goto fail;
	}
	rc = gnutls_priority_init(&c->prio, SW_TLS_PRIORITY, &pos);
	if (rc < 0) {
		snprintf(err, errlen, "TLS: GnuTLS refuses the priorities \"%s\" at \"%s\": %s",
			 SW_TLS_PRIORITY, pos ? pos : "?", gnutls_strerror(rc));
		c->prio = NULL;
		goto fail;
	}
	if (f->cert && load_pair(c, f, err, errlen))
		goto fail;
	if (f->ca) {
		if (load_ca(c, aopt, f->ca, err, errlen))
			goto fail;
		c->client_certs = server;
	} else if (!server) {
		rc = gnutls_certificate_set_x509_system_trust(c->cred);
		if (rc <= 0) {
			snprintf(err, errlen,
				 "TLS: no system CA certificates could be loaded (%s); "
				 "install ca-certificates, or give the collector's CA with %s FILE",
				 rc < 0 ? gnutls_strerror(rc) : "none found", aopt);
			goto fail;
		}
	}
	return c;
fail:
	sw_tls_ctx__free(c);
	return NULL;
}

struct sw_tls_ctx *sw_tls_ctx__server(const struct sw_tls_files *f, char *err, size_t errlen)
{
	return ctx_new(true, f, err, errlen);
}

struct sw_tls_ctx *sw_tls_ctx__client(const struct sw_tls_files *f, char *err, size_t errlen)
{
	return ctx_new(false, f, err, errlen);
}

void sw_tls_ctx__free(struct sw_tls_ctx *c)
{
	if (!c)
		return;
	if (c->prio)
		gnutls_priority_deinit(c->prio);
	if (c->cred)
		gnutls_certificate_free_credentials(c->cred);
	free(c);
}

static void status_text(unsigned int status, char *buf, size_t size)
{
	gnutls_datum_t out = {0};

	if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &out, 0) == 0 &&
	    out.data) {
		size_t n;

		snprintf(buf, size, "%s", (const char *)out.data);
		gnutls_free(out.data);
		n = strlen(buf);
		while (n && (buf[n - 1] == ' ' || buf[n - 1] == '\n'))
			buf[--n] = '\0';
	} else {
		snprintf(buf, size, "verification status 0x%x", status);
	}
}

/* Server, with a client CA: the client's certificate, checked as soon as
 * it arrives (the handshake fails if this returns non-zero). */
static int verify_client(gnutls_session_t s)
{
	struct sw_tls *t = gnutls_session_get_ptr(s);
	gnutls_typed_vdata_st vd = {.type = GNUTLS_DT_KEY_PURPOSE_OID,
				    .data = (unsigned char *)kp_client};
	unsigned int status = 0;
	int rc;

	rc = gnutls_certificate_verify_peers(s, &vd, 1, &status);
	if (rc < 0) {
		snprintf(t->vstatus, sizeof(t->vstatus), "%s", gnutls_strerror(rc));
		return -1;
	}
	if (!status)
		return 0;
	status_text(status, t->vstatus, sizeof(t->vstatus));
	return -1;
}

static bool is_ip(const char *s)
{
	unsigned char a[16];

	return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

struct sw_tls *sw_tls__new(struct sw_tls_ctx *c, int fd, const char *server_name)
{
	struct sw_tls *t;
	int rc, e = EPROTO;

	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->ctx = c;
	rc = gnutls_init(&t->s, (c->server ? GNUTLS_SERVER : GNUTLS_CLIENT) | GNUTLS_NONBLOCK |
				    GNUTLS_NO_SIGNAL);
	if (rc < 0) {
		free(t);
		errno = rc == GNUTLS_E_MEMORY_ERROR ? ENOMEM : EPROTO;
		return NULL;
	}
	if (gnutls_priority_set(t->s, c->prio) < 0 ||
	    gnutls_credentials_set(t->s, GNUTLS_CRD_CERTIFICATE, c->cred) < 0)
		goto fail;
	gnutls_transport_set_int(t->s, fd);
	/* the callers' deadlines govern (--handshake-timeout, the stream's) */
	gnutls_handshake_set_timeout(t->s, 0);
	gnutls_session_set_ptr(t->s, t);
	if (c->server) {
		if (c->client_certs) {
			gnutls_certificate_server_set_request(t->s, GNUTLS_CERT_REQUIRE);
			gnutls_session_set_verify_function(t->s, verify_client);
		}
		return t;
	}
	t->vdata[0] = (gnutls_typed_vdata_st){.type = GNUTLS_DT_KEY_PURPOSE_OID,
					      .data = (unsigned char *)kp_server};
	if (server_name && server_name[0]) {
		snprintf(t->name, sizeof(t->name), "%s", server_name);
		/* SNI carries DNS names only (RFC 6066, 3); an IP address is
		 * matched to the certificate's IP SANs all the same */
		if (!is_ip(t->name) &&
		    gnutls_server_name_set(t->s, GNUTLS_NAME_DNS, t->name, strlen(t->name)) < 0)
			goto fail;
		t->vdata[1] = (gnutls_typed_vdata_st){.type = GNUTLS_DT_DNS_HOSTNAME,
						      .data = (unsigned char *)t->name};
		gnutls_session_set_verify_cert2(t->s, t->vdata, 2, 0);
	} else {
		gnutls_session_set_verify_cert2(t->s, t->vdata, 1, 0);
	}
	return t;
fail:
	gnutls_deinit(t->s);
	free(t);
	errno = e;
	return NULL;
}

void sw_tls__free(struct sw_tls *t)
{
	if (!t)
		return;
	/* close_notify, without waiting: a full socket just goes without */
	if (t->ready && !t->dead && !t->held)
		gnutls_bye(t->s, GNUTLS_SHUT_WR);
	gnutls_deinit(t->s);
	free(t);
}

static void set_want(struct sw_tls *t)
{
	t->want = gnutls_record_get_direction(t->s) ? SW_TLS_WANT_WRITE : SW_TLS_WANT_READ;
}

/* The session is dead: one line in t->err, and the errno class. */
static int fail(struct sw_tls *t, int rc, bool handshake)
{
	bool server = t->ctx->server;
	char st[256];
	int e, saved = errno;

	t->dead = true;
	t->held = false;
	switch (rc) {
	case GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR:
		status_text(gnutls_session_get_verify_cert_status(t->s), st, sizeof(st));
		snprintf(t->err, sizeof(t->err), "the %s certificate is not trusted: %s",
			 server ? "client's" : "server's", st);
		e = EKEYREJECTED;
		break;
	case GNUTLS_E_CERTIFICATE_ERROR:
		snprintf(t->err, sizeof(t->err), "the %s certificate is not trusted: %s",
			 server ? "client's" : "server's",
			 t->vstatus[0] ? t->vstatus : gnutls_strerror(rc));
		e = EKEYREJECTED;
		break;
	case GNUTLS_E_NO_CERTIFICATE_FOUND:
	case GNUTLS_E_CERTIFICATE_REQUIRED:
		if (server)
			snprintf(t->err, sizeof(t->err),
				 "the client sent no certificate, and %s requires one",
				 t->ctx->ca_opt);
		else
			snprintf(t->err, sizeof(t->err), "%s", gnutls_strerror(rc));
		e = EKEYREJECTED;
		break;
	case GNUTLS_E_FATAL_ALERT_RECEIVED:
		snprintf(t->err, sizeof(t->err), "the %s refused the connection: TLS alert '%s'",
			 server ? "client" : "server",
			 gnutls_alert_get_name(gnutls_alert_get(t->s)));
		e = ECONNREFUSED;
		break;
	case GNUTLS_E_PREMATURE_TERMINATION:
		snprintf(t->err, sizeof(t->err), "the %s closed the connection%s",
			 server ? "client" : "server",
			 handshake ? " inside the TLS handshake" : "");
		e = ECONNRESET;
		break;
	case GNUTLS_E_PULL_ERROR:
	case GNUTLS_E_PUSH_ERROR:
		/* a peer that refuses our certificate often closes with our
		 * next flight unread, a reset that overtakes its alert */
		if (handshake)
			snprintf(t->err, sizeof(t->err),
				 "the %s ended the connection inside the TLS handshake (%s)%s",
				 server ? "client" : "server", strerror(saved),
				 server ? ": a client that does not trust this certificate?" : "");
		else
			snprintf(t->err, sizeof(t->err), "%s: %s", gnutls_strerror(rc),
				 strerror(saved));
		e = ECONNRESET;
		break;
	case GNUTLS_E_UNEXPECTED_PACKET:
	case GNUTLS_E_UNEXPECTED_PACKET_LENGTH:
	case GNUTLS_E_UNSUPPORTED_VERSION_PACKET:
	case GNUTLS_E_UNEXPECTED_HANDSHAKE_PACKET:
		snprintf(t->err, sizeof(t->err), "%s (a peer that does not speak TLS?)",
			 gnutls_strerror(rc));
		e = EPROTO;
		break;
	default:
		snprintf(t->err, sizeof(t->err), "%s", gnutls_strerror(rc));
		e = rc == GNUTLS_E_MEMORY_ERROR ? ENOMEM : EPROTO;
		break;
	}
	/* tell the peer why, best effort (non-blocking: it may not go) */
	if (handshake && e != ECONNREFUSED && e != ECONNRESET)
		gnutls_alert_send_appropriate(t->s, rc);
	return -e;
}

int sw_tls__handshake(struct sw_tls *t)
{
	int rc;

	if (t->ready)
		return 0;
	if (t->dead)
		return -EPROTO;
	for (int i = 0; i < SW_TLS_NONFATAL_MAX; i++) {
		rc = gnutls_handshake(t->s);
		if (rc == 0) {
			t->ready = true;
			return 0;
		}
		if (rc == GNUTLS_E_AGAIN) {
			set_want(t);
			return -EAGAIN;
		}
		if (rc != GNUTLS_E_INTERRUPTED && gnutls_error_is_fatal(rc))
			return fail(t, rc, true);
		/* interrupted, or a warning alert: go on */
	}
	t->want = SW_TLS_WANT_READ;
	return -EAGAIN;
}

bool sw_tls__ready(const struct sw_tls *t) { return t->ready; }

ssize_t sw_tls__recv(struct sw_tls *t, void *buf, size_t len)
{
	ssize_t n;

	if (t->dead)
		return -EPROTO;
	for (int i = 0; i < SW_TLS_NONFATAL_MAX; i++) {
		n = gnutls_record_recv(t->s, buf, len);
		if (n >= 0)
			return n;
		if (n == GNUTLS_E_AGAIN) {
			set_want(t);
			return -EAGAIN;
		}
		/* a close without close_notify: the frames themselves say
		 * whether it cut one (the decoder's "EOF inside a frame") */
		if (n == GNUTLS_E_PREMATURE_TERMINATION)
			return 0;
		if (n != GNUTLS_E_INTERRUPTED && gnutls_error_is_fatal((int)n))
			return fail(t, (int)n, false);
		/* a warning alert, a renegotiation request (ignored): go on */
	}
	t->want = SW_TLS_WANT_READ;
	return -EAGAIN;
}

ssize_t sw_tls__send(struct sw_tls *t, const void *buf, size_t len)
{
	ssize_t n;

	if (t->dead)
		return -EPROTO;
	for (;;) {
		n = gnutls_record_send(t->s, buf, len);
		if (n >= 0) {
			t->held = false;
			return n;
		}
		if (n == GNUTLS_E_INTERRUPTED)
			continue; /* the same arguments again, as GnuTLS asks */
		if (n == GNUTLS_E_AGAIN) {
			t->held = true;
			set_want(t);
			return -EAGAIN;
		}
		return fail(t, (int)n, false);
	}
}

bool sw_tls__send_held(const struct sw_tls *t) { return t->held; }

size_t sw_tls__pending(const struct sw_tls *t)
{
	return t->dead ? 0 : gnutls_record_check_pending(t->s);
}

enum sw_tls_want sw_tls__want(const struct sw_tls *t)
{
	return t->want ? t->want : SW_TLS_WANT_READ;
}

const char *sw_tls__error(const struct sw_tls *t) { return t->err; }
