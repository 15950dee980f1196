/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A throwaway PKI for the TLS unit tests (test_tls.c, test_listener_tls.c),
 * made with GnuTLS's own API in a temp dir: no CLI tool, no committed key.
 */
#ifndef SW_TEST_TLS_PKI_H
#define SW_TEST_TLS_PKI_H

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static char pki_dir[64];

static inline const char *pki_path(const char *name)
{
	static char buf[8][128];
	static int k;

	k = (k + 1) % 8;
	snprintf(buf[k], sizeof(buf[k]), "%s/%s", pki_dir, name);
	return buf[k];
}

static inline void pki_put(const char *name, const void *data, size_t len)
{
	FILE *f = fopen(pki_path(name), "w");

	cr_assert_not_null(f);
	cr_assert_eq(fwrite(data, 1, len, f), len);
	fclose(f);
	chmod(pki_path(name), 0600);
}

static inline gnutls_x509_privkey_t pki_key(const char *name)
{
	gnutls_x509_privkey_t k;
	gnutls_datum_t d;

	cr_assert_eq(gnutls_x509_privkey_init(&k), 0);
	cr_assert_eq(gnutls_x509_privkey_generate(
			 k, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0),
		     0);
	cr_assert_eq(
	    gnutls_x509_privkey_export2_pkcs8(k, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN, &d),
	    0);
	pki_put(name, d.data, d.size);
	gnutls_free(d.data);
	return k;
}

/* A certificate for key, signed by (icrt, ikey), or self-signed. */
static inline gnutls_x509_crt_t pki_crt(const char *name, const char *cn, gnutls_x509_privkey_t key,
					gnutls_x509_crt_t icrt, gnutls_x509_privkey_t ikey, bool ca,
					const char *ip)
{
	static unsigned char serial = 1;
	gnutls_x509_crt_t c;
	gnutls_datum_t d;
	unsigned char a[4];
	time_t now = time(NULL);

	cr_assert_eq(gnutls_x509_crt_init(&c), 0);
	gnutls_x509_crt_set_version(c, 3);
	serial++;
	gnutls_x509_crt_set_serial(c, &serial, 1);
	gnutls_x509_crt_set_activation_time(c, now - 3600);
	gnutls_x509_crt_set_expiration_time(c, now + 86400);
	cr_assert_eq(gnutls_x509_crt_set_dn_by_oid(c, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
						   (unsigned int)strlen(cn)),
		     0);
	cr_assert_eq(gnutls_x509_crt_set_key(c, key), 0);
	gnutls_x509_crt_set_basic_constraints(c, ca, -1);
	gnutls_x509_crt_set_key_usage(c, ca ? GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN
					    : GNUTLS_KEY_DIGITAL_SIGNATURE);
	if (ip) {
		cr_assert_eq(inet_pton(AF_INET, ip, a), 1);
		cr_assert_eq(gnutls_x509_crt_set_subject_alt_name(c, GNUTLS_SAN_IPADDRESS, a, 4,
								  GNUTLS_FSAN_SET),
			     0);
	}
	cr_assert_eq(
	    gnutls_x509_crt_sign2(c, icrt ? icrt : c, icrt ? ikey : key, GNUTLS_DIG_SHA256, 0), 0);
	cr_assert_eq(gnutls_x509_crt_export2(c, GNUTLS_X509_FMT_PEM, &d), 0);
	pki_put(name, d.data, d.size);
	gnutls_free(d.data);
	return c;
}

/* ca.pem (ca.key), server.pem for 127.0.0.1 and client.pem signed by it,
 * other.pem an unrelated CA; garbage.pem and empty.pem; in a new temp dir */
static inline void pki_make(void)
{
	gnutls_x509_privkey_t cak, sk, ck, ok;
	gnutls_x509_crt_t ca, s, c, o;

	snprintf(pki_dir, sizeof(pki_dir), "/tmp/sw-test-tls-XXXXXX");
	cr_assert_not_null(mkdtemp(pki_dir));
	cak = pki_key("ca.key");
	ca = pki_crt("ca.pem", "test CA", cak, NULL, NULL, true, NULL);
	sk = pki_key("server.key");
	s = pki_crt("server.pem", "test collector", sk, ca, cak, false, "127.0.0.1");
	ck = pki_key("client.key");
	c = pki_crt("client.pem", "test agent", ck, ca, cak, false, NULL);
	ok = pki_key("other.key");
	o = pki_crt("other.pem", "other CA", ok, NULL, NULL, true, NULL);
	gnutls_x509_crt_deinit(ca);
	gnutls_x509_crt_deinit(s);
	gnutls_x509_crt_deinit(c);
	gnutls_x509_crt_deinit(o);
	gnutls_x509_privkey_deinit(cak);
	gnutls_x509_privkey_deinit(sk);
	gnutls_x509_privkey_deinit(ck);
	gnutls_x509_privkey_deinit(ok);
	pki_put("garbage.pem",
		"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n", 62);
	pki_put("empty.pem", "", 0);
}

static inline void pki_remove(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", pki_dir);
	cr_assert_eq(system(cmd), 0);
}

#endif
