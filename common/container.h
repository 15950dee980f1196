/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Which container, and which Kubernetes pod, a cgroup path names. Shared by
 * the agent (ProcessInfo.container_id/pod_uid from /proc/PID/cgroup) and
 * the collector (the same from ProcessInfo.container when an older agent
 * sends no container_id), so both read a path the same way.
 *
 * The forms are the ones the runtimes and the kubelet create (cgroup v2
 * paths and the path part of cgroup v1 lines alike):
 *   /docker/<id>                                        docker, cgroupfs driver
 *   /system.slice/docker-<id>.scope                     docker, systemd driver
 *   /machine.slice/libpod-<id>.scope[/container]        podman
 *   /kubepods/[burstable|besteffort/]pod<uid>/<id>      kubelet, cgroupfs driver
 *   /kubepods.slice/kubepods-burstable.slice/
 *     kubepods-burstable-pod<uid, '-' as '_'>.slice/
 *     cri-containerd-<id>.scope | crio-<id>.scope | docker-<id>.scope
 *                                                       kubelet, systemd driver
 * The container id is the last 64-hex component (a kind node is a docker
 * container whose pods are nested below it). crio-conmon-<id> and
 * libpod-conmon-<id> hold the runtime's monitor, not the container.
 */
#ifndef SW_CONTAINER_H
#define SW_CONTAINER_H

#include <stdbool.h>

#define SW_CONTAINER_ID_LEN 64

struct sw_container_ident {
	char id[65];	  /* 64 lowercase hex; "" when none */
	char pod_uid[37]; /* "8f1c...-..." (dashes restored) or a static pod's 32 hex */
	char runtime[16]; /* "docker", "containerd", "cri-o", "podman"; "" when unknown */
};

/*
 * Fill out from cgroup_path (NULL, "" and garbage are fine). Returns true
 * when the path names a container; false with every field "" otherwise
 * (a pod's own slice without a container in it included).
 */
bool sw_container_parse(const char *cgroup_path, struct sw_container_ident *out);

#endif
