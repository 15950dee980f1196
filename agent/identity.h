/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The identity of a watched process for a fleet's series (docs/METRICS.md,
 * docs/METRICS.md "Labels"): service, container, pod and start time. Read
 * once per process by sw_discover_process, read-only, through target_io.h:
 * the target's environ and /etc/hostname, and the container runtime's own
 * files on the host, read as /proc/1/root/<path> (so that an agent in a
 * container with the host's pid namespace reads the host's), else as
 * /proc/self/root/<path>. Nothing
 * here fails discovery: what cannot be read stays "".
 */
#ifndef SW_IDENTITY_H
#define SW_IDENTITY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct sw_tio;
struct sw_proc_info;

/* Bytes of /proc/PID/environ searched for OTEL_SERVICE_NAME. */
#define SW_ENVIRON_MAX (64 * 1024)
/* A runtime's JSON file larger than this is not parsed. */
#define SW_RUNTIME_JSON_MAX (1024 * 1024)

/*
 * Fill info's service, container_id, container_name, pod_uid, pod_name and
 * start_ticks. info->pid, comm and cgroup must be set; cgroup_file is the
 * whole of /proc/PID/cgroup (cgroup v1 lines are searched when the v2 path
 * names no container), or NULL.
 */
void sw_identity_fill(struct sw_tio *t, struct sw_proc_info *info, const char *cgroup_file);

/* Field 22 (starttime, clock ticks after boot) of a /proc/PID/stat line;
 * 0 when malformed. comm, field 2, may hold spaces and ')'. */
uint64_t sw_stat_start_ticks(const char *stat);

/* The value of name in a NUL-separated environment block of len bytes,
 * copied as valid UTF-8 into out; an entry cut at the end of the block is
 * not used. 0 or -ENOENT (also when the value is empty). */
int sw_environ_get(const char *env, size_t len, const char *name, char *out, size_t size);

/* service.name from an OTEL_RESOURCE_ATTRIBUTES value ("k=v,k2=v2", values
 * percent-encoded, OTel SDK spec). 0 or -ENOENT. */
int sw_otel_resource_service(const char *attrs, char *out, size_t size);

#endif
