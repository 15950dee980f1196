// SPDX-License-Identifier: Apache-2.0
/* Container and pod identity from a cgroup path (the forms: container.h). */
#define _GNU_SOURCE /* memmem */
#include <string.h>
#include "container.h"

/* The runtime a component's prefix names. nerdctl runs on containerd. */
static const struct {
	const char *prefix;
	const char *runtime;
} prefixes[] = {
	{ "docker-", "docker" },
	{ "cri-containerd-", "containerd" },
	{ "nerdctl-", "containerd" },
	{ "crio-", "cri-o" },
	{ "libpod-", "podman" },
};

static bool is_lhex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static bool all_lhex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!is_lhex(s[i]))
			return false;
	return true;
}

static bool ends_with(const char *s, size_t n, const char *suffix)
{
	size_t k = strlen(suffix);

	return n >= k && !memcmp(s + n - k, suffix, k);
}

/*
 * A pod UID as the kubelet writes it into a cgroup name: an API-server pod's
 * UUID (8-4-4-4-12, '_' for '-' under the systemd driver, since '-' is the
 * slice hierarchy separator there) or a static pod's 32-hex config hash.
 */
static bool pod_uid_of(const char *s, size_t n, char out[37])
{
	if (n == 32 && all_lhex(s, n)) {
		memcpy(out, s, n);
		out[n] = '\0';
		return true;
	}
	if (n != 36)
		return false;
	for (size_t i = 0; i < n; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? (s[i] != '-' && s[i] != '_') : !is_lhex(s[i]))
			return false;
		out[i] = dash ? '-' : s[i];
	}
	out[n] = '\0';
	return true;
}

/* "pod<uid>" (cgroupfs) or "kubepods[-<qos>]-pod<uid>.slice" (systemd; kind's
 * kubelet, under --cgroup-root=/kubelet, makes "kubelet-kubepods-...-pod<uid>.slice"). */
static bool pod_component(const char *s, size_t n, char out[37])
{
	if (n > 3 && !memcmp(s, "pod", 3))
		return pod_uid_of(s + 3, n - 3, out);
	if (n > 9 && memmem(s, n, "kubepods-", 9) && ends_with(s, n, ".slice")) {
		n -= 6;
		for (size_t i = n; i >= 4; i--)
			if (!memcmp(s + i - 4, "-pod", 4))
				return pod_uid_of(s + i, n - i, out);
	}
	return false;
}

/*
 * "<64hex>", "<prefix>-<64hex>" or either with ".scope": the id, and the
 * runtime its prefix names ("" for a bare id or an unknown prefix). Not
 * the conmon monitor's scope (crio-conmon-, libpod-conmon-).
 */
static bool id_component(const char *s, size_t n, const char **id, const char **runtime)
{
	const char *p;
	size_t plen;

	if (ends_with(s, n, ".scope"))
		n -= 6;
	if (n < SW_CONTAINER_ID_LEN)
		return false;
	p = s + n - SW_CONTAINER_ID_LEN;
	if (!all_lhex(p, SW_CONTAINER_ID_LEN))
		return false;
	plen = (size_t)(p - s);
	if (plen && p[-1] != '-')
		return false; /* 65 hex, or a word glued to the id */
	*runtime = "";
	if (plen >= 7 && !memcmp(p - 7, "conmon-", 7))
		return false;
	for (size_t i = 0; plen && i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (strlen(prefixes[i].prefix) == plen && !memcmp(s, prefixes[i].prefix, plen))
			*runtime = prefixes[i].runtime;
	*id = p;
	return true;
}

/* A bare id's runtime from its parent: /docker/<id>, /libpod_parent/<id>. */
static const char *parent_runtime(const char *s, size_t n)
{
	if (n == 6 && !memcmp(s, "docker", 6))
		return "docker";
	if (n == 13 && !memcmp(s, "libpod_parent", 13))
		return "podman";
	return "";
}

static void copy_str(char *dst, size_t size, const char *src)
{
	size_t n = strlen(src);

	if (n >= size)
		n = size - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

bool sw_container_parse(const char *cgroup_path, struct sw_container_ident *out)
{
	const char *s = cgroup_path, *prev = NULL, *id = NULL, *rt = "";
	char pod[37] = "", found_pod[37] = "";
	size_t prev_n = 0;

	memset(out, 0, sizeof(*out));
	if (!s)
		return false;
	/* a whole /proc/PID/cgroup line: "0::/path", "4:memory:/path" */
	if (*s >= '0' && *s <= '9') {
		const char *c1 = strchr(s, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;

		if (c2)
			s = c2 + 1;
	}
	while (*s && *s != '\n') {
		const char *e = s, *cid, *crt;
		size_t n;
		char uid[37];

		while (*e && *e != '/' && *e != '\n')
			e++;
		n = (size_t)(e - s);
		if (n && pod_component(s, n, uid)) {
			memcpy(pod, uid, sizeof(pod));
		} else if (n && id_component(s, n, &cid, &crt)) {
			id = cid;
			rt = *crt || !prev ? crt : parent_runtime(prev, prev_n);
			/* the pod it is in is the nearest one above it */
			memcpy(found_pod, pod, sizeof(found_pod));
		}
		if (n) {
			prev = s;
			prev_n = n;
		}
		s = *e == '/' ? e + 1 : e;
	}
	if (!id)
		return false;
	memcpy(out->id, id, SW_CONTAINER_ID_LEN);
	out->id[SW_CONTAINER_ID_LEN] = '\0';
	memcpy(out->pod_uid, found_pod, sizeof(out->pod_uid));
	copy_str(out->runtime, sizeof(out->runtime), rt);
	return true;
}
