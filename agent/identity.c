// SPDX-License-Identifier: Apache-2.0
/* Service, container, pod and start time of a watched process (identity.h). */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>
#include "container.h"
#include "discovery.h"
#include "identity.h"
#include "target_io.h"
#include "utf8.h"

/* ---- --service ---- */

static char service_all[64];
static struct {
	pid_t pid;
	char name[64];
} services[SW_SERVICE_MAX];
static int n_services;

int sw_discovery_set_service(pid_t pid, const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (pid < 0 || !n || n >= sizeof(service_all) || !sw_utf8_valid(name, n))
		return -EINVAL;
	if (!pid) {
		memcpy(service_all, name, n + 1);
		return 0;
	}
	for (int i = 0; i < n_services; i++)
		if (services[i].pid == pid) {
			memcpy(services[i].name, name, n + 1);
			return 0;
		}
	if (n_services == SW_SERVICE_MAX)
		return -ENOSPC;
	services[n_services].pid = pid;
	memcpy(services[n_services++].name, name, n + 1);
	return 0;
}

void sw_discovery_clear_services(void)
{
	service_all[0] = '\0';
	n_services = 0;
}

static const char *service_override(pid_t pid)
{
	for (int i = 0; i < n_services; i++)
		if (services[i].pid == pid)
			return services[i].name;
	return service_all[0] ? service_all : NULL;
}

/* ---- /proc/PID/stat ---- */

uint64_t sw_stat_start_ticks(const char *stat)
{
	const char *p = strrchr(stat, ')');
	unsigned long long v;
	char *end;

	if (!p)
		return 0;
	p++;
	/* after ')': state is field 3 (proc(5)); skip 3..21 */
	for (int field = 3; field < 22; field++) {
		while (*p == ' ')
			p++;
		if (!*p)
			return 0;
		while (*p && *p != ' ')
			p++;
	}
	while (*p == ' ')
		p++;
	if (!isdigit((unsigned char)*p))
		return 0;
	errno = 0;
	v = strtoull(p, &end, 10);
	if (errno || (*end && *end != ' '))
		return 0;
	return v;
}

/* ---- the target's environment ---- */

int sw_environ_get(const char *env, size_t len, const char *name, char *out, size_t size)
{
	size_t k = strlen(name);
	const char *p = env, *end = env + len;

	while (p < end) {
		const char *nul = memchr(p, '\0', (size_t)(end - p));

		if (!nul)
			break; /* cut by the read limit: not trusted */
		if ((size_t)(nul - p) > k && !memcmp(p, name, k) && p[k] == '=') {
			/* the first, as getenv(3) finds it */
			if (nul == p + k + 1)
				return -ENOENT;
			sw_utf8_copy(out, size, p + k + 1, (size_t)(nul - p - k - 1));
			return 0;
		}
		p = nul + 1;
	}
	return -ENOENT;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int sw_otel_resource_service(const char *attrs, char *out, size_t size)
{
	const char *p = attrs;

	while (*p) {
		const char *comma = strchr(p, ','), *eq;
		const char *stop = comma ? comma : p + strlen(p);
		const char *k = p, *ke;

		eq = memchr(p, '=', (size_t)(stop - p));
		p = comma ? comma + 1 : stop;
		if (!eq)
			continue;
		while (k < eq && *k == ' ')
			k++;
		ke = eq;
		while (ke > k && ke[-1] == ' ')
			ke--;
		if (ke - k != 12 || memcmp(k, "service.name", 12))
			continue;
		{
			char raw[256];
			size_t n = 0;
			const char *v = eq + 1;

			while (v < stop && *v == ' ')
				v++;
			for (; v < stop && n < sizeof(raw) - 1; v++) {
				int hi, lo;

				if (*v == '%' && stop - v >= 3 && (hi = hexval(v[1])) >= 0 &&
				    (lo = hexval(v[2])) >= 0) {
					raw[n++] = (char)(hi << 4 | lo);
					v += 2;
				} else {
					raw[n++] = *v;
				}
			}
			while (n && raw[n - 1] == ' ')
				n--;
			if (!n)
				return -ENOENT;
			sw_utf8_copy(out, size, raw, n);
			return 0;
		}
	}
	return -ENOENT;
}

/* OTEL_SERVICE_NAME, else service.name of OTEL_RESOURCE_ATTRIBUTES (the
 * order the OTel SDKs resolve it in). /proc/PID/environ is what the
 * process started with; unreadable (another user's without ptrace access,
 * a zombie) it is skipped. */
static int target_service(struct sw_tio *t, pid_t pid, char *out, size_t size)
{
	char rel[32], attrs[1024];
	char *env = NULL;
	size_t n;
	FILE *f;
	int err = -ENOENT;

	snprintf(rel, sizeof(rel), "%d/environ", pid);
	f = sw_tio__open_file(t, rel);
	if (!f)
		return -errno;
	env = malloc(SW_ENVIRON_MAX);
	if (!env) {
		fclose(f);
		return -ENOMEM;
	}
	n = fread(env, 1, SW_ENVIRON_MAX, f);
	fclose(f);
	if (!sw_environ_get(env, n, "OTEL_SERVICE_NAME", out, size))
		err = 0;
	else if (!sw_environ_get(env, n, "OTEL_RESOURCE_ATTRIBUTES", attrs, sizeof(attrs)))
		err = sw_otel_resource_service(attrs, out, size);
	free(env);
	return err;
}

/* ---- the container runtime's files ---- */

static json_object *read_json(struct sw_tio *t, const char *rel)
{
	json_object *o = NULL;
	char *buf;
	size_t n;
	FILE *f;

	f = sw_tio__open_file(t, rel);
	if (!f)
		return NULL;
	buf = malloc(SW_RUNTIME_JSON_MAX);
	if (buf) {
		n = fread(buf, 1, SW_RUNTIME_JSON_MAX, f);
		if (n && n < SW_RUNTIME_JSON_MAX) {
			json_tokener *tok = json_tokener_new();

			if (tok) {
				o = json_tokener_parse_ex(tok, buf, (int)n);
				json_tokener_free(tok);
			}
		}
		free(buf);
	}
	fclose(f);
	return o;
}

/* A string member of o (or of o's "annotations" when annotation). */
static bool json_str(json_object *o, bool annotation, const char *key, char *out, size_t size)
{
	json_object *a = o, *v;
	const char *s;

	if (annotation && !json_object_object_get_ex(o, "annotations", &a))
		return false;
	if (!json_object_object_get_ex(a, key, &v) || !json_object_is_type(v, json_type_string))
		return false;
	s = json_object_get_string(v);
	if (*s == '/')
		s++; /* docker's Name is "/web-1" */
	if (!*s)
		return false;
	sw_utf8_copy_str(out, size, s);
	return true;
}

/*
 * Where each runtime keeps a container's name, and its pod's for the CRI
 * runtimes (the kubelet passes both as annotations of the OCI spec, which
 * containerd keeps in the task's bundle and CRI-O in its userdata). Paths
 * are the runtimes' defaults, under the host's root.
 */
static const struct {
	const char *runtime; /* container.h's; a bare id tries every row */
	const char *path;    /* %s: the 64-hex id */
	bool annotation;
	const char *name_key, *pod_key;
} name_sources[] = {
	{ "docker", "var/lib/docker/containers/%s/config.v2.json", false, "Name", NULL },
	{ "containerd", "run/containerd/io.containerd.runtime.v2.task/k8s.io/%s/config.json", true,
	  "io.kubernetes.cri.container-name", "io.kubernetes.cri.sandbox-name" },
	{ "containerd", "run/containerd/io.containerd.runtime.v2.task/default/%s/config.json", true,
	  "nerdctl/name", NULL },
	{ "cri-o", "run/containers/storage/overlay-containers/%s/userdata/config.json", true,
	  "io.kubernetes.container.name", "io.kubernetes.pod.name" },
};

/*
 * The host's root: init's (an agent in a container that shares the host's
 * pid namespace, a DaemonSet with hostPID, sees the host's files there),
 * else the agent's own (init's root is not readable where pid 1 is another
 * user's or a sandbox's; an agent on the host has the host's root).
 */
static const char *const host_roots[] = { "1/root", "self/root" };

static void runtime_names(struct sw_tio *t, struct sw_proc_info *info, const char *runtime)
{
	char path[200], rel[256];

	for (size_t i = 0; i < sizeof(name_sources) / sizeof(name_sources[0]); i++) {
		json_object *o = NULL;
		bool got;

		if (*runtime && strcmp(runtime, name_sources[i].runtime))
			continue;
		snprintf(path, sizeof(path), name_sources[i].path, info->container_id);
		for (size_t r = 0; !o && r < sizeof(host_roots) / sizeof(host_roots[0]); r++) {
			snprintf(rel, sizeof(rel), "%s/%s", host_roots[r], path);
			o = read_json(t, rel);
		}
		if (!o)
			continue;
		got = json_str(o, name_sources[i].annotation, name_sources[i].name_key,
			       info->container_name, sizeof(info->container_name));
		if (name_sources[i].pod_key && info->pod_uid[0])
			json_str(o, true, name_sources[i].pod_key, info->pod_name,
				 sizeof(info->pod_name));
		json_object_put(o);
		if (got)
			break;
	}
}

/* The kubelet mounts a file holding the pod's name as a pod's /etc/hostname
 * (spec.hostname when set; the node's name with hostNetwork). */
static void pod_hostname(struct sw_tio *t, struct sw_proc_info *info)
{
	char rel[64], buf[256];
	char *nl;

	snprintf(rel, sizeof(rel), "%d/root/etc/hostname", info->pid);
	if (sw_tio__read_file(t, rel, buf, sizeof(buf)))
		return;
	nl = strchr(buf, '\n');
	if (nl)
		*nl = '\0';
	sw_utf8_copy_str(info->pod_name, sizeof(info->pod_name), buf);
}

static bool container_of(const char *cgroup, const char *cgroup_file, struct sw_container_ident *ci)
{
	const char *line = cgroup_file;

	if (sw_container_parse(cgroup, ci))
		return true;
	/* cgroup v1 (or hybrid): the controllers' lines */
	while (line && *line) {
		const char *nl = strchr(line, '\n');

		if (sw_container_parse(line, ci))
			return true;
		line = nl ? nl + 1 : NULL;
	}
	return false;
}

void sw_identity_fill(struct sw_tio *t, struct sw_proc_info *info, const char *cgroup_file)
{
	struct sw_container_ident ci;
	const char *over = service_override(info->pid);
	char rel[32], stat[1024];

	snprintf(rel, sizeof(rel), "%d/stat", info->pid);
	if (!sw_tio__read_file(t, rel, stat, sizeof(stat)))
		info->start_ticks = sw_stat_start_ticks(stat);

	if (over)
		sw_utf8_copy_str(info->service, sizeof(info->service), over);
	else if (target_service(t, info->pid, info->service, sizeof(info->service)))
		sw_utf8_copy_str(info->service, sizeof(info->service), info->comm);

	if (!container_of(info->cgroup, cgroup_file, &ci))
		return;
	memcpy(info->container_id, ci.id, sizeof(info->container_id));
	memcpy(info->pod_uid, ci.pod_uid, sizeof(info->pod_uid));
	runtime_names(t, info, ci.runtime);
	if (info->pod_uid[0] && !info->pod_name[0])
		pod_hostname(t, info);
}
